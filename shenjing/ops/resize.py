"""Image resizing as a fixed linear map per spatial axis: y = A x along the axis, gx = A^T gy.

The maps follow PyTorch's ``F.interpolate`` with ``align_corners=False`` (half-pixel centres,
no antialiasing), which is what Keras 3 computes on its torch backend for ``ops.image.resize``
and ``UpSampling2D(interpolation='bilinear' | 'bicubic')``:

    source coordinate  s = (d + 0.5) * n_in / n_out - 0.5   for output index d
    bilinear   s clamped to >= 0; y[d] = (1 - t) x[i] + t x[min(i + 1, n_in - 1)], i = floor(s)
    bicubic    Keys' cubic convolution (A = -0.75) on x[i - 1 .. i + 2], indices clamped
    nearest    PyTorch's 'nearest-exact': y[d] = x[min(floor((d + 0.5) n_in / n_out), n_in - 1)]

Keras's crop_to_aspect_ratio and pad_to_aspect_ratio resize a box of the axis instead (see
_box_matrix). layers.UpSampling2D and layers.Resizing both resize through here.
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


def interpolation_matrix(n_in: int, n_out: int, interpolation: str,
                         dtype=np.float64) -> np.ndarray:
    """A (n_out, n_in) float64 matrix A with y = A @ x resizing one axis of n_in samples.

    NOTE: the source coordinates are computed in dtype, as torch computes them in the images'
    float type: 'nearest' lands on exact integers for some sizes, and float32 and float64 round
    those differently (10 -> 3: float32 gives index 4, float64 5). The weights are float64.
    """
    dtype = np.dtype(dtype)
    scale = dtype.type(n_in) / dtype.type(n_out)
    centre = np.arange(n_out, dtype=dtype) + dtype.type(0.5)
    rows = np.arange(n_out)
    matrix = np.zeros((n_out, n_in))
    if interpolation == "nearest":
        matrix[rows, np.minimum(np.floor(centre * scale).astype(np.intp), n_in - 1)] = 1.0
        return matrix
    source = (centre * scale - dtype.type(0.5)).astype(np.float64)
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


def _box_matrix(n_in, n_out, start, n_box, interpolation, dtype):
    """The (n_out, n_in) map resizing samples start .. start + n_box - 1 of an axis to n_out:
    a crop where they lie inside it; where they reach past it (padding) those columns are left
    out, and what their weight would have read is the fill value's share."""
    box = interpolation_matrix(n_box, n_out, interpolation, dtype)
    if (start, n_box) == (0, n_in):
        return box
    matrix = np.zeros((n_out, n_in))
    lo, hi = max(start, 0), min(start + n_box, n_in)
    matrix[:, lo:hi] = box[:, lo - start:hi - start]
    return matrix


def _aspect_box(height, width, target_height, target_width, crop):
    """(top, left, box height, box width) of the crop (or padded canvas) with the target's
    aspect ratio, as Keras's torch resize computes it (int of float divisions)."""
    box_height = int(float(width * target_height) / target_width)
    box_width = int(float(height * target_width) / target_height)
    if crop:
        box_height, box_width = max(min(height, box_height), 1), max(min(width, box_width), 1)
        return int((height - box_height) / 2), int((width - box_width) / 2), box_height, box_width
    box_height, box_width = max(height, box_height), max(width, box_width)
    return int((box_height - height) / 2), int((box_width - width) / 2), box_height, box_width


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


def check_images(images, interpolation, interpolations, data_format, where):
    """images as a Tensor, if of rank 4 with interpolation one of interpolations and a known
    data_format; else an ArgumentError naming where (resize, ops.image.affine_transform)."""
    images = as_tensor(images)
    if images.ndim != 4:
        raise ArgumentError(f"{where}: expected images of rank 4 (batch, height, width, "
                            f"channels), got shape {images.shape}.")
    if interpolation not in interpolations:
        raise ArgumentError(f"{where}: interpolation must be one of {interpolations}, got "
                            f"{interpolation!r}.")
    if data_format not in ("channels_last", "channels_first"):
        raise ArgumentError(f"{where}: data_format must be 'channels_last' or "
                            f"'channels_first', got {data_format!r}.")
    return images


def resize(x, size, interpolation="bilinear", data_format="channels_last",
           crop_to_aspect_ratio=False, pad_to_aspect_ratio=False, fill_value=0.0):
    """Resize images (N, H, W, C) to (N, *size, C) (channels_first: (N, C, H, W)), as Keras 3's
    ``ops.image.resize`` on torch with antialias=False. interpolation: 'nearest' (PyTorch's
    'nearest-exact'), 'bilinear' or 'bicubic', half-pixel centres; source coordinates in the
    images' float type, as torch.

    crop_to_aspect_ratio: first cut the centred largest box of the target's aspect ratio;
    pad_to_aspect_ratio: first pad both sides with fill_value to that ratio (Keras's torch
    backend pads the same amount on each side). One AxisLinearMap per resized axis.
    """
    x = check_images(x, interpolation, INTERPOLATIONS, data_format, "resize")
    if not isinstance(size, (tuple, list)) or len(size) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size):
        raise ArgumentTypeError(f"resize: size must be (height, width) ints, got {size!r}.")
    if min(size) < 1:
        raise ArgumentError(f"resize: size must be positive, got {tuple(size)}.")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ArgumentError("resize: pass crop_to_aspect_ratio or pad_to_aspect_ratio, not both.")
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    height, width = (x.shape[axis] for axis in axes)
    boxes = [(0, height), (0, width)]  # per axis: (start, size) of what is resized
    if crop_to_aspect_ratio:
        top, left, box_height, box_width = _aspect_box(height, width, *size, True)
        boxes = [(top, box_height), (left, box_width)]
    elif pad_to_aspect_ratio:
        top, left, _, _ = _aspect_box(height, width, *size, False)
        boxes = [(-top, height + 2 * top), (-left, width + 2 * left)]
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    inside = []  # per axis and output index: the weight read from the image (not padding)
    for axis, n_out, (start, n_box) in zip(axes, size, boxes):
        n_in, n_out = x.shape[axis], int(n_out)
        if (start, n_box) == (0, n_in) and n_in == n_out:
            inside.append(np.ones(n_out))
            continue
        matrix = _box_matrix(n_in, n_out, start, n_box, interpolation, dtype)
        inside.append(matrix.sum(axis=1))
        x = AxisLinearMap(matrix, axis)(x)
    if pad_to_aspect_ratio and fill_value != 0:
        fill = fill_value * (1.0 - np.outer(*inside))
        shape = (1, 1, *fill.shape) if data_format == "channels_first" else (1, *fill.shape, 1)
        x = x + fill.reshape(shape).astype(x.dtype)
    return x
