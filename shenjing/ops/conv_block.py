"""Inference of a conv block, conv2d -> [ReLU] -> [batch-norm affine] -> [ReLU] -> [max pool],
a chunk of images at a time: each chunk's conv output is normalized, rectified and pooled while
it is fresh, instead of one pass over the whole maps in memory per layer.

A batch-norm affine right after the conv is folded into it: conv(x, k) * s + t is
conv(x, k * s) + (b * s + t), one product and no pass over the maps (as torch.jit.freeze and
ONNX Runtime fold conv-BN at inference); the results then equal the layers' to float rounding
(float32: ~1e-6 relative). Every other step is the float operation the layer-by-layer ops
perform, in their order; the conv's products run over the same chunks as conv2d's, except for a
one-channel input under a 2x2 pool, whose outputs come in four blocks (see conv._im2col): a BLAS
may round those products otherwise (OpenBLAS's Haswell kernels do), so the results equal the
layers' to the rounding of the conv's sums, bit for bit only where the products match. Before
a max pool, the bias and ReLU run after it, on a quarter of the values: exact, since rounding is
monotone (max(fl(y_i + b)) = fl(max(y_i) + b)) and max and ReLU commute. No autograd: predict
and evaluate use it through shenjing.models.fusion.
"""

import numpy as np

from ..errors import ArgumentError
from . import parallel
from .conv import Conv, _check_conv, int_tuple, window_geometry
from .pool import max_into

STEPS = ("relu", "affine", "max_pool")


def _check_steps(steps, channels):
    for k, step in enumerate(steps):
        kind = step[0] if isinstance(step, tuple) and step else step
        if kind not in STEPS:
            raise ArgumentError(f"conv2d_block: step {k} must be one of {STEPS}, got {step!r}.")
        if kind == "affine" and any(np.shape(v) != (channels,) for v in step[1:3]):
            raise ArgumentError(
                f"conv2d_block: affine step {k} needs a scale and a shift of shape "
                f"({channels},), got {[np.shape(v) for v in step[1:3]]}.")
        if kind == "max_pool" and k != len(steps) - 1:
            raise ArgumentError("conv2d_block: max_pool can only be the last step.")


def conv2d_block(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, steps=()):
    """conv2d(x, kernel, bias) followed by steps, computed chunk by chunk; returns an ndarray.

    steps, in order: ("relu",); ("affine", scale, shift) for y * scale + shift per channel
    (inference batch norm, see ops.norm.inference_affine); ("max_pool", pool_size, strides), a
    'valid' max pool, last if present. x (N, H, W, C) and kernel (KH, KW, C, F) as conv2d's.
    """
    x, kernel = np.asarray(x), np.asarray(kernel)
    sizes, window = _check_conv("conv2d_block", 2, x, kernel, bias)
    strides = int_tuple(strides, 2, "strides", "conv2d_block")
    dilation = int_tuple(dilation_rate, 2, "dilation_rate", "conv2d_block")
    pads, out_size = window_geometry("conv2d_block", sizes, window, strides, padding, dilation)
    steps = [s if isinstance(s, tuple) else (s,) for s in steps]
    _check_steps(steps, kernel.shape[-1])
    dtype = np.result_type(x, kernel, *(() if bias is None else (bias,)))
    x, kernel = x.astype(dtype, copy=False), kernel.astype(dtype, copy=False)
    if bias is not None:
        bias = np.asarray(bias, dtype)
    if steps and steps[0][0] == "affine":  # folded into the conv (module docstring)
        _, scale, shift = steps.pop(0)
        scale, shift = np.asarray(scale, dtype), np.asarray(shift, dtype)
        kernel = kernel * scale
        bias = shift if bias is None else bias * scale + shift
    N, F = x.shape[0], kernel.shape[-1]
    pool = steps.pop() if steps and steps[-1][0] == "max_pool" else None
    relu_after_pool = pool is not None and steps and steps[-1][0] == "relu"
    if relu_after_pool:
        steps.pop()
    bias_after_pool = pool is not None and not steps and bias is not None
    if pool is None:
        out_shape = (N, *out_size, F)
    else:
        pool_size = int_tuple(pool[1], 2, "pool_size", "conv2d_block")
        pool_strides = int_tuple(pool[2], 2, "strides", "conv2d_block")
        _, pooled = window_geometry("conv2d_block", out_size, pool_size, pool_strides, "valid",
                                    (1, 1), "pool window")
        out_shape = (N, *pooled, F)
    # a 2x2 pool on a one-channel input: the conv computes its outputs in four blocks, one per
    # window offset, and the pool is the max of the blocks, contiguous passes (see
    # conv._im2col). Measured: the first block of the reference CNN 10-15% faster, its second
    # (32 channels in) 4-8% slower (its column copies read the input at twice the stride)
    pairs = pool is not None and pool_size == pool_strides == (2, 2) and x.shape[3] == 1
    # per-channel vectors repeated over an image's positions, so that every pass runs over long
    # rows (a (F,) vector broadcast over short rows runs ~2x slower); zeros likewise for ReLU
    # (np.maximum with a scalar 0 is ~2x slower than with an array: same values, -0.0 included)
    image = (out_shape[1] * out_shape[2] if pairs else out_size[0] * out_size[1]) * F
    affine = [tuple(np.tile(np.asarray(v, dtype), image // F) for v in s[1:3])
              if s[0] == "affine" else None for s in steps]
    zeros = np.zeros(image, dtype)
    pooled_bias = np.tile(bias, out_shape[1] * out_shape[2]) if bias_after_pool else None

    def finish(y, out):
        """y (n, OH, OW, F): this chunk's conv output, fresh -> out, its rows of the result
        (pairs: y (4, n, OH // 2, OW // 2, F))."""
        rows = y.reshape(-1, image)
        for params in affine:
            if params is None:
                np.maximum(rows, zeros, out=rows)
            else:
                np.multiply(rows, params[0], out=rows)
                np.add(rows, params[1], out=rows)
        if pairs:
            np.maximum(y[0], y[1], out=out)
            np.maximum(out, y[2], out=out)
            np.maximum(out, y[3], out=out)
        elif pool is not None:
            max_into(y, pool_size, pool_strides, out)
        pooled = out.reshape(len(out), -1)
        if bias_after_pool:
            np.add(pooled, pooled_bias, out=pooled)
        if relu_after_pool:
            np.maximum(pooled, zeros[: pooled.shape[1]], out=pooled)

    op = Conv("conv2d_block", strides, pads, dilation, out_size)
    with parallel.own_threads():  # as in every op: the products split by us, the BLAS on one
        return op.infer(x, kernel, None if bias_after_pool else bias, finish,
                        np.empty(out_shape, dtype), pairs=pairs)
