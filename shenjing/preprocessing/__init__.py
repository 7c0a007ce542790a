"""Keras's legacy ``keras.preprocessing`` names: ``preprocessing.sequence.pad_sequences``."""

from . import sequence

__all__ = ["sequence"]
