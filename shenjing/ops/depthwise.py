"""Depthwise convolution: every input channel convolved with its own depth_multiplier filters.

depthwise_conv2d: x (N, H, W, C), kernel (KH, KW, C, M) -> y (N, OH, OW, C*M), output channel
c*M + m from input channel c and filter m (Keras's layout and order; PyTorch's conv2d with
groups=C and weight (C*M, 1, KH, KW)). depthwise_conv1d runs through the same code with a height
of 1. Padding, strides and dilation follow conv2d (ops.conv: resolve_padding, window_geometry).

No channel is mixed with another, so there is no product to hand to the BLAS: the op is a sum
over the KH*KW kernel taps, each one vectorized multiply-add over the whole batch, every output
position and channel at once (a loop over taps, as conv's col2im, never over the batch or
positions).
"""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op
from . import parallel
from .conv import as_2d, check_shapes, window_arguments


class DepthwiseConv(Op):
    """y[n, i, j, c*M + m] = b[c*M + m] + sum_{a,b} xp[n, i*sh + a*dh, j*sw + b*dw, c] k[a, b, c, m].

    xp is x zero-padded by pads. Backward, per tap (a, b) and its strided window w_ab of xp:
    gk[a, b, c, m] = sum_{n,i,j} w_ab[n, i, j, c] gy[n, i, j, c, m];
    gxp[window (a, b)] += sum_m gy[..., c, m] k[a, b, c, m]; gb = sum_{n,i,j} gy.
    Rank-3 inputs (N, W, C) with kernels (K, C, M) are the 1-D case.
    """

    name = "depthwise_conv"

    def __init__(self, strides, pads, dilation, out_size):
        self.strides, self.pads, self.dilation, self.out_size = strides, pads, dilation, out_size

    def _window(self, xp, a, b):
        """The (N, OH, OW, C) view of xp that kernel tap (a, b) reads."""
        (sh, sw), (dh, dw), (OH, OW) = self.strides, self.dilation, self.out_size
        return xp[:, a * dh: a * dh + sh * (OH - 1) + 1: sh,
                  b * dw: b * dw + sw * (OW - 1) + 1: sw]

    def forward(self, x, kernel, bias=None):
        # x (N, H, W, C), kernel (KH, KW, C, M), bias (C*M,) -> y (N, OH, OW, C*M)
        # (1-D: x (N, W, C), kernel (K, C, M) -> y (N, OW, C*M))
        x, kernel, dtype = as_2d(self, x, kernel, bias)
        (top, bottom), (left, right) = self.pads
        N, H, W, C = x.shape
        KH, KW, _, M = kernel.shape
        xp = x
        if top + bottom + left + right:
            xp = np.zeros((N, H + top + bottom, W + left + right, C), dtype)
            xp[:, top:top + H, left:left + W] = x
        y = np.empty((N, *self.out_size, C, M), dtype)

        def taps(s):  # y[s] = sum over taps of window * kernel[a, b]
            ys, xs = y[s], xp[s]
            ys[...] = 0
            term = np.empty_like(ys)
            for a in range(KH):
                for b in range(KW):
                    np.multiply(self._window(xs, a, b)[..., None], kernel[a, b], out=term)
                    ys += term

        parallel.over_batch(taps, N, y.size + xp.size)
        y = y.reshape(N, *self.out_size, C * M)
        if bias is not None:
            y += bias.astype(dtype, copy=False)
        self.saved = (xp if self.needs_grad and self.needs_grad[1] else None, kernel, x.shape)
        return y[:, 0] if self.one_d else y

    def backward(self, gy):
        # gy (N, OH, OW, C*M) -> gx (N, H, W, C), gkernel (KH, KW, C, M), gbias (C*M,)
        xp, kernel, x_shape = self.saved
        if self.one_d:
            gy = gy[:, None]
        KH, KW, C, M = kernel.shape
        N, H, W, _ = x_shape
        gy5 = gy.reshape(*gy.shape[:3], C, M)
        gx = gk = gb = None
        if self.needs_grad[1]:
            partial = {}  # one kernel gradient per part of the batch, summed below

            def kernel_taps(s):
                g = partial[s.start] = np.empty(kernel.shape, gy.dtype)
                for a in range(KH):
                    for b in range(KW):
                        g[a, b] = np.einsum("nijc,nijcm->cm", self._window(xp[s], a, b), gy5[s])

            parallel.over_batch(kernel_taps, N, xp.size + gy.size)
            gk = sum(partial.values())
            gk = (gk[0] if self.one_d else gk).astype(self.dtypes[1], copy=False)
        if self.needs_grad[0]:
            (top, bottom), (left, right) = self.pads
            gxp = np.empty((N, H + top + bottom, W + left + right, C), gy.dtype)

            def input_taps(s):  # each tap's sum_m gy k[a, b] added back at its window
                gs = gxp[s]
                gs[...] = 0
                for a in range(KH):
                    for b in range(KW):
                        self._window(gs, a, b)[...] += np.einsum("nijcm,cm->nijc", gy5[s],
                                                                 kernel[a, b])

            parallel.over_batch(input_taps, N, gxp.size + gy.size)
            gx = gxp[:, top:top + H, left:left + W]
            gx = (gx[:, 0] if self.one_d else gx).astype(self.dtypes[0], copy=False)
        if len(self.needs_grad) == 3 and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 1, 2)).astype(self.dtypes[2], copy=False)
        return (gx, gk) if len(self.needs_grad) == 2 else (gx, gk, gb)


def _check(name, rank, x, kernel, bias):
    """(spatial sizes, kernel sizes) of valid arguments, else an ArgumentError."""
    x_shape, k_shape = check_shapes(name, rank, x, kernel, ("in_channels", "depth_multiplier"))
    C, M = k_shape[-2:]
    if x_shape[-1] != C:
        raise ArgumentError(f"{name}: input has {x_shape[-1]} channels (shape {x_shape}) but the "
                            f"kernel expects {C} (kernel shape {k_shape}).")
    if bias is not None and np.shape(bias) != (C * M,):
        raise ArgumentError(f"{name}: expected a bias of shape ({C * M},) (in_channels * "
                            f"depth_multiplier), got shape {np.shape(bias)}.")
    return x_shape[1:-1], k_shape[:rank]


def depthwise_conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """2-D depthwise convolution, channels-last; returns (N, OH, OW, C*M).

    Args: x (N, H, W, C); kernel (KH, KW, C, M) (M = depth_multiplier); bias (C*M,) or None;
    strides, dilation_rate an int or a pair; padding as conv2d ('valid', 'same', ints, pairs).
    Output channel c*M + m is input channel c convolved with kernel[:, :, c, m].
    """
    sizes, window = _check("depthwise_conv2d", 2, x, kernel, bias)
    op = DepthwiseConv(*window_arguments("depthwise_conv2d", 2, sizes, window, strides,
                                         padding, dilation_rate))
    return op(x, kernel) if bias is None else op(x, kernel, bias)


def depthwise_conv1d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """1-D depthwise convolution over (N, W, C) with a kernel (K, C, M); returns (N, OW, C*M).

    Same rules as depthwise_conv2d along one axis; explicit padding is an int or (left, right).
    """
    sizes, window = _check("depthwise_conv1d", 1, x, kernel, bias)
    op = DepthwiseConv(*window_arguments("depthwise_conv1d", 1, sizes, window, strides,
                                         padding, dilation_rate))
    return op(x, kernel) if bias is None else op(x, kernel, bias)
