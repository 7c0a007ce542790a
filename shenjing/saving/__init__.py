"""Saving and loading models without pickle."""

from .model_io import load_model, load_weights, save_model, save_weights
from .registry import register

__all__ = ["load_model", "load_weights", "register", "save_model", "save_weights"]
