"""Losses with Keras's argument order (y_true, y_pred), per-sample formulas and reductions.

Each Op returns Keras's per-sample loss (the class axis or the last axis reduced); ``reduction``
then gives its mean ('mean', Keras's 'sum_over_batch_size', the default), its 'sum', or the
per-sample values ('none'). y_true may be an ndarray or a Tensor; it is cast to y_pred's dtype
and gets a gradient too when it requires one. Probabilities are clipped to [eps, 1 - eps] with
Keras's eps = 1e-7; logits go through log-sum-exp and never overflow.
"""

import math

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, Tensor
from .activation import _stable_sigmoid
from .elementwise import cast
from .reduce import mean as _mean
from .reduce import sum as _sum
from .shape import reshape

EPSILON = 1e-7  # keras.backend.epsilon()


def _mean_last(loss, gy=None, shape=None):
    """Forward: mean of an elementwise loss over the last axis. Backward (gy given): gy spread
    back over that axis, divided by its length, as an array of the elementwise shape."""
    if gy is None:
        return loss.mean(axis=-1)
    return np.broadcast_to(gy[..., None] / np.asarray(shape[-1], dtype=gy.dtype), shape)


class CategoricalCrossentropy(Op):
    """loss = -sum(t * log p) along axis, t = y_true (1 - s) + s / K (label smoothing s).

    from_logits: log p = log_softmax(y_pred), gp = sum(t) softmax - t. Otherwise p is y_pred
    normalised to sum 1, then clipped to [eps, 1 - eps] (Keras).
    """

    name = "categorical_crossentropy"

    def __init__(self, from_logits, label_smoothing, axis):
        self.from_logits, self.smoothing, self.axis = from_logits, label_smoothing, axis

    def forward(self, y_pred, y_true):
        # y_pred (..., K, ...), y_true (..., K, ...) -> loss (..., ...) without the K axis
        axis, s = self.axis, self.smoothing
        t = y_true * (1 - s) + s / y_true.shape[axis] if s else y_true
        if self.from_logits:
            shifted = y_pred - y_pred.max(axis=axis, keepdims=True)
            log_p = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        else:
            self.total = y_pred.sum(axis=axis, keepdims=True)
            q = self.q = y_pred / self.total
            eps = np.asarray(EPSILON, dtype=y_pred.dtype)
            self.clipped = np.clip(q, eps, 1 - eps)
            self.inside = (q >= eps) & (q <= 1 - eps)  # clip passes gradients here (PyTorch)
            log_p = np.log(self.clipped)
        self.t, self.log_p = t, log_p
        return -(t * log_p).sum(axis=axis)

    def backward(self, gy):
        # gy (..., ...) -> g_pred (..., K, ...), g_true (..., K, ...)
        axis, t = self.axis, self.t
        gy = np.expand_dims(gy, axis)
        g_pred = g_true = None
        if self.needs_grad[0]:
            if self.from_logits:
                p = np.exp(self.log_p)
                g_pred = gy * (p * t.sum(axis=axis, keepdims=True) - t)
            else:
                gq = np.where(self.inside, -gy * t / self.clipped, 0)
                # through q = y_pred / sum(y_pred): gp = (gq - sum(gq * q)) / sum(y_pred)
                g_pred = (gq - (gq * self.q).sum(axis=axis, keepdims=True)) / self.total
        if self.needs_grad[1]:
            g_true = -gy * self.log_p * (1 - self.smoothing)
        return g_pred, g_true


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1,
                             reduction="mean"):
    """Crossentropy of one-hot (or soft) targets y_true against y_pred, along axis.

    Args: from_logits (y_pred are logits, not probabilities); label_smoothing in [0, 1]; axis
    (the class axis); reduction ('mean', 'sum' or 'none' for the per-sample losses).
    """
    name = "categorical_crossentropy"
    _check_reduction(name, reduction)
    _check_smoothing(name, label_smoothing)
    y_true, y_pred = _align(name, y_true, y_pred)
    if y_pred.ndim == 0:
        raise ArgumentError(f"{name}: expected y_pred with a class axis, got shape "
                            f"{y_pred.shape}.")
    axis = _check_axis(name, y_pred, axis)
    op = CategoricalCrossentropy(bool(from_logits), float(label_smoothing), axis)
    return _reduce(op(y_pred, y_true), reduction)


