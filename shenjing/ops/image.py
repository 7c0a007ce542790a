"""Image sampling: affine_transform, with Keras 3's (torch backend) conventions.

It reduces to one differentiable op, ``Sample``: every output pixel is a weighted sum of a few
input pixels of the same image and channel (1 for nearest, 4 for bilinear) plus a constant
(the fill value's share outside the image): y[n, i, j, c] = sum_k w_k x[n, r_k, s_k, c] + b.
Images are (N, H, W, C); channels_first inputs are transposed in and out. Resizing, which is
separable, is ops.resize (one linear map per axis).
"""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op
from .resize import check_images
from .shape import transpose

INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")


class Sample(Op):
    """y[n, i, j, c] = sum_k w_k[n, i, j] x[n, r_k[n, i, j], s_k[n, i, j], c] + b[n, i, j].

    Settings (built by affine_transform): taps, a list of (rows, cols, weights) arrays
    broadcastable to (N, OH, OW), and bias b (or None). gx scatters gy * w_k back to (r_k, s_k).
    """

    def __init__(self, taps, bias=None):
        self.taps, self.bias = taps, bias

    def forward(self, x):
        # x (N, H, W, C) -> y (N, OH, OW, C)
        self.in_shape = x.shape
        n = np.arange(x.shape[0]).reshape(-1, 1, 1)
        self.batch = n
        y = None
        for rows, cols, weights in self.taps:
            term = weights[..., None].astype(x.dtype) * x[n, rows, cols]
            y = term if y is None else y + term
        if self.bias is not None:
            y = y + self.bias[..., None].astype(x.dtype)
        return y

    def backward(self, gy):
        # gy (N, OH, OW, C) -> gx (N, H, W, C)
        gx = np.zeros(self.in_shape, dtype=gy.dtype)
        for rows, cols, weights in self.taps:
            index = np.broadcast_arrays(self.batch, rows, cols)
            np.add.at(gx, tuple(index), weights[..., None].astype(gy.dtype) * gy)
        return gx


def _fix_index(index, size, fill_mode):
    """Integer indices mapped into [0, size) by Keras's rule for fill_mode (constant clips;
    which taps fall outside is decided separately)."""
    if fill_mode in ("constant", "nearest"):
        return np.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return index % size
    if fill_mode == "mirror":  # d c b | a b c d | c b a: a triangle wave of period 2(size - 1)
        s = max(size - 1, 1)
        return np.abs((index + s) % (2 * s) - s) if size > 1 else np.zeros_like(index)
    # reflect, half-sample symmetric: d c b a | a b c d | d c b a
    s = 2 * size
    return (np.abs((2 * index + 1 + s) % (2 * s) - s) - 1) // 2


def _taps_1d(coordinate, interpolation):
    """[(integer index, weight)] for sampling at float coordinates along one axis."""
    if interpolation == "nearest":
        return [(np.rint(coordinate).astype(np.int64), np.ones_like(coordinate))]
    lower = np.floor(coordinate)
    upper_weight = coordinate - lower
    lower = lower.astype(np.int64)
    return [(lower, 1.0 - upper_weight), (lower + 1, upper_weight)]


def _taps_2d(ys, xs, height, width, interpolation, fill_mode, fill_value):
    """The Sample op's taps and bias for sampling an (H, W) image at (ys, xs)."""
    taps, outside = [], 0.0
    for row, wy in _taps_1d(ys, interpolation):
        for col, wx in _taps_1d(xs, interpolation):
            weight = wy * wx
            if fill_mode == "constant":
                valid = (row >= 0) & (row < height) & (col >= 0) & (col < width)
                outside = outside + np.where(valid, 0.0, weight)
                weight = np.where(valid, weight, 0.0)
            taps.append((_fix_index(row, height, fill_mode), _fix_index(col, width, fill_mode),
                         weight))
    bias = None
    if fill_mode == "constant" and fill_value != 0:
        bias = fill_value * np.broadcast_to(outside, np.broadcast_shapes(ys.shape, xs.shape))
    return taps, bias


def _check(images, interpolation, data_format, where):
    images = check_images(images, interpolation, INTERPOLATIONS, data_format, where)
    if data_format == "channels_first":
        images = transpose(images, (0, 2, 3, 1))
    return images


def _finish(y, data_format):
    return transpose(y, (0, 3, 1, 2)) if data_format == "channels_first" else y


def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant",
                     fill_value=0.0, data_format="channels_last"):
    """Sample each image at its transform of the output grid, as keras.ops.image.

    transform (N, 8) or (8,): [a0, a1, a2, b0, b1, b2, c0, c1] maps output pixel (x, y) to
    input ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1.
    fill_mode outside the image: 'reflect' (d c b a | a b c d | d c b a), 'wrap', 'mirror'
    (c b | a b c | b a), 'nearest' (edge), 'constant' (fill_value). Differentiable in images.
    """
    x = _check(images, interpolation, data_format, "affine_transform")
    if fill_mode not in FILL_MODES:
        raise ArgumentError(f"affine_transform: fill_mode must be one of {FILL_MODES}, got "
                            f"{fill_mode!r}.")
    transform = np.asarray(getattr(transform, "data", transform), dtype=np.float64)
    if transform.ndim == 1:
        transform = transform[None]
    if transform.ndim != 2 or transform.shape[1] != 8 or transform.shape[0] not in (
            1, x.shape[0]):
        raise ArgumentError(f"affine_transform: transform must be of shape (8,) or (batch, 8) "
                            f"with batch {x.shape[0]}, got {transform.shape}.")
    _, height, width, _ = x.shape
    a0, a1, a2, b0, b1, b2, c0, c1 = (t.reshape(-1, 1, 1) for t in transform.T)
    ys = np.arange(height, dtype=np.float64).reshape(1, -1, 1)
    xs = np.arange(width, dtype=np.float64).reshape(1, 1, -1)
    k = c0 * xs + c1 * ys + 1.0
    source_x = (a0 * xs + a1 * ys + a2) / k
    source_y = (b0 * xs + b1 * ys + b2) / k
    taps, bias = _taps_2d(source_y, source_x, height, width, interpolation, fill_mode,
                          float(fill_value))
    return _finish(Sample(taps, bias)(x), data_format)
