"""shenjing (神经): a readable NumPy deep-learning library checked against PyTorch."""

from . import ops
from .tensor import Tensor, enable_grad, is_grad_enabled, no_grad
from .variable import Variable

__version__ = "0.1.0"

__all__ = ["Tensor", "Variable", "enable_grad", "is_grad_enabled", "no_grad", "ops"]
