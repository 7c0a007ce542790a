"""Per-sample normalization: group_norm and layer_norm (no batch statistics, no moving state).

Both run through one fused op. x is viewed as (N, S, G, Cg): N independent rows (samples for
group norm; every index outside the normalized axes for layer norm), S positions and C = G * Cg
normalized features per row, split into G groups; mean and variance are taken per (row, group)
over its m = S * Cg values, and gamma/beta (C,) act per feature. Group norm over (N, H, W, C)
is (N, H*W, G, C/G); layer norm over the last axis of (N, D) is (N, 1, 1, D). Non-trailing axes
are moved to the end first (a copy). Sums are products with a ones or gamma vector (BLAS),
sums of squares einsums; rows are independent, so forward and backward walk x in blocks of
rows that stay in cache. The backward is closed-form: one op on the tape.
"""

import numbers

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op
from .shape import check_axis

_BLOCK_BYTES = 1 << 20  # rows are processed in blocks of about this many bytes of x


def _sum_over_positions(a):
    """(N, S, C) -> (N, C): the sum over S (a itself when S == 1)."""
    if a.shape[1] == 1:
        return a[:, 0]
    return np.matmul(np.ones((1, a.shape[1]), dtype=a.dtype), a)[:, 0]


def _group_dot(p, groups, weights=None):
    """(N, C) -> (N, G) float64: per group, sum over its Cg features of p (times weights)."""
    N, C = p.shape
    p3 = p.reshape(N, groups, C // groups)
    if weights is None:  # one matrix-vector product
        out = (p.reshape(N * groups, C // groups) @ np.ones(C // groups, dtype=p.dtype))
        out = out.reshape(N, groups)
    else:  # one product per group: (G, N, Cg) @ (G, Cg, 1)
        w = weights.astype(p.dtype, copy=False).reshape(groups, C // groups, 1)
        out = np.matmul(p3.transpose(1, 0, 2), w)[..., 0].T
    return out.astype(np.float64)


def _per_group(v, dtype, S, Cg):
    """(N, G) values -> an array that broadcasts over the (N, S, G, Cg) view, in dtype.

    NOTE: with positions (S > 1) each value is repeated over its Cg channels, (N, 1, G, Cg):
    a (N, 1, G, 1) operand would make NumPy loop over runs of only Cg elements (5x slower for
    Cg = 2); the copy is small next to x. Without positions, (N, 1, G, 1) is cheaper.
    """
    v = v.astype(dtype)
    if S > 1:
        return np.repeat(v, Cg, axis=1).reshape(v.shape[0], 1, v.shape[1], Cg)
    return v[:, None, :, None]


def _row_blocks(N, row_bytes):
    """Slices of rows, each about _BLOCK_BYTES, so every pass over a block stays in cache."""
    step = max(1, _BLOCK_BYTES // max(row_bytes, 1))
    return [slice(i, min(i + step, N)) for i in range(0, N, step)]


class Normalize(Op):
    """x_hat = (x - mean) / sqrt(var + eps) per (row, group); y = gamma * x_hat + beta.

    With m values per group and g = gamma * gy: gx = (g - mean(g) - x_hat mean(g x_hat)) /
    sqrt(var + eps), ggamma = sum(gy x_hat), gbeta = sum(gy). rms_scaling (Keras): y = gamma *
    x / sqrt(var + eps), no centering, gx = (g - (x - mean) / sqrt(var + eps) * mean(g y0)) /
    sqrt(var + eps) with y0 = x / sqrt(var + eps).
    """

    def __init__(self, name, perm, shape, groups, epsilon, rms_scaling, has_gamma, has_beta):
        self.name, self.perm, self.shape, self.groups = name, perm, shape, groups
        self.epsilon, self.rms = epsilon, rms_scaling
        self.has_gamma, self.has_beta = has_gamma, has_beta

    def forward(self, x, *params):
        # x (...) -> X (N, S, C) = (N, S, G, Cg), normalized axes last; gamma, beta -> y like x
        N, S, C = self.shape
        dt = x.dtype
        gamma = params[0].reshape(C).astype(dt, copy=False) if self.has_gamma else None
        beta = params[-1].reshape(C).astype(dt, copy=False) if self.has_beta else None
        moved = x if self.perm is None else x.transpose(self.perm)
        X = moved.reshape(N, S, C)
        x_hat, y = np.empty((N, S, C), dt), np.empty((N, S, C), dt)
        mean, inv_std = np.empty((N, self.groups)), np.empty((N, self.groups))
        for rows in _row_blocks(N, S * C * dt.itemsize):
            mean[rows], inv_std[rows] = self._normalize(X[rows], x_hat[rows])
            if gamma is not None:
                np.multiply(x_hat[rows], gamma, out=y[rows])
                if beta is not None:
                    y[rows] += beta
            elif beta is not None:
                np.add(x_hat[rows], beta, out=y[rows])
            else:
                y[rows] = x_hat[rows]
        self.saved = x_hat, mean, inv_std, gamma, moved.shape, params
        return self._restore(y.reshape(moved.shape))

    def _normalize(self, X, x_hat):
        """x_hat = (X - mean) / std for a block X (n, S, C); returns mean, 1 / std (n, G)."""
        n, S, C = X.shape
        G, dt = self.groups, X.dtype
        Cg = C // G
        m = S * Cg
        mean = _group_dot(_sum_over_positions(X), G) / m  # (n, G) float64
        d = x_hat.reshape(n, S, G, Cg)
        np.subtract(X.reshape(d.shape), _per_group(mean, dt, S, Cg), out=d)
        if S == 1:
            d3 = d.reshape(n, G, Cg)
            squares = np.einsum("ngc,ngc->ng", d3, d3).astype(np.float64)
        else:
            squares = _group_dot(np.einsum("nsc,nsc->nc", x_hat, x_hat), G)
        inv_std = 1.0 / np.sqrt(squares / m + self.epsilon)
        if self.rms:  # NOTE: Keras' rms_scaling divides the uncentered x by the centered std
            np.multiply(X.reshape(d.shape), _per_group(inv_std, dt, S, Cg), out=d)
        else:
            d *= _per_group(inv_std, dt, S, Cg)
        return mean, inv_std

    def backward(self, gy):
        # gy like x -> gx like x, ggamma, gbeta shaped like gamma, beta
        x_hat, mean, inv_std, gamma, moved_shape, params = self.saved
        N, S, C = self.shape
        dt = x_hat.dtype
        need_x, *need_params = self.needs_grad
        need_gamma = self.has_gamma and need_params[0]
        need_beta = self.has_beta and need_params[-1]
        moved = gy if self.perm is None else gy.transpose(self.perm)
        GY = moved.reshape(N, S, C).astype(dt, copy=False)
        gx = np.empty((N, S, C), dt) if need_x else None
        blocks = _row_blocks(N, S * C * dt.itemsize)
        sums = np.zeros((2, len(blocks), C), dt)  # per block: sum(gy x_hat), sum(gy)
        scratch = np.empty((blocks[0].stop if blocks else 0, S, C), dt)
        for i, rows in enumerate(blocks):
            gy_b, xh_b = GY[rows], x_hat[rows]
            sum_gy = _sum_over_positions(gy_b)  # (n, C)
            if S == 1:
                t = np.multiply(gy_b, xh_b, out=scratch[: len(xh_b)])
                sum_gy_xhat = t[:, 0]
            else:
                sum_gy_xhat = np.einsum("nsc,nsc->nc", gy_b, xh_b)
            ones = np.ones(len(xh_b), dtype=dt)  # column sums as products
            np.matmul(ones, sum_gy_xhat, out=sums[0, i])
            np.matmul(ones, sum_gy, out=sums[1, i])
            if need_x:
                self._input_grad(gy_b, xh_b, sum_gy, sum_gy_xhat, mean[rows], inv_std[rows],
                                 gamma, gx[rows], scratch[: len(xh_b)])
        grads = [None if gx is None else self._restore(gx.reshape(moved_shape))]
        for has, need, k, index in ((self.has_gamma, need_gamma, 0, 0),
                                    (self.has_beta, need_beta, 1, -1)):
            if has:
                param, total = params[index], sums[k].sum(axis=0, dtype=np.float64)
                grads.append(total.astype(param.dtype).reshape(param.shape) if need else None)
        return tuple(grads)

    def _input_grad(self, gy, x_hat, sum_gy, sum_gy_xhat, mean, inv_std, gamma, gx, scratch):
        """gx = (g + b x_hat + c) / std for one block of rows, into gx; scratch is free."""
        n, S, C = gy.shape
        G, dt = self.groups, gy.dtype
        Cg = C // G
        m = S * Cg
        mean_g = _group_dot(sum_gy, G, gamma) / m
        mean_g_xhat = _group_dot(sum_gy_xhat, G, gamma) / m
        # the rms variant has no mean(g) term, and its x_hat is y0 = x / std, not centered:
        # (x - mean) / std = y0 - mean / std
        b = -mean_g_xhat * inv_std
        c = (mean * inv_std * mean_g_xhat if self.rms else -mean_g) * inv_std
        shape4 = (n, S, G, Cg)
        gamma4 = np.ones((G, Cg), dt) if gamma is None else gamma.reshape(G, Cg)
        gx4 = gx.reshape(shape4)
        if S > 1:  # fold 1 / std into the small per-(sample, channel) factor
            np.multiply(gy.reshape(shape4), (inv_std[:, :, None] * gamma4).astype(dt)[:, None],
                        out=gx4)
        else:
            np.multiply(gy.reshape(shape4), gamma4, out=gx4)
            gx4 *= _per_group(inv_std, dt, S, Cg)
        gx4 += np.multiply(x_hat.reshape(shape4), _per_group(b, dt, S, Cg),
                           out=scratch.reshape(shape4))
        gx4 += _per_group(c, dt, S, Cg)

    def _restore(self, a):
        """An array in the moved layout, back in the input's axis order."""
        return a if self.perm is None else a.transpose(np.argsort(self.perm))


# ----- public functions ------------------------------------------------------------------------


def _check_common(name, x, epsilon):
    shape = np.shape(x)
    if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool) or not epsilon > 0:
        raise ArgumentError(f"{name}: epsilon must be a number > 0, got {epsilon!r}.")
    return shape


def _check_param(name, label, value, expected, what):
    if value is not None and np.shape(value) != expected:
        raise ArgumentError(
            f"{name}: expected {label} of shape {expected} ({what}), got shape "
            f"{np.shape(value)}."
        )


def _call(name, x, perm, shape, groups, epsilon, rms, gamma, beta):
    if perm == tuple(range(len(perm))):
        perm = None
    params = [p for p in (gamma, beta) if p is not None]
    op = Normalize(name, perm, shape, groups, float(epsilon), rms, gamma is not None,
                   beta is not None)
    return op(x, *params)


def group_norm(x, gamma=None, beta=None, groups: int = 32, axis: int = -1,
               epsilon: float = 1e-3):
    """Group normalization: per sample, the channels on ``axis`` split into ``groups`` groups;
    each group is normalized over its channels and every other non-batch axis.

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, mean and biased var per (sample,
    group); gamma, beta (C,) or None. groups=1: one group per sample; groups=C (or -1): instance
    norm. x (N, ..., C), e.g. (N, H, W, C); no batch statistics, so training = inference.
    """
    name = "group_norm"
    shape = _check_common(name, x, epsilon)
    if len(shape) < 2:
        raise ArgumentError(
            f"{name}: expected an input of rank >= 2 (batch, ..., channels), got shape {shape}."
        )
    axis = check_axis(name, axis, shape)
    if axis == 0:
        raise ArgumentError(
            f"{name}: axis 0 is the batch axis of input shape {shape}; the channel axis must "
            "be another one (-1 for channels-last)."
        )
    C = shape[axis]
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise ArgumentTypeError(f"{name}: groups must be an int, got {groups!r}.")
    groups = C if groups == -1 else int(groups)
    if not 1 <= groups <= C or C % groups:
        raise ArgumentError(
            f"{name}: groups must divide the {C} channels on axis {axis} (1 <= groups <= {C}, "
            f"or -1 for one group per channel), got groups={groups} for input shape {shape}."
        )
    for label, value in (("gamma", gamma), ("beta", beta)):
        _check_param(name, label, value, (C,), f"one per channel on axis {axis}")
    perm = tuple(a for a in range(len(shape)) if a != axis) + (axis,)
    S = int(np.prod(shape[1:])) // C if C else 0
    return _call(name, x, perm, (shape[0], S, C), groups, epsilon, False, gamma, beta)


def layer_norm(x, gamma=None, beta=None, axis=-1, epsilon: float = 1e-3,
               rms_scaling: bool = False):
    """Layer normalization over ``axis`` (an int or a list of ints), separately for every
    index of the other axes: y = gamma * (x - mean) / sqrt(var + epsilon) + beta.

    gamma, beta have the shape of the normalized axes (sorted), e.g. (D,) for axis=-1, or None.
    rms_scaling (Keras' deprecated option): y = gamma * x / sqrt(var + epsilon), no beta.
    No batch statistics, so training = inference.
    """
    name = "layer_norm"
    shape = _check_common(name, x, epsilon)
    if len(shape) < 1:
        raise ArgumentError(f"{name}: expected an input of rank >= 1, got a scalar.")
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    if not axes:
        raise ArgumentError(f"{name}: axis must name at least one axis, got {axis!r}.")
    axes = [check_axis(name, a, shape) for a in axes]
    if len(set(axes)) != len(axes):
        raise ArgumentError(
            f"{name}: axis {axis!r} names an axis twice (input rank {len(shape)}).")
    axes = sorted(axes)
    normalized = tuple(shape[a] for a in axes)
    for label, value in (("gamma", gamma), ("beta", beta)):
        _check_param(name, label, value, normalized, f"the normalized axes {tuple(axes)}")
    if rms_scaling and beta is not None:
        raise ArgumentError(f"{name}: rms_scaling=True takes no beta (Keras creates none).")
    perm = tuple(a for a in range(len(shape)) if a not in axes) + tuple(axes)
    C = int(np.prod(normalized))
    N = int(np.prod(shape)) // C if C else 0
    return _call(name, x, perm, (N, 1, C), 1, epsilon, bool(rms_scaling), gamma, beta)
