"""Models: the functional Model and Sequential, with Keras's training loop; clone_model and
model_from_json (shenjing's JSON config format) as in keras.models."""

from ..saving import load_model  # keras.models.load_model, the same function as shenjing's
from .cloning import clone_model, model_from_json
from .functional import Model, Sequential

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json"]
