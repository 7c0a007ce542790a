"""Shape ops: reshape, transpose, getitem (indexing/slicing), concatenate, stack, pad."""

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, as_tensor


def check_axis(name, axis, shape):
    """axis as a non-negative int for an input of shape, or an error naming name, axis and
    shape (a TypeError for a non-int, a ValueError when out of range)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ArgumentTypeError(f"{name}: axis must be an int, got {axis!r}.")
    if not -len(shape) <= axis < len(shape):
        raise ArgumentError(
            f"{name}: axis {axis} is out of range for an input of rank {len(shape)} "
            f"(shape {shape})."
        )
    return int(axis) % len(shape)


class Reshape(Op):
    """y = x viewed with a new shape (one axis may be -1)."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ArgumentError(
                f"reshape: cannot reshape an input of shape {x.shape} ({x.size} values) into "
                f"{self.shape}."
            ) from None

    def backward(self, gy):
        return gy.reshape(self.in_shape)


def reshape(x, shape):
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    return Reshape(shape)(x)


class Transpose(Op):
    """y = x with its axes permuted (reversed when axes is None)."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(self.axes)
        if sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
            raise ArgumentError(f"transpose: axes {axes} are not a permutation for rank {x.ndim}.")
        self.inverse = np.argsort([a % x.ndim for a in axes])
        return x.transpose(axes)

    def backward(self, gy):
        return gy.transpose(self.inverse)


def transpose(x, axes=None):
    return Transpose(axes)(x)


class GetItem(Op):
    """y = x[index] for any NumPy index; repeated fancy indices accumulate their gradients."""

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return np.asarray(x[self.index])

    def backward(self, gy):
        gx = np.zeros(self.in_shape, dtype=gy.dtype)
        np.add.at(gx, self.index, gy)
        return gx


def getitem(x, index):
    if isinstance(index, tuple):
        index = tuple(i.data if hasattr(i, "_op") else i for i in index)
    elif hasattr(index, "_op"):  # a Tensor used as an index
        index = index.data
    if isinstance(index, np.ndarray) and np.issubdtype(index.dtype, np.floating):
        index = index.astype(np.intp)
    return GetItem(index)(x)


class Concatenate(Op):
    """y = the inputs joined along an existing axis."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return np.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        bounds = np.cumsum(self.sizes)[:-1]
        return tuple(np.split(gy, bounds, axis=self.axis))


def concatenate(xs, axis=-1):
    xs = [as_tensor(x) for x in xs]
    if not xs:
        raise ArgumentError("concatenate: expected at least one input, got none.")
    ranks = {x.ndim for x in xs}
    if len(ranks) != 1:
        raise ArgumentError(
            f"concatenate: inputs must share a rank, got shapes {[x.shape for x in xs]}.")
    ndim = xs[0].ndim
    if not -ndim <= axis < ndim:
        raise ArgumentError(f"concatenate: axis {axis} is out of range for rank {ndim}.")
    rest = {tuple(s for i, s in enumerate(x.shape) if i != axis % ndim) for x in xs}
    if len(rest) != 1:
        raise ArgumentError(
            f"concatenate: shapes {[x.shape for x in xs]} differ outside axis {axis}."
        )
    return Concatenate(axis)(*xs)


class Stack(Op):
    """y = the inputs joined along a new axis."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return np.stack(xs, axis=self.axis)

    def backward(self, gy):
        return tuple(np.moveaxis(gy, self.axis, 0))


def stack(xs, axis=0):
    xs = [as_tensor(x) for x in xs]
    if not xs:
        raise ArgumentError("stack: expected at least one input, got none.")
    if len({x.shape for x in xs}) != 1:
        raise ArgumentError(f"stack: inputs must share a shape, got {[x.shape for x in xs]}.")
    return Stack(axis)(*xs)


class Pad(Op):
    """y = x surrounded by constant values; pad_width as in np.pad ((before, after) per axis)."""

    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        self.crop = tuple(slice(b, b + n) for (b, _), n in zip(self.pad_width, x.shape))
        return np.pad(x, self.pad_width, constant_values=self.value)

    def backward(self, gy):
        return gy[self.crop]


def pad(x, pad_width, value=0.0):
    x = as_tensor(x)
    pad_width = tuple((int(b), int(a)) for b, a in pad_width)
    if len(pad_width) != x.ndim or any(b < 0 or a < 0 for b, a in pad_width):
        raise ArgumentError(
            f"pad: expected {x.ndim} non-negative (before, after) pairs for shape {x.shape}, "
            f"got {pad_width}."
        )
    return Pad(pad_width, value)(x)
