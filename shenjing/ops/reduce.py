"""Reductions: sum, mean, max, min, var (over an axis, several axes or everything)."""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.isscalar(axis) else tuple(axis)
    return tuple(sorted(a % ndim for a in axes))


def _expand(g, axes, keepdims):
    """Reinsert the reduced axes into g so it broadcasts against the input."""
    return g if keepdims else np.expand_dims(g, axes)


class Sum(Op):
    """y = sum of x over axes."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes, self.shape = _axes(self.axis, x.ndim), x.shape
        return np.asarray(x.sum(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        return np.broadcast_to(_expand(gy, self.axes, self.keepdims), self.shape).copy()


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors np.sum
    return Sum(axis, keepdims)(x)


class Mean(Op):
    """y = mean of x over axes."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes, self.shape = _axes(self.axis, x.ndim), x.shape
        return np.asarray(x.mean(axis=self.axes, keepdims=self.keepdims))

    def backward(self, gy):
        count = int(np.prod([self.shape[a] for a in self.axes]))
        g = _expand(gy, self.axes, self.keepdims) / np.asarray(count, dtype=gy.dtype)
        return np.broadcast_to(g, self.shape).copy()


def mean(x, axis=None, keepdims=False):
    return Mean(axis, keepdims)(x)


class Extreme(Op):
    """y = max (or min) of x over axes; ties share the gradient equally, as in PyTorch."""

    def __init__(self, axis, keepdims, reducer):
        self.axis, self.keepdims, self.reducer = axis, keepdims, reducer

    def forward(self, x):
        self.axes = _axes(self.axis, x.ndim)
        y = self.reducer(x, axis=self.axes, keepdims=True)
        self.mask = x == y
        return np.asarray(y if self.keepdims else np.squeeze(y, self.axes))

    def backward(self, gy):
        count = self.mask.sum(axis=self.axes, keepdims=True)
        return self.mask * (_expand(gy, self.axes, self.keepdims) / count).astype(gy.dtype)


def max(x, axis=None, keepdims=False):  # noqa: A001 - mirrors np.max
    return Extreme(axis, keepdims, np.max)(x)


def min(x, axis=None, keepdims=False):  # noqa: A001 - mirrors np.min
    return Extreme(axis, keepdims, np.min)(x)


class Var(Op):
    """y = sum((x - mean)^2) / (n - ddof) over axes; ddof=0 is the biased (Keras) variance."""

    def __init__(self, axis, keepdims, ddof):
        self.axis, self.keepdims, self.ddof = axis, keepdims, ddof

    def forward(self, x):
        self.axes = _axes(self.axis, x.ndim)
        self.count = int(np.prod([x.shape[a] for a in self.axes]))
        if self.count - self.ddof <= 0:
            raise ArgumentError(
                f"var: {self.count} values with ddof={self.ddof} leave no degrees of freedom."
            )
        self.centered = x - x.mean(axis=self.axes, keepdims=True)
        return np.asarray(np.var(x, axis=self.axes, keepdims=self.keepdims, ddof=self.ddof))

    def backward(self, gy):
        scale = np.asarray(2.0 / (self.count - self.ddof), dtype=gy.dtype)
        return _expand(gy, self.axes, self.keepdims) * scale * self.centered


def var(x, axis=None, keepdims=False, ddof=0):
    return Var(axis, keepdims, ddof)(x)
