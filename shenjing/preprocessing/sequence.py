"""``keras.preprocessing.sequence``: pad_sequences (the one in shenjing.data)."""

from ..data import pad_sequences

__all__ = ["pad_sequences"]
