"""shenjing (神经): a readable NumPy deep-learning library checked against PyTorch.

Keras-shaped surface (``Sequential``, ``layers.Conv2D``, ``compile/fit``), PyTorch-grade core
(``Tensor`` autograd, ``ops`` with hand-written backward passes), NumPy (and threadpoolctl) only.
"""

# Importing changes nothing in the process: shenjing's malloc setting is taken when its work
# starts and handed back after fit/evaluate/predict (see shenjing/memory.py, shenjing/config.py).
from . import (
    callbacks, config, data, datasets, diagnostics, distribution, errors, initializers, interop,
    layers, losses, memory, metrics, ops, optimizers, preprocessing, regularizers, schedules,
    utils,
)
from .layers import Input
from .models import Model, Sequential
from .saving import load_model
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from .variable import Variable

__version__ = "0.1.0"

__all__ = [
    "Input", "Model", "Sequential", "Tensor", "Variable", "callbacks", "data", "datasets",
    "enable_grad", "initializers", "is_grad_enabled", "layers", "load_model", "losses",
    "metrics", "no_grad", "ops", "optimizers", "regularizers", "schedules", "utils",
    "diagnostics", "errors", "interop", "memory", "config", "preprocessing", "distribution",
]
