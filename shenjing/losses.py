"""Keras-compatible losses: classes for compile/fit, per-sample functions, get and serialize.

A ``Loss`` maps (y_true, y_pred, sample_weight) to a scalar Tensor, differentiable w.r.t.
y_pred, the way Keras 3 does: per-sample losses (class axis or last axis reduced, see
``shenjing.ops.loss``) are multiplied by sample_weight, then reduced. The default
'sum_over_batch_size' is sum(loss * weight) / number of loss values, so weights scale the mean
and are not renormalised ('mean_with_sample_weight' divides by sum(weight) instead).
The snake_case functions return per-sample values, like the ``keras.losses`` functions.
"""

import re

import numpy as np

from .distribution import context as _distribution
from .errors import ArgumentError, ArgumentTypeError
from .ops import loss as _ops
from .ops.elementwise import cast
from .ops.reduce import sum as _sum
from .ops.shape import reshape, transpose
from .tensor import Tensor, as_tensor

__all__ = [
    "BinaryCrossentropy", "CategoricalCrossentropy", "Huber", "Loss", "LossFunctionWrapper",
    "MeanAbsoluteError", "MeanSquaredError", "SparseCategoricalCrossentropy",
    "binary_crossentropy", "categorical_crossentropy", "get", "huber", "mean_absolute_error",
    "mean_squared_error", "serialize", "sparse_categorical_crossentropy",
]
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none", None)


# ----- per-sample functions (keras.losses.*) --------------------------------------------------
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(t * log p) along axis per sample, t = y_true (1 - s) + s / K (label smoothing s)."""
    return _ops.categorical_crossentropy(y_true, y_pred, from_logits, label_smoothing, axis,
                                         reduction="none")


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None,
                                    axis=-1):
    """-log p[label] along axis per sample; labels (N,), (N, 1) or (N, T) for (N, T, K).
    Entries whose label equals ignore_class get a loss of 0 (and no gradient)."""
    if ignore_class is None:
        return _ops.sparse_categorical_crossentropy(y_true, y_pred, from_logits, axis,
                                                    reduction="none")
    labels, valid = _ignored(y_true, y_pred, ignore_class, axis)
    loss = _ops.sparse_categorical_crossentropy(labels, y_pred, from_logits, axis, "none")
    return loss * valid.astype(loss.dtype)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Mean over axis of -(t log p + (1 - t) log(1 - p)), t = y_true (1 - s) + s / 2."""
    y_pred = as_tensor(y_pred)
    if y_pred.ndim and _check_axis("binary_crossentropy", axis, y_pred.ndim) != y_pred.ndim - 1:
        # the op averages over the last axis: move the axis there
        y_true = y_true if isinstance(y_true, Tensor) else np.asarray(y_true)
        if np.shape(y_true) != y_pred.shape:
            raise ArgumentError(
                f"binary_crossentropy: y_true and y_pred must have the same shape for axis="
                f"{axis}, got y_true {np.shape(y_true)} and y_pred {y_pred.shape}."
            )
        perm = [a for a in range(y_pred.ndim) if a != axis % y_pred.ndim] + [axis % y_pred.ndim]
        y_pred = transpose(y_pred, perm)
        y_true = transpose(y_true, perm) if isinstance(y_true, Tensor) else y_true.transpose(perm)
    return _ops.binary_crossentropy(y_true, y_pred, from_logits, label_smoothing, "none")


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)^2) over the last axis."""
    return _ops.mean_squared_error(y_true, y_pred, reduction="none")


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis."""
    return _ops.mean_absolute_error(y_true, y_pred, reduction="none")


def huber(y_true, y_pred, delta=1.0):
    """Mean over the last axis of d^2 / 2 where |d| <= delta, else delta (|d| - delta / 2)."""
    return _ops.huber(y_true, y_pred, delta, reduction="none")


