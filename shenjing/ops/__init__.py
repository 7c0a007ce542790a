"""Differentiable operations, channels-last, like ``torch.nn.functional``.

Each takes Tensors or ndarrays and returns a Tensor.
"""

from .elementwise import abs, add, cast, clip, div, exp, log, mul, neg, pow, sqrt, sub, where
from .matmul import dense, matmul
from .reduce import max, mean, min, sum, var
from .shape import concatenate, getitem, pad, reshape, stack, transpose

__all__ = [
    "abs", "add", "cast", "clip", "concatenate", "dense", "div", "exp", "getitem", "log",
    "matmul", "max", "mean", "min", "mul", "neg", "pad", "pow", "reshape", "sqrt", "stack",
    "sub", "sum", "transpose", "var", "where",
]
