"""Transposed convolution ("deconvolution"), channels-last, with Keras 3's output sizes.

conv_transpose2d: x (N, h, w, C), kernel (KH, KW, F, C) -> y (N, H, W, F); Keras's kernel layout
(kernel_size + (filters, in_channels)), which is the layout of the conv that maps y's shape back
to x's: conv2d with that kernel takes (N, H, W, F) to (N, h, w, C). The transposed conv is that
conv's input gradient, so both directions reuse ops.conv's Conv:

    forward   y  = Conv's input gradient with gy := x        (col2im, or im2col at stride 1)
    backward  gx = Conv's forward of gy                      (im2col and one product)
              gk = im2col(gy)^T @ x, Conv's kernel gradient with the roles of x and gy swapped

Sizes along one axis (n in, k kernel, s stride, d dilation, ek = d*(k-1) + 1, p = output
padding): 'valid' (n-1)*s + ek + p, p defaulting to max(ek, s) - ek; 'same' n*s, or
(n-1)*s + ek % 2 + p when p is given. The full output (n-1)*s + ek is cropped (or, where the
crop is negative, extended with zeros) by conv_transpose_crops, as Keras does on every backend.
"""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op
from . import parallel
from .conv import Conv, as_2d, check_shapes, give_buffer, int_tuple