# ----- classes --------------------------------------------------------------------------------
class Loss:
    """Base class: a loss is ``reduce(call(y_true, y_pred) * sample_weight)`` (Keras 3).

    Subclasses implement ``call`` (per-sample losses). Args: name; reduction
    ('sum_over_batch_size' = 'mean', 'mean_with_sample_weight', 'sum', 'none' or None); dtype
    (y_pred is cast to it first; None keeps y_pred's floating dtype).
    """

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _snake(type(self).__name__)
        if reduction not in REDUCTIONS:
            raise ArgumentError(
                f"{type(self).__name__}: reduction must be one of 'sum_over_batch_size', "
                f"'mean', 'mean_with_sample_weight', 'sum', 'none' or None, got {reduction!r}."
            )
        if dtype is not None and not np.issubdtype(np.dtype(dtype), np.floating):
            raise ArgumentTypeError(f"{type(self).__name__}: dtype must be floating, got "
                                    f"{dtype!r}.")
        self.reduction = reduction
        self.dtype = None if dtype is None else np.dtype(dtype).name

    def __call__(self, y_true, y_pred, sample_weight=None) -> Tensor:
        y_pred = as_tensor(y_pred)
        if self.dtype is not None and y_pred.dtype != self.dtype:
            y_pred = cast(y_pred, self.dtype)
        values = as_tensor(self.call(y_true, y_pred))
        mask = self.compute_mask(y_true, y_pred)
        return _reduce_weighted(self.name, values, sample_weight, mask, self.reduction)

    def call(self, y_true, y_pred) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}: subclasses must implement call().")

    def compute_mask(self, y_true, y_pred):
        """Boolean array shaped like call()'s output (True = counted), or None for all."""

    def get_config(self) -> dict:
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


class LossFunctionWrapper(Loss):
    """A Loss around fn(y_true, y_pred, **kwargs) returning per-sample values; y_true and
    y_pred first get the same rank (a trailing axis of 1 squeezed or added, as Keras)."""

    _config_keys = ()  # fn kwargs that subclasses put in their config and attributes

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise ArgumentTypeError(f"LossFunctionWrapper: fn must be callable, got {fn!r}.")
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction,
                         dtype=dtype)
        self.fn, self._fn_kwargs = fn, kwargs
        for key in self._config_keys:  # Keras's attributes: from_logits, axis, delta, ...
            setattr(self, key, kwargs[key])

    def call(self, y_true, y_pred):
        y_true = y_true if isinstance(y_true, Tensor) else np.asarray(y_true)
        y_true, y_pred = _same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config = super().get_config()
        if type(self) is LossFunctionWrapper:
            if _FUNCTIONS.get(getattr(self.fn, "__name__", None)) is not self.fn:
                raise ArgumentError(
                    f"LossFunctionWrapper '{self.name}': only built-in loss functions can be "
                    f"serialized ({', '.join(sorted(_FUNCTIONS))}), got {self.fn!r}."
                )
            return {**config, "fn": self.fn.__name__, **self._fn_kwargs}
        return {**config, **{k: self._fn_kwargs[k] for k in self._config_keys}}

    @classmethod
    def from_config(cls, config):
        if cls is LossFunctionWrapper:
            config = dict(config)
            config["fn"] = _lookup(config.get("fn"), _FUNCTIONS, "loss function")
        return cls(**config)


class CategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of one-hot (or soft) targets (N, K) against probabilities or logits.

    Args: from_logits; label_smoothing in [0, 1] (targets become t (1 - s) + s / K); axis (the
    class axis); reduction; name; dtype.
    """

    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        _check_smoothing(type(self).__name__, label_smoothing)
        _check_axis(type(self).__name__, axis)
        super().__init__(categorical_crossentropy, reduction, name, dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing),
                         axis=int(axis))


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Crossentropy of integer labels ((N,), (N, 1), (N, T)) against (N, K) / (N, T, K).

    Args: from_logits; ignore_class (an int label whose entries are left out of the loss and
    of the mean, e.g. padding); reduction; axis (the class axis); name; dtype.
    """

    _config_keys = ("from_logits", "ignore_class", "axis")

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, name="sparse_categorical_crossentropy", dtype=None):
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, (int, np.integer))):
            raise ArgumentTypeError(f"{type(self).__name__}: ignore_class must be an int or "
                                    f"None, got {ignore_class!r}.")
        _check_axis(type(self).__name__, axis)
        ignore_class = None if ignore_class is None else int(ignore_class)
        super().__init__(sparse_categorical_crossentropy, reduction, name, dtype,
                         from_logits=bool(from_logits), ignore_class=ignore_class, axis=int(axis))

    def compute_mask(self, y_true, y_pred):
        if self.ignore_class is None:
            return None
        return _ignored(y_true, y_pred, self.ignore_class, self.axis)[1]


