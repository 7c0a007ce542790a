"""Pooling over channels-last inputs: max and average over windows, and global pools.

Windows follow conv's rules ('valid' or 'same', strides default to the pool size). Max pooling
pads with -inf, so it never picks padding; its gradient goes to one element per window, the
first maximum in row-major window order (PyTorch's rule). Average pooling divides by the number
of real (non-padding) pixels in each window, as Keras does.
"""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op
from . import parallel
from . import reduce as _reduce
from .conv import give_buffer, int_tuple, take_buffer, window_geometry


def window_views(xp, window, strides, out_size):
    """For each window offset (row-major), the (N, OH, OW, C) view of xp (N, H, W, C) it reads."""
    (OH, OW), (sh, sw) = out_size, strides
    for a in range(window[0]):
        for b in range(window[1]):
            yield xp[:, a:a + sh * (OH - 1) + 1:sh, b:b + sw * (OW - 1) + 1:sw]


def max_into(xp, window, strides, out):
    """out (N, OH, OW, C) <- the max over each window of xp: one pass per window offset; 2x2
    windows tiling xp exactly take the max of row pairs first (long contiguous runs), then of
    column pairs (128x28x28x32: 1.49 vs 1.77 ms)."""
    N, OH, OW, C = out.shape
    if window == strides == (2, 2) and xp.shape[1:3] == (2 * OH, 2 * OW) \
            and xp.flags.c_contiguous:
        rows = xp.reshape(N, OH, 2, 2 * OW * C)
        pairs = np.maximum(rows[:, :, 0], rows[:, :, 1]).reshape(N, OH, OW, 2, C)
        return np.maximum(pairs[:, :, :, 0], pairs[:, :, :, 1], out=out)
    views = window_views(xp, window, strides, out.shape[1:3])
    np.copyto(out, next(views))
    for view in views:
        np.maximum(out, view, out=out)
    return out


