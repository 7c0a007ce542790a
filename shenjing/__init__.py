"""shenjing (神经): a readable NumPy deep-learning library checked against PyTorch.

Keras-shaped surface (``Sequential``, ``layers.Conv2D``, ``compile/fit``), PyTorch-grade core
(``Tensor`` autograd, ``ops`` with hand-written backward passes), NumPy only.
"""

from . import memory

memory.keep_on_import()  # large temporaries reuse freed memory (see shenjing/memory.py)

from . import (  # noqa: E402
    callbacks, data, datasets, diagnostics, errors, initializers, interop, layers, losses,
    metrics, ops, optimizers, regularizers, schedules, utils,
)
from .layers import Input  # noqa: E402
from .models import Model, Sequential  # noqa: E402
from .saving import load_model  # noqa: E402
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad  # noqa: E402
from .variable import Variable  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Input", "Model", "Sequential", "Tensor", "Variable", "callbacks", "data", "datasets",
    "enable_grad", "initializers", "is_grad_enabled", "layers", "load_model", "losses",
    "metrics", "no_grad", "ops", "optimizers", "regularizers", "schedules", "utils",
    "diagnostics", "errors", "interop", "memory",
]