def conv_transpose_crops(n, k, stride=1, padding="valid", output_padding=None, dilation=1):
    """(crop_before, crop_after, output size) of a transposed conv along one axis, Keras 3's rule.

    The full output (n - 1)*s + ek loses crop_before values in front and crop_after at the end;
    crop_after < 0 appends that many zeros. Keras states it as the zero padding (before, after)
    of a stride-dilated input: crop = ek - 1 - pad. 'same' puts the odd pad before.
    """
    ek = dilation * (k - 1) + 1
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode == "valid":
        extra = max(ek, stride) - ek if output_padding is None else output_padding
        before, after = ek - 1, ek - 1 + extra
    elif mode == "same":
        total = stride + ek - 2 if output_padding is None else ek + ek % 2 - 2 + output_padding
        before = min(total // 2 + total % 2, ek - 1)
        after = total - before
    else:
        raise ArgumentError(f"conv_transpose: padding must be 'valid' or 'same', got {padding!r}.")
    crop_before, crop_after = ek - 1 - before, ek - 1 - after
    return crop_before, crop_after, (n - 1) * stride + ek - crop_before - crop_after


class ConvTranspose(Op):
    """y[n, i*sh + a*dh - ch, j*sw + b*dw - cw, f] += x[n, i, j, c] k[a, b, f, c], + bias[f].

    (ch, cw) are the crops in front (conv_transpose_crops); positions past the full output are
    zeros. Equivalently y = dConv(x_y)/dx_y applied to x, for the conv of y-shaped inputs with
    pads (ch, max(crop_after, 0)) per axis: see the module docstring for the backward.
    Rank-3 inputs (N, w, C) with kernels (K, F, C) are the 1-D case.
    """

    name = "conv_transpose"

    def __init__(self, strides, pads, dilation, in_size, out_size):
        # pads: those of the forward conv whose input gradient this is (see the docstring)
        self.strides, self.pads, self.dilation = strides, pads, dilation
        self.in_size, self.out_size = in_size, out_size

    def _conv(self, x_shape, kernel):
        """The conv from y's shape (N, H, W, F) to x's (N, h, w, C) that this op transposes."""
        conv = Conv(self.name, self.strides, self.pads, self.dilation, self.in_size)
        conv.kernel, conv.kernel_shape = kernel, kernel.shape
        conv.x_shape = (x_shape[0], *self.out_size, kernel.shape[2])
        return conv

    def forward(self, x, kernel, bias=None):
        # x (N, h, w, C), kernel (KH, KW, F, C), bias (F,) -> y (N, H, W, F)
        # (1-D: x (N, w, C), kernel (K, F, C) -> y (N, W, F))
        x, kernel, dtype = as_2d(self, x, kernel, bias)
        y = self._conv(x.shape, kernel)._input_gradient(x)
        if bias is not None:
            y += bias.astype(dtype, copy=False)
        wants_kernel_grad = bool(self.needs_grad) and self.needs_grad[1]
        self.saved = (x if wants_kernel_grad else None, kernel, x.shape)
        return y[:, 0] if self.one_d else y

    def backward(self, gy):
        # gy (N, H, W, F) -> gx (N, h, w, C), gkernel (KH, KW, F, C), gbias (F,)
        x, kernel, x_shape = self.saved
        if self.one_d:
            gy = gy[:, None]
        conv = self._conv(x_shape, kernel)
        gx = gk = gb = None
        if self.needs_grad[0]:
            gx = conv.infer(gy, kernel, None)  # the conv's forward
            gx = (gx[:, 0] if self.one_d else gx).astype(self.dtypes[0], copy=False)
        if self.needs_grad[1]:
            columns, buffer = conv._columns(gy)  # (N*h*w, KH*KW*F)
            gk = parallel.matmul_tn(columns, x.reshape(-1, x.shape[-1])).reshape(kernel.shape)
            give_buffer(buffer)
            gk = (gk[0] if self.one_d else gk).astype(self.dtypes[1], copy=False)
        if len(self.needs_grad) == 3 and self.needs_grad[2]:
            gb = gy.sum(axis=(0, 1, 2)).astype(self.dtypes[2], copy=False)
        return (gx, gk) if len(self.needs_grad) == 2 else (gx, gk, gb)



def _geometry(name, rank, x, kernel, bias, strides, padding, output_padding, dilation_rate):
    """(strides, pads, dilation, in_size, out_size) of a valid call, else ArgumentError."""
    spatial = ("width",) if rank == 1 else ("height", "width")
    x_shape, k_shape = check_shapes(name, rank, x, kernel, ("filters", "in_channels"))
    if x_shape[-1] != k_shape[-1]:
        raise ArgumentError(f"{name}: input has {x_shape[-1]} channels (shape {x_shape}) but the "
                            f"kernel expects {k_shape[-1]} (kernel shape {k_shape}, its last axis "
                            "is the input channels).")
    if bias is not None and np.shape(bias) != (k_shape[-2],):
        raise ArgumentError(f"{name}: expected a bias of shape ({k_shape[-2]},) (filters), got "
                            f"shape {np.shape(bias)}.")
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ArgumentError(f"{name}: padding must be 'valid' or 'same', got {padding!r}.")
    strides = int_tuple(strides, rank, "strides", name)
    dilation = int_tuple(dilation_rate, rank, "dilation_rate", name)
    if output_padding is not None:
        items = (output_padding,) * rank if isinstance(output_padding, int) else output_padding
        if (not isinstance(items, (tuple, list)) or len(items) != rank
                or not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool)
                           for p in items)):
            raise ArgumentError(f"{name}: output_padding must be None, an int or a tuple of "
                                f"{rank} ints, got {output_padding!r}.")
        output_padding = tuple(int(p) for p in items)
        for p, s in zip(output_padding, strides):
            if not 0 <= p < s:
                raise ArgumentError(f"{name}: output_padding must be >= 0 and less than the "
                                    f"strides, got output_padding {output_padding} with strides "
                                    f"{strides}.")
    pads, outs = [], []
    for axis, n, k, s, d, i in zip(spatial, x_shape[1:-1], k_shape[:rank], strides, dilation,
                                   range(rank)):
        p = None if output_padding is None else output_padding[i]
        before, after, out = conv_transpose_crops(n, k, s, padding, p, d)
        if out < 1:
            raise ArgumentError(f"{name}: the output {axis} would be {out} (input {n}, kernel "
                                f"{k}, strides {s}, padding {padding!r}, output_padding {p}).")
        pads.append((before, max(after, 0)))
        outs.append(out)
    return strides, tuple(pads), dilation, tuple(x_shape[1:-1]), tuple(outs)


def conv_transpose2d(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1):
    """2-D transposed convolution, channels-last; returns (N, H, W, F), Keras 3's sizes.

    Args: x (N, h, w, C); kernel (KH, KW, F, C); bias (F,) or None; strides, dilation_rate an
    int or a pair; padding 'valid' or 'same'; output_padding None, an int or a pair, each
    < its stride. Size per axis: see conv_transpose_crops.
    """
    strides, pads, dilation, in_size, out_size = _geometry(
        "conv_transpose2d", 2, x, kernel, bias, strides, padding, output_padding, dilation_rate)
    op = ConvTranspose(strides, pads, dilation, in_size, out_size)
    return op(x, kernel) if bias is None else op(x, kernel, bias)


def conv_transpose1d(x, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1):
    """1-D transposed convolution over (N, w, C) with a kernel (K, F, C); returns (N, W, F)."""
    (stride,), (pad,), (dilation,), (n,), (out,) = _geometry(
        "conv_transpose1d", 1, x, kernel, bias, strides, padding, output_padding, dilation_rate)
    op = ConvTranspose((1, stride), ((0, 0), pad), (1, dilation), (1, n), (1, out))
    return op(x, kernel) if bias is None else op(x, kernel, bias)