class Pool(Op):
    """y[n, i, j, c] = max (or mean over real pixels) of xp[n, i*sh:i*sh+ph, j*sw:j*sw+pw, c].

    Rank-3 inputs (N, W, C) are 1-D pools (height 1). relu (max only): y = max(0, window max),
    the ReLU that would follow, in the same passes: its gradient goes to the first maximum of
    each window whose maximum is positive, none elsewhere (as a ReLU then the pool give it).
    """

    def __init__(self, name, mode, window, strides, pads, out_size, relu=False):
        self.name, self.mode, self.window, self.strides = name, mode, window, strides
        self.pads, self.out_size, self.relu = pads, out_size, relu
        # the code of a window's first maximum for the backward: its offset (row-major), or
        # with relu one more than that, and 0 where the maximum is not positive
        self.first_code = int(relu)
        # non-overlapping windows: each input pixel belongs to one window at most
        self.tiled = all(k <= s for k, s in zip(window, strides))

    def forward(self, x):
        # x (N, H, W, C) -> y (N, OH, OW, C)   (1-D: x (N, W, C) -> y (N, OW, C))
        self.one_d = x.ndim == 3
        if self.one_d:
            x = x[:, None]
        self.x_shape = x.shape
        xp = self._padded(x)
        keep = self.mode == "max" and any(getattr(self, "needs_grad", ()))
        y = np.empty((x.shape[0], *self.out_size, x.shape[3]), x.dtype)
        if keep:
            count = self.window[0] * self.window[1] + self.first_code
            self.winner = np.zeros(y.shape, np.uint8 if count <= 256 else np.int32)
        zero = x.dtype.type(0)
        # one elementwise pass per window offset: ~3x faster than a max over two strided axes;
        # parts of the batch on the threads (ops/parallel.py)

        def work(s):
            if not keep and self.mode == "max":
                max_into(xp[s], self.window, self.strides, y[s])
                if self.relu:
                    np.maximum(y[s], zero, out=y[s])
                return
            views = self._windows(xp[s])
            ys, first = y[s], next(views)
            if self.relu:
                np.maximum(first, zero, out=ys)
            else:
                np.copyto(ys, first)
            if not keep:  # average
                for view in views:
                    np.add(ys, view, out=ys)
                return
            winner, better = self.winner[s], np.empty(ys.shape, bool)
            if self.relu:
                np.greater(first, zero, out=better)
                np.copyto(winner, better)
            candidate = np.empty(ys.shape, winner.dtype)
            for offset, view in enumerate(views, start=1):
                np.greater(view, ys, out=better)  # strictly: a tie keeps the earlier offset
                # codes only grow, so max(winner, better * code) records the newest win
                np.multiply(better, winner.dtype.type(offset + self.first_code), out=candidate)
                np.maximum(winner, candidate, out=winner)
                np.maximum(ys, view, out=ys)

        parallel.over_batch(work, x.shape[0], xp.size)
        if self.mode == "avg":
            y *= self._inverse_counts(x.dtype)
        if xp is not x:
            give_buffer(xp)
        return y[:, 0] if self.one_d else y

    def backward(self, gy):
        # gy (N, OH, OW, C) -> gx (N, H, W, C)
        if self.one_d:
            gy = gy[:, None]
        if self.mode == "avg":
            gxp = self._spread(gy * self._inverse_counts(gy.dtype))
        else:
            gxp = self._route_to_max(gy)
        H, W = self.x_shape[1:3]
        (top, _), (left, _) = self.pads
        gx = gxp if gxp.shape == self.x_shape else gxp[:, top:top + H, left:left + W].copy()
        return gx[:, 0] if self.one_d else gx

    def _padded(self, x):
        """x with its pads (-inf for max, zeros for average); x itself when there are none."""
        (top, bottom), (left, right) = self.pads
        if top == bottom == left == right == 0:
            return x
        N, H, W, C = x.shape
        xp = take_buffer((N, H + top + bottom, W + left + right, C), x.dtype)
        xp[...] = -np.inf if self.mode == "max" else 0
        xp[:, top:top + H, left:left + W] = x
        return xp

    def _windows(self, xp):
        return window_views(xp, self.window, self.strides, self.out_size)

    def _inverse_counts(self, dtype):
        """1 / (real pixels per window), shaped (OH, OW, 1) to broadcast over (N, OH, OW, C)."""
        counts = []
        for n, k, s, out, (before, _) in zip(
            self.x_shape[1:3], self.window, self.strides, self.out_size, self.pads
        ):
            start = np.arange(out) * s - before
            counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
        return (1.0 / np.outer(*counts)).astype(dtype)[:, :, None]

    def _gradient_buffer(self, dtype):
        """The padded input's gradient: zeros, unless the windows write every pixel once."""
        (top, bottom), (left, right) = self.pads
        N, H, W, C = self.x_shape
        shape = (N, H + top + bottom, W + left + right, C)
        exact = self.window == self.strides and all(
            out * s == n for out, s, n in zip(self.out_size, self.strides, shape[1:3]))
        return np.empty(shape, dtype) if exact else np.zeros(shape, dtype)

    def _spread(self, g):
        """gxp (padded input shape): every window adds g (N, OH, OW, C) to each of its pixels."""
        gxp = self._gradient_buffer(g.dtype)

        def work(s):
            for view in self._windows(gxp[s]):
                if self.tiled:  # windows do not overlap: each pixel is written once
                    view[...] = g[s]
                else:
                    view += g[s]

        parallel.over_batch(work, len(g), gxp.size)
        return gxp

    def _route_to_max(self, gy):
        """gxp: gy goes to the first maximum (row-major) of each window, zeros elsewhere."""
        gxp = self._gradient_buffer(gy.dtype)

        def work(s):
            g, winner = gy[s], self.winner[s]
            won = np.empty(g.shape, bool)
            for offset, g_view in enumerate(self._windows(gxp[s])):
                np.equal(winner, offset + self.first_code, out=won)
                if self.tiled:  # windows do not overlap: each pixel is written once
                    np.multiply(g, won, out=g_view)
                else:
                    g_view += g * won

        parallel.over_batch(work, len(gy), gxp.size)
        return gxp


def pool_geometry(name, in_sizes, window, strides, padding):
    """(window, pads, output sizes) the op computes with: those of conv's rules, except that a
    'same' window reaching past the input is cut to what its windows can read.

    Window i covers [i*s - before, i*s - before + k) and reads only the real pixels in it (max
    pads with -inf, average counts real pixels), so two windows of different lengths and pads
    that cover the same real pixels give the same values and gradients. Per axis (OL outputs):
    pads before beyond (OL - 1) * s only put every window's start in the padding, and a window
    whose first position already reaches past the end reads everything up to the end from
    every offset; cutting both leaves a window of at most n + (OL - 1) * s < 2n pixels. So
    MaxPooling1D(10**9, padding='same') on 8 steps loops over 8 offsets, not 10**9 (it ran for
    minutes), and a window within the input is left as it is.
    """
    ones = (1,) * len(in_sizes)  # no dilation
    pads, out = window_geometry(name, in_sizes, window, strides, padding, ones, "pool window")
    if not (isinstance(padding, str) and padding.lower() == "same"):
        return tuple(window), pads, out
    cut_window, cut_pads = [], []
    for n, k, s, (before, _), size in zip(in_sizes, window, strides, pads, out):
        last_start = (size - 1) * s  # the last window's start, counted from the first's
        kept_before = min(before, last_start)
        k -= before - kept_before  # every window keeps its end
        if k - kept_before >= n:  # the first window ends past the input: all of them do
            k = n + kept_before
        cut_window.append(k)
        cut_pads.append((kept_before, max(last_start + k - kept_before - n, 0)))
    return tuple(cut_window), tuple(cut_pads), out


