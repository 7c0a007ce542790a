"""Image resizing as a fixed linear map per spatial axis: y = A x along the axis, gx = A^T gy.

The maps follow PyTorch's ``F.interpolate`` with ``align_corners=False`` (half-pixel centres,
no antialiasing), which is what Keras 3 computes on its torch backend for ``ops.image.resize``
and ``UpSampling2D(interpolation='bilinear' | 'bicubic')``:

    source coordinate  s = (d + 0.5) * n_in / n_out - 0.5   for output index d
    bilinear   s clamped to >= 0; y[d] = (1 - t) x[i] + t x[min(i + 1, n_in - 1)], i = floor(s)
    bicubic    Keys' cubic convolution (A = -0.75) on x[i - 1 .. i + 2], indices clamped
    nearest    PyTorch's 'nearest-exact': y[d] = x[min(floor((d + 0.5) n_in / n_out), n_in - 1)]
"""

import math

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, as_tensor

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CUBIC_A = -0.75  # PyTorch's (and TensorFlow's 'bicubic') cubic convolution coefficient


def _cubic_weights(t):
    """Keys' kernel at distances 1 + t, t, 1 - t, 2 - t for the taps i - 1, i, i + 1, i + 2."""
    a = CUBIC_A

    def near(z):  # |z| <= 1
        return ((a + 2) * z - (a + 3)) * z * z + 1

    def far(z):  # 1 < |z| < 2
        return ((a * z - 5 * a) * z + 8 * a) * z - 4 * a

    return far(t + 1), near(t), near(1 - t), far(2 - t)


def interpolation_matrix(n_in: int, n_out: int, interpolation: str) -> np.ndarray:
    """A (n_out, n_in) float64 matrix A with y = A @ x resizing one axis of n_in samples."""
    d = np.arange(n_out, dtype=np.float64)
    scale = n_in / n_out
    rows = np.arange(n_out)
    matrix = np.zeros((n_out, n_in))
    if interpolation == "nearest":
        matrix[rows, np.minimum(np.floor((d + 0.5) * scale).astype(np.intp), n_in - 1)] = 1.0
        return matrix
    source = (d + 0.5) * scale - 0.5
    if interpolation == "bilinear":
        source = np.maximum(source, 0.0)
        i = np.floor(source).astype(np.intp)
        t = source - i
        np.add.at(matrix, (rows, np.minimum(i, n_in - 1)), 1.0 - t)
        np.add.at(matrix, (rows, np.minimum(i + 1, n_in - 1)), t)
        return matrix
    i = np.floor(source).astype(np.intp)
    for offset, weight in zip((-1, 0, 1, 2), _cubic_weights(source - i)):
        np.add.at(matrix, (rows, np.clip(i + offset, 0, n_in - 1)), weight)
    return matrix


class AxisLinearMap(Op):
    """y = A x along one axis (A of shape (n_out, n_in)); gx = A^T gy along that axis."""

    name = "axis_linear_map"

    def __init__(self, matrix, axis):
        self.matrix, self.axis = matrix, axis

    def forward(self, x):
        # x (..., n_in, ...) -> y (..., n_out, ...); as (B, n_in, R) so one batched matmul
        # applies A without moving axes
        shape = x.shape
        self.x_shape = shape
        before, after = math.prod(shape[:self.axis]), math.prod(shape[self.axis + 1:])
        matrix = self.matrix.astype(x.dtype, copy=False)
        y = np.matmul(matrix, x.reshape(before, shape[self.axis], after))
        return y.reshape(*shape[:self.axis], matrix.shape[0], *shape[self.axis + 1:])

    def backward(self, gy):
        # gy (..., n_out, ...) -> gx (..., n_in, ...)
        shape = gy.shape
        before, after = math.prod(shape[:self.axis]), math.prod(shape[self.axis + 1:])
        matrix_t = self.matrix.T.astype(gy.dtype, copy=False)
        gx = np.matmul(matrix_t, gy.reshape(before, shape[self.axis], after))
        return gx.reshape(self.x_shape)


def axis_linear_map(x, matrix, axis):
    """y = matrix @ x along axis; matrix (n_out, n_in) with n_in = x.shape[axis]."""
    x = as_tensor(x)
    matrix = np.asarray(matrix)
    if not -x.ndim <= axis < x.ndim:
        raise ArgumentError(f"axis_linear_map: axis {axis} is out of range for rank {x.ndim}.")
    axis %= x.ndim
    if matrix.ndim != 2 or matrix.shape[1] != x.shape[axis]:
        raise ArgumentError(f"axis_linear_map: matrix of shape {matrix.shape} cannot map axis "
                            f"{axis} of an input of shape {x.shape}.")
    return AxisLinearMap(matrix, axis)(x)


def resize(x, size, interpolation="bilinear", data_format="channels_last"):
    """Resize images (N, H, W, C) to (N, *size, C) (channels_first: (N, C, H, W)), as Keras 3's
    ``ops.image.resize`` on torch with antialias=False. interpolation: 'nearest' (PyTorch's
    'nearest-exact'), 'bilinear' or 'bicubic', half-pixel centres."""
    x = as_tensor(x)
    if interpolation not in INTERPOLATIONS:
        raise ArgumentError(f"resize: interpolation must be one of {INTERPOLATIONS}, got "
                            f"{interpolation!r}.")
    if data_format not in ("channels_last", "channels_first"):
        raise ArgumentError(f"resize: data_format must be 'channels_last' or 'channels_first', "
                            f"got {data_format!r}.")
    if x.ndim != 4:
        raise ArgumentError(f"resize: expected images of rank 4, got shape {x.shape}.")
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        raise ArgumentTypeError(f"resize: size must be (height, width) ints, got {size!r}.")
    if min(size) < 1:
        raise ArgumentError(f"resize: size must be positive, got {tuple(size)}.")
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    for axis, n_out in zip(axes, size):
        if x.shape[axis] != n_out:
            x = AxisLinearMap(interpolation_matrix(x.shape[axis], int(n_out), interpolation),
                              axis)(x)
    return x
