"""Models: the functional Model and Sequential, with Keras's training loop."""

from ..saving import load_model  # keras.models.load_model, the same function as shenjing's
from .functional import Model, Sequential

__all__ = ["Model", "Sequential", "load_model"]
