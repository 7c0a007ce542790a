"""Batch normalization: statistics over every axis but the channel axis (the last by default).

Training uses the biased batch statistics and updates the moving ones in place (Keras); inference
uses the moving statistics. Both are differentiable with respect to x, gamma and beta.

Speed (benchmarks/bench_batchnorm.py): x is viewed as an (M, C) matrix, each of the four passes
(statistics, output, gradient sums, input gradient) walks it in blocks of rows that stay in
cache, per-channel vectors are tiled so that ufunc loops run over thousands of elements, not C;
the threads (ops/parallel.py) share the blocks of large inputs (NumPy releases the GIL). Fresh outputs cost no
page faults since shenjing.memory keeps freed memory in the process.

Synchronized (``synchronized=True``, training, more than one process: shenjing.distribution):
the statistics are those of the global batch over all ranks, one collective each way
(global_moments, global_grad_sums); otherwise the very same code as unsynchronized.
"""

import numbers
import threading

import numpy as np

from ..distribution import context as distribution_context
from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, Tensor
from . import parallel
from .norm_sync import global_grad_sums, global_moments
from .shape import check_axis

_BLOCK_BYTES = 3 << 19  # bytes of x per block (measured best: with its companions, in L3)
_TILE_ELEMS = 1 << 14  # per-channel vectors are repeated to about this many elements
_SUM_ELEMS = 1 << 11  # column sums first add rows of this many elements
_local = threading.local()


def _scratch(n, dtype):
    """A flat per-thread work array of n elements (reused across calls)."""
    bufs = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get(dtype)
    if buf is None or buf.size < n:
        buf = bufs[dtype] = np.empty(n, dtype)
    return buf[:n]