class BinaryCrossentropy(LossFunctionWrapper):
    """Crossentropy of targets in [0, 1] (N, D) against probabilities or logits (N, D),
    averaged over axis. Args: from_logits; label_smoothing (targets t (1 - s) + s / 2); axis;
    reduction; name; dtype."""

    _config_keys = ("from_logits", "label_smoothing", "axis")

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        _check_smoothing(type(self).__name__, label_smoothing)
        _check_axis(type(self).__name__, axis)
        super().__init__(binary_crossentropy, reduction, name, dtype,
                         from_logits=bool(from_logits), label_smoothing=float(label_smoothing),
                         axis=int(axis))


class MeanSquaredError(LossFunctionWrapper):
    """mean((y_true - y_pred)^2) over the last axis, then reduced."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, reduction, name, dtype)


class MeanAbsoluteError(LossFunctionWrapper):
    """mean(|y_true - y_pred|) over the last axis, then reduced."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, reduction, name, dtype)


class Huber(LossFunctionWrapper):
    """Huber loss: d^2 / 2 for |d| <= delta, else delta (|d| - delta / 2), d = y_pred - y_true,
    averaged over the last axis. Args: delta (> 0); reduction; name; dtype."""

    _config_keys = ("delta",)  # Keras 3 leaves delta out of its config; we keep it

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss",
                 dtype=None):
        if isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)) or not (
                np.isfinite(delta) and delta > 0):
            raise ArgumentError(f"Huber: delta must be a finite number > 0, got {delta!r}.")
        super().__init__(huber, reduction, name, dtype, delta=float(delta))


# ----- lookup ---------------------------------------------------------------------------------
_CLASSES = {cls.__name__: cls for cls in (
    LossFunctionWrapper, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError, Huber)}
_FUNCTIONS = {fn.__name__: fn for fn in (
    categorical_crossentropy, sparse_categorical_crossentropy, binary_crossentropy,
    mean_squared_error, mean_absolute_error, huber)}
_NAMES = {  # string identifier -> class, as keras.losses.get maps names to objects
    **{name: cls for name, cls in _CLASSES.items() if cls is not LossFunctionWrapper},
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "BCE": BinaryCrossentropy,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
}


def get(identifier, custom_objects=None):
    """A Loss instance from a Keras name ('mse', 'categorical_crossentropy', 'Huber', ...), a
    Loss (returned as is) or Loss class, a {"class_name", "config"} dict (built-in classes, or
    ones in custom_objects; nothing is imported), or a callable(y_true, y_pred) returning
    per-sample losses (wrapped in LossFunctionWrapper). None gives None."""
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, str):
        return _lookup(identifier, _NAMES, "loss")()
    if isinstance(identifier, dict):
        if not isinstance(identifier.get("config", {}), dict):
            raise ArgumentTypeError(f"loss: config must be a dict, got "
                                    f"{identifier.get('config')!r}.")
        cls = _lookup(identifier.get("class_name"), {**_CLASSES, **(custom_objects or {})},
                      "loss class")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise ArgumentError(f"loss: could not interpret loss identifier {identifier!r}; expected a "
                        f"name, a Loss, a config dict or a callable(y_true, y_pred).")


def serialize(loss) -> dict:
    """{"class_name", "config"} for a Loss (get() rebuilds it); built-in functions serialize
    as the LossFunctionWrapper around them."""
    if not isinstance(loss, Loss):
        if _FUNCTIONS.get(getattr(loss, "__name__", None)) is not loss:
            raise ArgumentError(f"serialize: expected a Loss or a built-in loss function, got "
                                f"{loss!r}.")
        loss = LossFunctionWrapper(loss)
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


