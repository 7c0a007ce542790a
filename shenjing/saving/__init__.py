"""Saving and loading models without pickle."""

from .model_io import load_model, load_weights, save_model, save_weights
from .registry import (
    get_registered_name,
    get_registered_object,
    register,
    register_keras_serializable,
)

__all__ = ["get_registered_name", "get_registered_object", "load_model", "load_weights",
           "register", "register_keras_serializable", "save_model", "save_weights"]