class SparseCategoricalCrossentropy(Op):
    """loss = -log p[label] along axis; labels are integer class indices (a setting, not an
    input). from_logits: log p = log_softmax(y_pred), gp = softmax - onehot(label). Otherwise
    p = y_pred normalised to sum 1 and clipped to [eps, 1 - eps] (Keras)."""

    name = "sparse_categorical_crossentropy"

    def __init__(self, labels, from_logits, axis):
        self.labels, self.from_logits, self.axis = labels, from_logits, axis

    def forward(self, y_pred):
        # y_pred (..., K, ...), labels (..., ...) -> loss (..., ...)
        axis = self.axis
        self.index = np.expand_dims(self.labels, axis)
        if self.from_logits:
            shifted = y_pred - y_pred.max(axis=axis, keepdims=True)
            log_norm = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
            self.shifted, self.log_norm = shifted, log_norm
            picked = np.take_along_axis(shifted, self.index, axis) - log_norm
        else:
            total = y_pred.sum(axis=axis, keepdims=True)
            q = np.take_along_axis(y_pred, self.index, axis) / total
            eps = np.asarray(EPSILON, dtype=y_pred.dtype)
            self.q, self.total = q, total
            self.clipped, self.inside = np.clip(q, eps, 1 - eps), (q >= eps) & (q <= 1 - eps)
            picked = np.log(self.clipped)
        self.shape = y_pred.shape
        return -np.squeeze(picked, axis)

    def backward(self, gy):
        # gy (..., ...) -> g_pred (..., K, ...)
        gy = np.expand_dims(gy, self.axis)
        if self.from_logits:
            g_pred = gy * np.exp(self.shifted - self.log_norm)
            np.put_along_axis(g_pred, self.index,
                              np.take_along_axis(g_pred, self.index, self.axis) - gy, self.axis)
            return g_pred
        # only the label's q_l enters: gq_l = -gy / q_l; through q = y_pred / sum(y_pred),
        # gp_j = (gq_l [j == l] - gq_l q_l) / sum(y_pred)
        gq = np.where(self.inside, -gy / self.clipped, 0)
        g_pred = np.broadcast_to(-gq * self.q / self.total, self.shape).copy()
        np.put_along_axis(g_pred, self.index,
                          np.take_along_axis(g_pred, self.index, self.axis) + gq / self.total,
                          self.axis)
        return g_pred


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, axis=-1,
                                    reduction="mean"):
    """Crossentropy of integer class labels y_true against y_pred, along axis.

    y_true has y_pred's shape without the class axis, e.g. (N,) or (N, 1) for y_pred (N, K),
    (N, T) for (N, T, K). Args: from_logits, axis (the class axis), reduction.
    """
    name = "sparse_categorical_crossentropy"
    _check_reduction(name, reduction)
    y_pred = _prediction(name, y_pred)
    if y_pred.ndim == 0:
        raise ArgumentError(f"{name}: expected y_pred with a class axis, got shape "
                            f"{y_pred.shape}.")
    axis = _check_axis(name, y_pred, axis)
    labels = _labels(name, y_true, y_pred, axis)
    op = SparseCategoricalCrossentropy(labels, bool(from_logits), axis)
    return _reduce(op(y_pred), reduction)


class BinaryCrossentropy(Op):
    """loss = mean over the last axis of -(t log p + (1 - t) log(1 - p)), t = y_true (1 - s)
    + s / 2. from_logits: max(x, 0) - x t + log1p(e^-|x|), gx = sigmoid(x) - t. Otherwise
    p = clip(y_pred, eps, 1 - eps) (Keras)."""

    name = "binary_crossentropy"

    def __init__(self, from_logits, label_smoothing):
        self.from_logits, self.smoothing = from_logits, label_smoothing

    def forward(self, y_pred, y_true):
        # y_pred (..., D), y_true (..., D) -> loss (...)
        s = self.smoothing
        t = y_true * (1 - s) + 0.5 * s if s else y_true
        self.x, self.t = y_pred, t
        if self.from_logits:
            loss = np.maximum(y_pred, 0) - y_pred * t + np.log1p(np.exp(-np.abs(y_pred)))
        else:
            eps = np.asarray(EPSILON, dtype=y_pred.dtype)
            p = np.clip(y_pred, eps, 1 - eps)
            self.inside = (y_pred >= eps) & (y_pred <= 1 - eps)
            self.p, self.log_p, self.log_1mp = p, np.log(p), np.log(1 - p)
            loss = -(t * self.log_p + (1 - t) * self.log_1mp)
        return _mean_last(loss)

    def backward(self, gy):
        # gy (...) -> g_pred (..., D), g_true (..., D)
        g = _mean_last(None, gy, self.x.shape)
        g_pred = g_true = None
        if self.needs_grad[0]:
            if self.from_logits:
                g_pred = g * (_stable_sigmoid(self.x) - self.t)
            else:
                p = self.p
                g_pred = np.where(self.inside, g * (p - self.t) / (p * (1 - p)), 0)
        if self.needs_grad[1]:
            dt = -self.x if self.from_logits else self.log_1mp - self.log_p
            g_true = g * dt * (1 - self.smoothing)
        return g_pred, g_true


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0,
                        reduction="mean"):
    """Binary crossentropy of targets in [0, 1], averaged over the last axis (Keras), then
    reduced. Args: from_logits, label_smoothing (targets squeezed towards 1/2), reduction."""
    name = "binary_crossentropy"
    _check_reduction(name, reduction)
    _check_smoothing(name, label_smoothing)
    y_true, y_pred = _align(name, y_true, y_pred, rank=1)
    op = BinaryCrossentropy(bool(from_logits), float(label_smoothing))
    return _reduce(op(y_pred, y_true), reduction)