# ----- helpers --------------------------------------------------------------------------------
def _same_rank(x1, x2):
    """Keras's squeeze_or_expand_to_same_rank: when the ranks differ by one and the longer has
    a trailing 1, squeeze it (or, if the shorter is 1-D, add a trailing 1 to the shorter)."""
    for swap in (False, True):
        a, b = (x2, x1) if swap else (x1, x2)
        if np.ndim(a) == np.ndim(b) + 1 and np.shape(a)[-1] == 1:
            if np.ndim(b) == 1:
                b = _reshape(b, np.shape(b) + (1,))
            else:
                a = _reshape(a, np.shape(a)[:-1])
            return (b, a) if swap else (a, b)
    return x1, x2


def _reshape(x, shape):
    return reshape(x, shape) if isinstance(x, Tensor) else np.reshape(x, shape)


def _reduce_weighted(name, values, sample_weight, mask, reduction):
    """Keras 3's reduce_weighted_values: merge the mask into the weights, multiply, reduce."""
    dtype = values.dtype
    if mask is not None:
        # mean reductions: valid entries weigh total / valid, so the mean is over valid ones
        mask = np.asarray(mask, dtype=bool)
        valid = mask.sum()
        if reduction in ("mean", "sum_over_batch_size"):  # over the global batch's valid ones
            valid = _distribution.global_count(valid)  # (under DataParallel; else unchanged)
        scale = mask.size / valid if reduction in ("mean", "sum_over_batch_size") and valid else 1
        float_mask = np.where(mask, scale, 0).astype(dtype)
        if sample_weight is None:
            sample_weight = float_mask
        else:
            float_mask, weight = _align_weight(float_mask, np.asarray(sample_weight, dtype))
            sample_weight = weight * float_mask
    if sample_weight is not None:
        values, sample_weight = _align_weight(values, np.asarray(sample_weight, dtype=dtype))
        try:
            np.broadcast_shapes(values.shape, sample_weight.shape)
        except ValueError:
            raise ArgumentError(
                f"{name}: sample_weight of shape {np.shape(sample_weight)} does not match the "
                f"per-sample losses of shape {values.shape}; expected (batch,) or {values.shape}."
            ) from None
        values = values * sample_weight
    if reduction in (None, "none") or values.ndim == 0:
        return values
    loss = _sum(values)
    if reduction == "sum":
        return loss
    divisor = values.size
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = sample_weight.sum()
    return loss / np.asarray(divisor, dtype=dtype) if divisor else loss * np.zeros((), dtype)


def _align_weight(values, weight):
    """values and weight after _same_rank; weights (N,) for losses (N, T) repeated."""
    values, weight = _same_rank(values, weight)
    n, w = np.ndim(values), weight
    if 0 < w.ndim < n and w.shape == np.shape(values)[:w.ndim]:
        # NOTE: Keras 3 would align (N,) with the last axis of (N, T) and fail (or mix samples)
        weight = np.broadcast_to(w.reshape(w.shape + (1,) * (n - w.ndim)), np.shape(values))
    return values, weight


def _ignored(y_true, y_pred, ignore_class, axis):
    """Labels with ignore_class entries set to 0, and the mask of the other entries."""
    labels = np.asarray(y_true.data if isinstance(y_true, Tensor) else y_true)
    if labels.ndim == np.ndim(y_pred) and labels.ndim and labels.shape[axis] == 1:
        labels = labels.squeeze(axis)
    valid = labels != ignore_class
    return np.where(valid, labels, 0), valid


def _check_smoothing(name, label_smoothing):
    if isinstance(label_smoothing, bool) or not isinstance(
            label_smoothing, (int, float, np.number)) or not 0 <= label_smoothing <= 1:
        raise ArgumentError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing!r}.")


def _check_axis(name, axis, ndim=None):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ArgumentTypeError(f"{name}: axis must be an int, got {axis!r}.")
    if ndim is not None and not -ndim <= axis < ndim:
        raise ArgumentError(f"{name}: axis {axis} is out of range for y_pred of rank {ndim}.")
    return axis % ndim if ndim else axis


def _lookup(name, table, what):
    if isinstance(name, str) and name in table:
        return table[name]
    raise ArgumentError(f"{what.split()[0]}: unknown {what} {name!r}; known: "
                        f"{', '.join(sorted(table))}.")


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