class _Blocks:
    """The rows of an (M, C) matrix cut into cache-sized blocks, and the threads that walk them.

    A block of n rows is also viewed as (n / reps, reps * C) when reps divides n: a per-channel
    vector tiled reps times then lines up with each row of that view and ufunc loops run long.
    """

    def __init__(self, M, C, dtype):
        self.C, self.dtype = C, dtype
        self.sum_rows = max(1, _SUM_ELEMS // max(C, 1))
        reps = self.sum_rows * max(1, _TILE_ELEMS // _SUM_ELEMS)
        self.reps = reps = max(1, min(reps, M))
        rows = max(reps, _BLOCK_BYTES // (max(C, 1) * dtype.itemsize) // reps * reps)
        self.spans = [(lo, min(lo + rows, M)) for lo in range(0, M, rows)]
        # threads walking the blocks; the results go by block index and are merged in block
        # order, so they are the same whatever the number of threads
        self.threads = parallel.parts(len(self.spans), M * C)
        self.parallel = self.threads > 1
        self.scratch_size = (min(rows, M) + reps) * C

    def split(self, a):
        """Each block of an (M, C) array as a pair: its rows (n, C) and its tiled view."""
        blocks = [a[lo:hi] for lo, hi in self.spans]
        return [(b, b.reshape(-1, self.reps * self.C) if len(b) % self.reps == 0 else b)
                for b in blocks]

    def colsum(self, block, out):
        """Column sums of an (n, C) block into out (C,).

        NOTE: not a BLAS product with a ones vector, though faster on one thread: OpenBLAS
        threads even a 1024 x 64 one, and from two threads at once or with the other core busy
        some sizes take 10-100x longer. Two reductions over long rows stay on this thread.
        """
        n, r = block.shape[0], self.sum_rows
        if n % r:
            np.add.reduce(block, axis=0, out=out)
        else:
            part = np.add.reduce(block.reshape(n // r, r * self.C), axis=0)
            np.add.reduce(part.reshape(r, self.C), axis=0, out=out)

    def colsum_products(self, a, b, out):
        """Column sums of a * b for (n, C) blocks a, b into out (C,), without the product's
        temporary: einsum's fused multiply-add loop, ~3x faster than a multiply then a sum."""
        n, r = a.shape[0], self.sum_rows
        if n % r:
            np.einsum("ij,ij->j", a, b, out=out)
        else:
            rows = (n // r, r * self.C)
            part = np.einsum("ij,ij->j", a.reshape(rows), b.reshape(rows))
            np.add.reduce(part.reshape(r, self.C), axis=0, out=out)

    def tile(self, v):
        tile = np.empty((self.reps, self.C), self.dtype)
        tile[...] = v
        return tile.reshape(-1)

    def run(self, work, reverse=False):
        """work(i, scratch) for every block i, scratch a per-thread array of scratch_size.

        Any thread may take any block, so work must store its results by index; reverse walks
        the blocks backwards, starting with those the previous pass left in cache.
        """
        count = len(self.spans)
        order = iter(range(count - 1, -1, -1) if reverse else range(count))
        if self.threads == 1:
            scratch = _scratch(self.scratch_size, self.dtype)
            for i in order:
                work(i, scratch)
            return
        lock = threading.Lock()

        def loop():
            scratch = _scratch(self.scratch_size, self.dtype)
            while True:
                with lock:
                    i = next(order, None)
                if i is None:
                    return
                work(i, scratch)

        futures = [parallel.executor().submit(loop) for _ in range(self.threads - 1)]
        try:
            loop()
        finally:
            for future in futures:
                future.result()


def _moments(Xs, blocks):
    """Biased per-channel mean and variance of the blocks Xs of an (M, C) matrix, in float64.

    NOTE: two-pass within each cached block (its mean, then the squared deviations from it, so
    no E[x^2] - E[x]^2 cancellation), blocks merged with the exact identity
    sum (x - mean)^2 = sum_b [M2_b + n_b (mean_b - mean)^2] (Chan, Golub & LeVeque): one read of
    x from memory instead of two.
    """
    dt, C, nb = blocks.dtype, blocks.C, len(Xs)
    means, sums, squares = np.empty((nb, C), dt), np.empty((nb, C), dt), np.empty((nb, C), dt)
    counts = np.array([x.shape[0] for x, _ in Xs], dtype=np.float64)[:, None]

    def work(i, buf):
        x, xt = Xs[i]
        d = buf[: x.size].reshape(xt.shape)
        tile = buf[x.size :]
        blocks.colsum(x, means[i])
        means[i] *= dt.type(1.0 / x.shape[0])
        np.copyto(tile.reshape(-1, C), means[i])
        np.subtract(xt, tile[: xt.shape[-1]], out=d)
        d = d.reshape(x.shape)
        blocks.colsum(d, sums[i])  # ~0: corrects the rounding of the mean
        blocks.colsum_products(d, d, squares[i])

    blocks.run(work)
    sums64 = sums.astype(np.float64)
    block_means = means + sums64 / counts
    m2 = squares - sums64 * sums64 / counts
    if nb == 1:
        return block_means[0], np.maximum(m2[0] / counts[0], 0.0)
    M = counts.sum()
    mean = (counts * block_means).sum(axis=0) / M
    var = (m2.sum(axis=0) + (counts * (block_means - mean) ** 2).sum(axis=0)) / M
    return mean, np.maximum(var, 0.0)


def _affine(As, blocks, shape, scale, shift=None):
    """A * scale + shift per channel for the blocks As of A (shape), into a new array."""
    out = np.empty(shape, blocks.dtype)
    outs = blocks.split(out)
    scale = blocks.tile(scale)
    shift = None if shift is None else blocks.tile(shift)

    def work(i, buf):
        y = outs[i][1]
        k = y.shape[-1]
        np.multiply(As[i][1], scale[:k], out=y)
        if shift is not None:
            np.add(y, shift[:k], out=y)

    blocks.run(work, reverse=True)
    return out


def _grad_sums(Xs, GYs, mean, blocks, deviations):
    """sum(gy) and, if deviations, sum(gy * (x - mean)) per channel, in float64."""
    dt, C, nb = blocks.dtype, blocks.C, len(Xs)
    sums, dots = np.empty((nb, C), dt), np.zeros((nb, C), dt)
    mean = blocks.tile(mean)

    def work(i, buf):
        gy, gyt = GYs[i]
        blocks.colsum(gy, sums[i])
        if deviations:
            d = buf[: gy.size].reshape(gyt.shape)
            np.subtract(Xs[i][1], mean[: d.shape[-1]], out=d)
            blocks.colsum_products(d.reshape(gy.shape), gy, dots[i])

    blocks.run(work)
    return sums.sum(axis=0, dtype=np.float64), dots.sum(axis=0, dtype=np.float64)


def _input_grad(Xs, GYs, blocks, shape, a, b, c):
    """gx = a * gy + b * x + c per channel, one cached pass per block, into a new array."""
    out = np.empty(shape, blocks.dtype)
    outs = blocks.split(out)
    a, b, c = blocks.tile(a), blocks.tile(b), blocks.tile(c)

    def work(i, buf):
        gx = outs[i][1]
        k = gx.shape[-1]
        t = buf[: gx.size].reshape(gx.shape)
        np.multiply(GYs[i][1], a[:k], out=gx)
        np.multiply(Xs[i][1], b[:k], out=t)
        np.add(gx, t, out=gx)
        np.add(gx, c[:k], out=gx)

    blocks.run(work, reverse=True)
    return out


def _scale_shift(mean, var, gamma, beta, epsilon, C):
    """(1 / std, gamma, scale, shift) in float64: y = x * scale + shift per channel."""
    inv_std = 1.0 / np.sqrt(var + epsilon)
    gamma64 = np.ones(C) if gamma is None else gamma.astype(np.float64)
    scale = gamma64 * inv_std
    shift = -mean * scale if beta is None else beta - mean * scale
    return inv_std, gamma64, scale, shift


def inference_affine(moving_mean, moving_variance, gamma, beta, epsilon, dtype):
    """(scale, shift) in dtype, inference batch norm being y = x * scale + shift per channel:
    the very numbers batch_norm(training=False) multiplies and adds (ops.conv_block uses them)."""
    mean, var = moving_mean.astype(np.float64), moving_variance.astype(np.float64)
    _, _, scale, shift = _scale_shift(mean, var, gamma, beta, epsilon, len(mean))
    return scale.astype(dtype), shift.astype(dtype)


class BatchNorm(Op):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta per channel, statistics over other axes.

    Training: biased batch statistics, m values per channel, x_hat = (x - mean) / std;
    gx = gamma / (m std) * (m gy - sum(gy) - x_hat sum(gy x_hat)), ggamma = sum(gy x_hat),
    gbeta = sum(gy). Inference: the affine map with the moving statistics.

    Synchronized training over R ranks: mean, var and m are those of the global batch, and so
    are sum(gy) and sum(gy x_hat) in gx; ggamma and gbeta are this rank's own sums (its share
    of the parameter gradient, which the ranks add up).
    """

    name = "batch_norm"

    def __init__(self, training, momentum, epsilon, moving_mean, moving_variance, axis, gamma,
                 beta, synchronized=False):
        self.training, self.momentum, self.epsilon = training, momentum, epsilon
        self.moving_mean, self.moving_variance = moving_mean, moving_variance
        self.axis, self.has_gamma, self.has_beta = axis, gamma, beta
        self.synchronized = synchronized
        self.sync = None  # this rank's sample scale when this call synchronizes

    def forward(self, x, *params):
        # x (..., C) with C on self.axis, gamma (C,), beta (C,) -> y like x
        gamma = params[0] if self.has_gamma else None
        beta = params[-1] if self.has_beta else None
        x_last = x if self.axis == x.ndim - 1 else np.moveaxis(x, self.axis, -1)
        M, C = int(np.prod(x_last.shape[:-1])), x_last.shape[-1]
        X = x_last.reshape(M, C)  # a view unless channels are not the last, contiguous axis
        blocks = _Blocks(M, C, X.dtype)
        Xs = blocks.split(X)
        m = M
        if self.training:
            mean, var = _moments(Xs, blocks)
            if self.synchronized and distribution_context.is_distributed():
                self.sync = distribution_context.sample_scale()
                mean, var, m = global_moments(mean, var, M, self.sync)
            if self.moving_mean is not None:
                for moving, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
                    moving[...] = self.momentum * moving + (1.0 - self.momentum) * batch
        else:
            mean = self.moving_mean.astype(np.float64)
            var = self.moving_variance.astype(np.float64)
        inv_std, gamma64, scale, shift = _scale_shift(mean, var, gamma, beta, self.epsilon, C)
        self.saved = Xs, X.shape, blocks, mean, inv_std, gamma64, x_last.shape, params, m
        y = _affine(Xs, blocks, X.shape, scale, shift)
        y = y.reshape(x_last.shape)
        return y if self.axis == x.ndim - 1 else np.moveaxis(y, -1, self.axis)

    def backward(self, gy):
        # gy like x -> gx like x, ggamma (C,), gbeta (C,)
        Xs, matrix_shape, blocks, mean, inv_std, gamma, shape, params, m = self.saved
        need_x, *need_params = self.needs_grad
        need_gamma = self.has_gamma and need_params[0]
        need_beta = self.has_beta and need_params[-1]
        last = self.axis == gy.ndim - 1
        GY = (gy if last else np.moveaxis(gy, self.axis, -1)).reshape(matrix_shape)
        GY = GY.astype(blocks.dtype, copy=False)
        GYs = blocks.split(GY)
        deviations = need_gamma or self.training and need_x or self.sync is not None
        sum_gy, sum_gy_d = _grad_sums(Xs, GYs, mean, blocks, deviations)
        all_gy, all_gy_d = sum_gy, sum_gy_d  # over the batch that gave mean and var
        if self.sync is not None:  # every rank joins, whatever it needs
            all_gy, all_gy_d = global_grad_sums(sum_gy, sum_gy_d, self.sync)
            sum_gy, sum_gy_d = sum_gy * self.sync, sum_gy_d * self.sync
        ggamma_64 = sum_gy_d * inv_std  # sum(gy * x_hat)
        gx = None
        if need_x:
            a = gamma * inv_std
            if self.training:  # gx = a * (gy - sum_gy / m - (x - mean) * inv_std^2 sum_gy_d / m)
                b = -a * inv_std * (all_gy_d * inv_std) / m
                c = -a * all_gy / m - b * mean
                gx = _input_grad(Xs, GYs, blocks, matrix_shape, a, b, c)
            else:
                gx = _affine(GYs, blocks, matrix_shape, a)
            gx = gx.reshape(shape) if last else np.moveaxis(gx.reshape(shape), -1, self.axis)
            if self.sync == 0.0:
                # a stand-in sample is not in the global batch: the global statistics do not
                # depend on it, and the -sum(gy)/m terms above must not reach it either
                gx = np.zeros_like(gx)
        grads = [gx]
        if self.has_gamma:
            grads.append(ggamma_64.astype(params[0].dtype) if need_gamma else None)
        if self.has_beta:
            grads.append(sum_gy.astype(params[-1].dtype) if need_beta else None)
        return tuple(grads)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _moving_array(value, label):
    array = value.data if isinstance(value, Tensor) else value
    if value is not None and not (isinstance(array, np.ndarray) and array.dtype.kind == "f"):
        raise ArgumentTypeError(
            f"batch_norm: {label} must be a floating NumPy array or Tensor (it is updated in "
            f"place), got {type(value).__name__} {getattr(array, 'dtype', '')}".rstrip() + "."
        )
    return array


def batch_norm(x, gamma=None, beta=None, moving_mean=None, moving_variance=None,
               training: bool = False, momentum: float = 0.99, epsilon: float = 1e-3,
               axis: int = -1, synchronized: bool = False):
    """Batch normalization over every axis but ``axis``: (N, C), (N, W, C), (N, H, W, C).

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta. Training: biased batch statistics, and
    moving_mean/moving_variance ((C,) arrays or Tensors, optional) are updated in place with
    moving = momentum * moving + (1 - momentum) * batch. Inference (training=False): the moving
    statistics (required). gamma/beta None: unit scale / no shift.

    synchronized: in training with more than one process (shenjing.distribution), the batch is
    the global one over all ranks: mean, variance, the moving statistics' update and the input
    gradient are those of the whole batch (every rank must make the same calls). Otherwise it
    changes nothing.
    """
    shape = np.shape(x)
    if len(shape) < 2:
        raise ArgumentError(
            f"batch_norm: expected an input of rank >= 2 (batch, ..., channels), got shape {shape}."
        )
    axis = check_axis("batch_norm", axis, shape)
    C = shape[axis]
    for label, value in (("gamma", gamma), ("beta", beta), ("moving_mean", moving_mean),
                         ("moving_variance", moving_variance)):
        if value is not None and np.shape(value) != (C,):
            raise ArgumentError(
                f"batch_norm: expected {label} of shape ({C},) for the {C} channels on axis "
                f"{axis} of input shape {shape}, got shape {np.shape(value)}."
            )
    if not _is_real(momentum) or not 0.0 <= momentum <= 1.0:
        raise ArgumentError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r}.")
    if not _is_real(epsilon) or not epsilon > 0:
        raise ArgumentError(f"batch_norm: epsilon must be a number > 0, got {epsilon!r}.")
    moving_mean = _moving_array(moving_mean, "moving_mean")
    moving_variance = _moving_array(moving_variance, "moving_variance")
    if (moving_mean is None) != (moving_variance is None):
        raise ArgumentError(
            "batch_norm: pass both moving_mean and moving_variance or neither, got only "
            f"{'moving_mean' if moving_variance is None else 'moving_variance'}."
        )
    if not isinstance(synchronized, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"batch_norm: synchronized must be True or False, got {synchronized!r}."
        )
    global_batch = synchronized and distribution_context.is_distributed()
    if training:
        m = int(np.prod(shape[:axis] + shape[axis + 1 :]))
        if global_batch and m < 1:  # the global count is checked once gathered
            raise ArgumentError(
                f"batch_norm: synchronized training needs at least one value per channel on "
                f"each rank, got input shape {shape}."
            )
        if not global_batch and m < 2:
            raise ArgumentError(
                f"batch_norm: training needs more than one value per channel to estimate a "
                f"batch variance, got input shape {shape} ({m} per channel on axis {axis}): "
                "the variance of one value is 0, so every output would be beta (PyTorch "
                "refuses this too)."
            )
    elif moving_mean is None:
        raise ArgumentError(
            "batch_norm: inference (training=False) normalizes with moving_mean and "
            "moving_variance, got None; pass them or use training=True."
        )
    params = [p for p in (gamma, beta) if p is not None]
    op = BatchNorm(bool(training), float(momentum), float(epsilon), moving_mean,
                   moving_variance, axis, gamma is not None, beta is not None, bool(synchronized))
    return op(x, *params)