class MeanSquaredError(Op):
    """loss = mean((y_pred - y_true)^2) over the last axis."""

    name = "mean_squared_error"

    def forward(self, y_pred, y_true):
        # y_pred (..., D), y_true (..., D) -> loss (...)
        self.diff = y_pred - y_true
        return _mean_last(self.diff * self.diff)

    def backward(self, gy):
        g = 2 * self.diff * _mean_last(None, gy, self.diff.shape)
        return g, (-g if self.needs_grad[1] else None)


def mean_squared_error(y_true, y_pred, reduction="mean"):
    y_true, y_pred = _align("mean_squared_error", y_true, y_pred, rank=1)
    _check_reduction("mean_squared_error", reduction)
    return _reduce(MeanSquaredError()(y_pred, y_true), reduction)


class MeanAbsoluteError(Op):
    """loss = mean(|y_pred - y_true|) over the last axis; the slope at 0 is 0 (PyTorch)."""

    name = "mean_absolute_error"

    def forward(self, y_pred, y_true):
        # y_pred (..., D), y_true (..., D) -> loss (...)
        self.diff = y_pred - y_true
        return _mean_last(np.abs(self.diff))

    def backward(self, gy):
        g = np.sign(self.diff) * _mean_last(None, gy, self.diff.shape)
        return g, (-g if self.needs_grad[1] else None)


def mean_absolute_error(y_true, y_pred, reduction="mean"):
    y_true, y_pred = _align("mean_absolute_error", y_true, y_pred, rank=1)
    _check_reduction("mean_absolute_error", reduction)
    return _reduce(MeanAbsoluteError()(y_pred, y_true), reduction)


class Huber(Op):
    """loss = mean over the last axis of d^2 / 2 where |d| <= delta, else delta (|d| - delta/2),
    d = y_pred - y_true; the slope is clip(d, -delta, delta)."""

    name = "huber"

    def __init__(self, delta):
        self.delta = delta

    def forward(self, y_pred, y_true):
        # y_pred (..., D), y_true (..., D) -> loss (...)
        d = self.diff = y_pred - y_true
        abs_d, delta = np.abs(d), self.delta
        return _mean_last(np.where(abs_d <= delta, 0.5 * d * d, delta * (abs_d - 0.5 * delta)))

    def backward(self, gy):
        g = np.clip(self.diff, -self.delta, self.delta) * _mean_last(None, gy, self.diff.shape)
        return g, (-g if self.needs_grad[1] else None)


def huber(y_true, y_pred, delta=1.0, reduction="mean"):
    """Huber loss: quadratic for errors up to delta, linear beyond (Keras's formula)."""
    name = "huber"
    _check_reduction(name, reduction)
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name}: delta must be a real number, got {delta!r}.")
    if not (math.isfinite(delta) and delta > 0):
        raise ArgumentError(f"{name}: delta must be a finite number > 0, got {delta}.")
    y_true, y_pred = _align(name, y_true, y_pred, rank=1)
    return _reduce(Huber(float(delta))(y_pred, y_true), reduction)


mse, mae = mean_squared_error, mean_absolute_error


# ----- shared argument handling -----------------------------------------------------------------
_REDUCTIONS = ("mean", "sum_over_batch_size", "sum", "none", None)


def _check_reduction(name, reduction):
    if reduction not in _REDUCTIONS:
        raise ArgumentError(
            f"{name}: reduction must be one of 'mean' (or 'sum_over_batch_size'), 'sum', "
            f"'none', got {reduction!r}."
        )


def _reduce(loss, reduction):
    if reduction in ("mean", "sum_over_batch_size"):
        return _mean(loss)
    if reduction == "sum":
        return _sum(loss)
    return loss


