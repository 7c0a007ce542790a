"""Models: the functional Model and Sequential, with Keras's training loop."""

from .functional import Model, Sequential

__all__ = ["Model", "Sequential"]
