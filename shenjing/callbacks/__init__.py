"""Callbacks for fit: hooks at the start and end of training, epochs and batches."""

from .base import Callback, CallbackList, History

__all__ = ["Callback", "CallbackList", "History"]