def _check_smoothing(name, label_smoothing):
    if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing <= 1.0:
        raise ArgumentError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing!r}.")


def _check_axis(name, y_pred, axis):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ArgumentTypeError(f"{name}: axis must be an int, got {axis!r}.")
    if not -y_pred.ndim <= axis < y_pred.ndim:
        raise ArgumentError(
            f"{name}: axis {axis} is out of range for y_pred of rank {y_pred.ndim} "
            f"(shape {y_pred.shape})."
        )
    if y_pred.shape[axis] == 0:  # no class to be right about: refused, not a NaN or inf loss
        raise ArgumentError(f"{name}: y_pred has 0 classes on axis {axis} (shape "
                            f"{y_pred.shape}); it needs at least one class.")
    return int(axis) % y_pred.ndim


def _prediction(name, y_pred):
    """y_pred as a Tensor; a non-floating array is refused, as Op does for its inputs."""
    if isinstance(y_pred, Tensor):
        return y_pred
    array = np.asarray(y_pred)
    if not np.issubdtype(array.dtype, np.floating):
        raise ArgumentTypeError(
            f"{name}: expected a floating-point y_pred (float32 or float64), got dtype "
            f"{array.dtype}."
        )
    return Tensor(array)


def _align(name, y_true, y_pred, rank=0):
    """Both as Tensors of y_pred's dtype and one shape. With rank=1, a trailing axis of size 1
    on one side is squeezed (or added to a 1-D partner) as Keras does for regression losses."""
    y_pred = _prediction(name, y_pred)
    if isinstance(y_true, Tensor):
        if y_true.dtype != y_pred.dtype:
            y_true = (cast(y_true, y_pred.dtype) if y_true.requires_grad
                      else Tensor(y_true.data.astype(y_pred.dtype)))
    else:
        y_true = Tensor(np.asarray(y_true, dtype=y_pred.dtype))
    if rank and y_true.shape != y_pred.shape:
        for a, b in ((y_true, y_pred), (y_pred, y_true)):
            if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
                if b.ndim == 1:
                    b_new = reshape(b, b.shape + (1,))
                    y_true, y_pred = (a, b_new) if a is y_true else (b_new, a)
                else:
                    a_new = reshape(a, a.shape[:-1])
                    y_true, y_pred = (a_new, b) if a is y_true else (b, a_new)
                break
    if y_true.shape != y_pred.shape:
        raise ArgumentError(
            f"{name}: y_true and y_pred must have the same shape, got y_true {y_true.shape} "
            f"and y_pred {y_pred.shape}."
        )
    if rank and y_pred.ndim == 0:
        raise ArgumentError(f"{name}: expected inputs of rank >= 1, got shape {y_pred.shape}.")
    return y_true, y_pred


def _labels(name, y_true, y_pred, axis):
    """Integer class labels shaped like y_pred without its class axis, all in [0, K)."""
    labels = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
    if labels.ndim == y_pred.ndim and labels.ndim > 0 and labels.shape[-1] == 1:
        labels = labels.reshape(labels.shape[:-1])
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.floor(labels) == labels):
            raise ArgumentError(f"{name}: y_true must hold integer class labels, got non-integer "
                                f"values such as {labels[np.floor(labels) != labels].flat[0]}.")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ArgumentTypeError(f"{name}: y_true must hold integer class labels, got "
                                f"{labels.dtype}.")
    expected = y_pred.shape[:axis] + y_pred.shape[axis + 1:]
    if labels.shape != expected:
        raise ArgumentError(
            f"{name}: y_true must have y_pred's shape without the class axis {axis}, i.e. "
            f"{expected} (or with a trailing 1), got y_true {np.shape(y_true)} and y_pred "
            f"{y_pred.shape}."
        )
    k = y_pred.shape[axis]
    bad = (labels < 0) | (labels >= k)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ArgumentError(
            f"{name}: labels must be in [0, {k}) for {k} classes, got {labels[where]} at "
            f"index {where}."
        )
    return labels


_LOSSES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "huber": huber, "huber_loss": huber,
    "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
    "mse": mean_squared_error, "mean_squared_error": mean_squared_error,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
}


def get(identifier):
    """The loss function for a Keras name ('mse', 'categorical_crossentropy', ...); a callable
    is returned unchanged."""
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _LOSSES:
        return _LOSSES[identifier.lower()]
    raise ArgumentError(
        f"loss: unknown loss {identifier!r}; known names: {', '.join(sorted(_LOSSES))}."
    )
