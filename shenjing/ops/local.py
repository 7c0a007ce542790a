"""Locally connected 2-D op: a convolution whose weights are not shared between positions.

local_conv2d: x (N, H, W, C), kernel (OH*OW, KH*KW*C, F), bias (OH, OW, F) -> y (N, OH, OW, F),
'valid' windows only, with the kernel layout of Keras 2's LocallyConnected2D (implementation=1):
kernel[p] holds the weights of output position p = oh * OW + ow, its rows the window flattened
in (kh, kw, c) order. No Python loop over positions: the windows are copied once into a
(positions, batch, window) matrix stack and every position is one product of a batched matmul.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..errors import ArgumentError
from ..tensor import Op
from .conv import int_tuple


class LocalConv2D(Op):
    """y[n, oh, ow, f] = sum_{i,j,c} x[n, oh*sh + i, ow*sw + j, c] kernel[oh*OW + ow, (i,j,c), f]
    + bias[oh, ow, f].

    Backward: gkernel[p] = cols[p]^T @ gy[p], gcols[p] = gy[p] @ kernel[p]^T, gx = the sum of
    gcols over the windows that cover each pixel, gbias = sum over the batch of gy.
    """

    name = "local_conv2d"

    def __init__(self, kernel_size, strides, out_size):
        self.kernel_size, self.strides, self.out_size = kernel_size, strides, out_size

    def forward(self, x, kernel, bias=None):
        # x (N, H, W, C), kernel (P, K, F), bias (OH, OW, F) -> y (N, OH, OW, F)
        (KH, KW), (SH, SW), (OH, OW) = self.kernel_size, self.strides, self.out_size
        N, C, F = x.shape[0], x.shape[-1], kernel.shape[-1]
        windows = sliding_window_view(x, (KH, KW), axis=(1, 2))
        windows = windows[:, : (OH - 1) * SH + 1 : SH, : (OW - 1) * SW + 1 : SW]
        # windows (N, OH, OW, C, KH, KW) -> cols (OH, OW, N, KH, KW, C), one copy
        cols = np.empty((OH, OW, N, KH, KW, C), dtype=x.dtype)
        np.copyto(cols, windows.transpose(1, 2, 0, 4, 5, 3))
        cols = cols.reshape(OH * OW, N, KH * KW * C)
        y = np.matmul(cols, kernel)  # (P, N, F): one product per position
        y = np.ascontiguousarray(y.reshape(OH, OW, N, F).transpose(2, 0, 1, 3))
        if bias is not None:
            y += bias
        self.saved = x.shape, cols if self.needs_grad[1] else None, kernel
        return y

    def backward(self, gy):
        # gy (N, OH, OW, F) -> gx (N, H, W, C), gkernel (P, K, F), gbias (OH, OW, F)
        (KH, KW), (OH, OW) = self.kernel_size, self.out_size
        x_shape, cols, kernel = self.saved
        N, C = x_shape[0], x_shape[-1]
        gy_p = gy.reshape(N, OH * OW, -1).transpose(1, 0, 2)  # (P, N, F), a view
        gx = gk = gb = None
        if self.needs_grad[1]:
            gk = np.matmul(cols.transpose(0, 2, 1), gy_p)
        if len(self.needs_grad) == 3 and self.needs_grad[2]:
            gb = gy.sum(axis=0)
        if self.needs_grad[0]:
            gcols = np.matmul(gy_p, kernel.transpose(0, 2, 1))  # (P, N, K)
            gcols = gcols.reshape(OH, OW, N, KH, KW, C).transpose(2, 0, 1, 3, 4, 5)
            gx = _scatter_windows(gcols, x_shape, self.kernel_size, self.strides)
        return (gx, gk, gb)[: len(self.needs_grad)]


def _scatter_windows(gcols, x_shape, kernel_size, strides):
    """gx (N, H, W, C): every window's gradient gcols (N, OH, OW, KH, KW, C) added back in place.

    Windows whose positions step by (rh, rw) = (ceil(KH/SH), ceil(KW/SW)) never overlap, so
    each of the rh * rw such phases is one vectorized add through a strided view of gx (a
    single add when the stride is at least the kernel: non-overlapping windows).
    """
    (KH, KW), (SH, SW) = kernel_size, strides
    OH, OW = gcols.shape[1:3]
    gx = np.zeros(x_shape, dtype=gcols.dtype)
    sN, sH, sW, sC = gx.strides
    rh, rw = -(-KH // SH), -(-KW // SW)
    for a in range(min(rh, OH)):
        for b in range(min(rw, OW)):
            src = gcols[:, a::rh, b::rw]
            view = as_strided(
                gx[:, a * SH :, b * SW :], shape=src.shape,
                strides=(sN, rh * SH * sH, rw * SW * sW, sH, sW, sC),
            )
            view += src
    return gx


def _out_sizes(name, in_sizes, kernel_size, strides):
    outs = []
    for axis, n, k, s in zip(("height", "width"), in_sizes, kernel_size, strides):
        if n < k:
            raise ArgumentError(
                f"{name}: the input {axis} {n} is smaller than the kernel {axis} {k} (only "
                f"'valid' windows are supported); the output {axis} would be {(n - k) // s + 1}."
            )
        outs.append((n - k) // s + 1)
    return tuple(outs)


def local_conv2d(x, kernel, bias=None, *, kernel_size, strides=1):
    """Locally connected 2-D layer op (unshared weights), channels-last, 'valid' windows.

    Args: x (N, H, W, C); kernel (OH*OW, KH*KW*C, F), row p = oh*OW + ow, window in (kh, kw, c)
    order (Keras 2's layout); bias (OH, OW, F) or None; kernel_size, strides an int or a pair.
    Output (N, OH, OW, F), OH = floor((H - KH) / SH) + 1, OW likewise.
    """
    name = "local_conv2d"
    kernel_size = int_tuple(kernel_size, 2, "kernel_size", name)
    strides = int_tuple(strides, 2, "strides", name)
    x_shape, k_shape = np.shape(x), np.shape(kernel)
    if len(x_shape) != 4:
        raise ArgumentError(
            f"{name}: expected input of rank 4 (batch, height, width, channels), got shape "
            f"{x_shape}."
        )
    OH, OW = _out_sizes(name, x_shape[1:3], kernel_size, strides)
    KH, KW = kernel_size
    C = x_shape[-1]
    if len(k_shape) != 3 or k_shape[:2] != (OH * OW, KH * KW * C) or k_shape[2] < 1:
        raise ArgumentError(
            f"{name}: expected a kernel of shape ({OH * OW}, {KH * KW * C}, filters) "
            f"(output positions {OH}*{OW}, window {KH}*{KW}*{C} for input shape {x_shape}, "
            f"kernel_size {kernel_size}, strides {strides}), got shape {k_shape}."
        )
    if bias is not None and np.shape(bias) != (OH, OW, k_shape[2]):
        raise ArgumentError(
            f"{name}: expected a bias of shape (output height, output width, filters) = "
            f"({OH}, {OW}, {k_shape[2]}), got shape {np.shape(bias)}."
        )
    op = LocalConv2D(kernel_size, strides, (OH, OW))
    return op(x, kernel) if bias is None else op(x, kernel, bias)