def _pool(name, mode, rank, x, pool_size, strides, padding, relu=False):
    shape = np.shape(x)
    spatial = ("width",) if rank == 1 else ("height", "width")
    if len(shape) != rank + 2:
        axes = ", ".join(("batch", *spatial, "channels"))
        raise ArgumentError(
            f"{name}: expected input of rank {rank + 2} ({axes}), got shape {shape}.")
    window = int_tuple(pool_size, rank, "pool_size", name)
    strides = window if strides is None else int_tuple(strides, rank, "strides", name)
    if not (isinstance(padding, str) and padding.lower() in ("valid", "same")):
        raise ArgumentError(f"{name}: padding must be 'valid' or 'same', got {padding!r}.")
    window, pads, out = pool_geometry(name, shape[1:-1], window, strides, padding)
    if rank == 1:
        window, strides, pads, out = (1, *window), (1, *strides), ((0, 0), *pads), (1, *out)
    return Pool(name, mode, window, strides, pads, out, relu)(x)


def max_pool2d(x, pool_size=2, strides=None, padding="valid", relu=False):
    """Max over (ph, pw) windows of x (N, H, W, C) -> (N, OH, OW, C); strides default to
    pool_size; padding 'valid' or 'same' (padded with -inf). Output size as conv2d's.
    relu: relu(max_pool2d(x)) (= max_pool2d(relu(x))) in one op, values and gradients alike."""
    return _pool("max_pool2d", "max", 2, x, pool_size, strides, padding, relu)


def avg_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Mean over (ph, pw) windows of x (N, H, W, C) -> (N, OH, OW, C), counting only real
    pixels under 'same' padding (Keras' rule); strides default to pool_size."""
    return _pool("avg_pool2d", "avg", 2, x, pool_size, strides, padding)


def max_pool1d(x, pool_size=2, strides=None, padding="valid", relu=False):
    """Max over windows of x (N, W, C) -> (N, OW, C); rules (and relu) as max_pool2d."""
    return _pool("max_pool1d", "max", 1, x, pool_size, strides, padding, relu)


def avg_pool1d(x, pool_size=2, strides=None, padding="valid"):
    """Mean over windows of x (N, W, C) -> (N, OW, C); rules as avg_pool2d."""
    return _pool("avg_pool1d", "avg", 1, x, pool_size, strides, padding)


def _global(name, rank, x, keepdims, reducer):
    shape = np.shape(x)
    if len(shape) != rank + 2:
        axes = "batch, height, width, channels" if rank == 2 else "batch, width, channels"
        raise ArgumentError(
            f"{name}: expected input of rank {rank + 2} ({axes}), got shape {shape}.")
    return reducer(x, axis=tuple(range(1, rank + 1)), keepdims=keepdims)


def global_avg_pool2d(x, keepdims=False):
    """Mean over height and width: (N, H, W, C) -> (N, C), or (N, 1, 1, C) with keepdims."""
    return _global("global_avg_pool2d", 2, x, keepdims, _reduce.mean)


def global_max_pool2d(x, keepdims=False):
    """Max over height and width: (N, H, W, C) -> (N, C) (or (N, 1, 1, C)); tied maxima share
    the gradient equally, as torch.amax and Keras' reduce_max do."""
    return _global("global_max_pool2d", 2, x, keepdims, _reduce.max)


def global_avg_pool1d(x, keepdims=False):
    """Mean over steps: (N, W, C) -> (N, C), or (N, 1, C) with keepdims."""
    return _global("global_avg_pool1d", 1, x, keepdims, _reduce.mean)


def global_max_pool1d(x, keepdims=False):
    """Max over steps: (N, W, C) -> (N, C) (or (N, 1, C)); ties share the gradient equally."""
    return _global("global_max_pool1d", 1, x, keepdims, _reduce.max)
