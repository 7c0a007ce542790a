"""Image sampling ops: resize and affine_transform, with Keras 3's (torch backend) conventions.

Both reduce to one differentiable op, ``Sample``: every output pixel is a weighted sum of a few
input pixels of the same image and channel (1 for nearest, 4 for bilinear) plus a constant
(the fill value's share outside the image): y[n, i, j, c] = sum_k w_k x[n, r_k, s_k, c] + b.
Images are (N, H, W, C); channels_first inputs are transposed in and out.
"""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op, as_tensor
from .shape import transpose

INTERPOLATIONS = ("nearest", "bilinear")
FILL_MODES = ("reflect", "wrap", "constant", "nearest", "mirror")


class Sample(Op):
    """y[n, i, j, c] = sum_k w_k[n, i, j] x[n, r_k[n, i, j], s_k[n, i, j], c] + b[n, i, j].

    Settings (built by resize/affine_transform): taps, a list of (rows, cols, weights) arrays
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
    images = as_tensor(images)
    if images.ndim != 4:
        raise ArgumentError(f"{where}: expected images of rank 4 (batch, height, width, "
                            f"channels), got shape {images.shape}.")
    if interpolation not in INTERPOLATIONS:
        raise ArgumentError(f"{where}: interpolation must be one of {INTERPOLATIONS}, got "
                            f"{interpolation!r}.")
    if data_format not in ("channels_last", "channels_first"):
        raise ArgumentError(f"{where}: data_format must be 'channels_last' or "
                            f"'channels_first', got {data_format!r}.")
    if data_format == "channels_first":
        images = transpose(images, (0, 2, 3, 1))
    return images


def _finish(y, data_format):
    return transpose(y, (0, 3, 1, 2)) if data_format == "channels_first" else y


def _source_coordinates(out_size, in_size, interpolation, dtype):
    """Torch's interpolate (align_corners=False) source coordinate of each output index.

    NOTE: computed in the images' float dtype as torch does: 'nearest' (torch's
    nearest-exact, floor((i + 0.5) * in / out)) lands on exact integers for some sizes, and
    float32 and float64 round those differently (10 -> 3: float32 gives 4, float64 5).
    """
    scale = dtype.type(in_size) / dtype.type(out_size)
    centre = np.arange(out_size, dtype=dtype) + dtype.type(0.5)
    if interpolation == "nearest":
        return np.minimum(np.floor(centre * scale), in_size - 1).astype(np.int64), None
    source = np.maximum(centre * scale - dtype.type(0.5), 0).astype(np.float64)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, in_size - 1)
    return (lower, upper), source - lower


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


def resize(images, size, interpolation="bilinear", crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_value=0.0, data_format="channels_last"):
    """Resize (N, H, W, C) images to size (OH, OW) as torch's interpolate does (Keras's torch
    backend): bilinear with align_corners=False, 'nearest' as torch's nearest-exact.

    crop_to_aspect_ratio: first cut the centred largest box of the target's aspect ratio;
    pad_to_aspect_ratio: first pad both sides with fill_value to that ratio (Keras's torch
    backend pads the same amount on each side). Differentiable in images.
    """
    x = _check(images, interpolation, data_format, "resize")
    out_height, out_width = size
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ArgumentError("resize: pass crop_to_aspect_ratio or pad_to_aspect_ratio, not both.")
    _, height, width, _ = x.shape
    top = left = 0
    if crop_to_aspect_ratio:
        top, left, height, width = _aspect_box(height, width, out_height, out_width, True)
    elif pad_to_aspect_ratio:
        pad_top, pad_left, _, _ = _aspect_box(height, width, out_height, out_width, False)
        top, left = -pad_top, -pad_left
        height, width = height + 2 * pad_top, width + 2 * pad_left
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    rows, row_weight = _source_coordinates(out_height, height, interpolation, dtype)
    cols, col_weight = _source_coordinates(out_width, width, interpolation, dtype)
    if interpolation == "nearest":
        row_taps, col_taps = [(rows, 1.0)], [(cols, 1.0)]
    else:
        row_taps = [(rows[0], 1.0 - row_weight), (rows[1], row_weight)]
        col_taps = [(cols[0], 1.0 - col_weight), (cols[1], col_weight)]
    taps, outside = [], 0.0
    in_height, in_width = x.shape[1], x.shape[2]
    for r, wy in row_taps:
        for c, wx in col_taps:
            r_in, c_in = (r + top)[None, :, None], (c + left)[None, None, :]
            weight = np.asarray(wy, dtype=np.float64).reshape(1, -1, 1) * np.asarray(
                wx, dtype=np.float64).reshape(1, 1, -1)
            # pad_to_aspect_ratio: taps on the padding take fill_value
            valid = (r_in >= 0) & (r_in < in_height) & (c_in >= 0) & (c_in < in_width)
            outside = outside + np.where(valid, 0.0, weight)
            taps.append((np.clip(r_in, 0, in_height - 1), np.clip(c_in, 0, in_width - 1),
                         np.where(valid, weight, 0.0)))
    bias = None
    if pad_to_aspect_ratio and fill_value != 0:
        bias = fill_value * np.broadcast_to(outside, (1, out_height, out_width))
    return _finish(Sample(taps, bias)(x), data_format)


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
