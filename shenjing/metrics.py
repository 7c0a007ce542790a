"""Keras-compatible stateful metrics on NumPy arrays (Tensors are read with np.asarray).

Each metric keeps a weighted total and count: ``update_state`` per batch, ``result()`` as a
float, ``reset_state()`` between epochs. The mean metrics follow Keras 3's per-sample rule: a
metric function gives values per sample (e.g. (N,) or (N, T)); with no sample_weight a batch
counts its N samples, each averaged over its other axes; with weights (N,) or (N, T) it adds
sum(value * weight) to the total and the per-sample mean weight to the count. State is float64.
"""

import numpy as np

from . import arguments, losses
from .errors import ArgumentError, ArgumentTypeError
from .losses import _lookup, _same_rank, _snake
from .tensor import no_grad

__all__ = [
    "AUC", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy", "F1Score", "FBetaScore", "Mean",
    "MeanAbsoluteError", "MeanMetricWrapper", "MeanSquaredError", "Metric", "Precision",
    "Recall", "RootMeanSquaredError", "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy", "TopKCategoricalAccuracy", "accuracy", "binary_accuracy",
    "categorical_accuracy", "get", "mean_absolute_error", "mean_squared_error", "serialize",
    "sparse_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
]


# ----- per-sample functions (keras.metrics.*) -------------------------------------------------
def accuracy(y_true, y_pred):
    """1.0 where y_true == y_pred exactly."""
    y_pred = np.asarray(y_pred)
    y_true, y_pred = _same_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
    return (y_true == y_pred).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where y_true == (y_pred > threshold); y_true is not thresholded (Keras 3)."""
    y_true, y_pred = _same_rank(np.asarray(y_true), np.asarray(y_pred))
    return (y_true == (y_pred > threshold)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    """1.0 where argmax(y_true) == argmax(y_pred) over the last axis (first maximum wins)."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the label y_true ((N,), (N, 1), (N, T)) == argmax(y_pred) (first maximum)."""
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    matches = (y_true.astype(y_pred.dtype) == np.argmax(y_pred, axis=-1)).astype(np.float32)
    return matches[..., 0] if matches.ndim > 1 and matches.shape[-1] == 1 else matches


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the label's score is among the k largest: fewer than k scores exceed it, so
    ties at the k-th place count as hits (Keras's in_top_k)."""
    y_pred = np.asarray(y_pred)
    labels = np.asarray(y_true).astype(np.int64)  # Keras casts to int32 (truncating)
    shape = labels.shape
    scores = y_pred.reshape(-1, y_pred.shape[-1])
    labels = labels.reshape(-1)
    if labels.shape[0] != scores.shape[0]:
        raise ArgumentError(f"sparse_top_k_categorical_accuracy: expected one label per row of "
                            f"y_pred {y_pred.shape}, got y_true of shape {shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ArgumentError(f"sparse_top_k_categorical_accuracy: labels must be in [0, "
                            f"{scores.shape[1]}), got values in [{labels.min()}, {labels.max()}].")
    target = np.take_along_axis(scores, labels[:, None], axis=1)
    # NOTE: a NaN score at the label is a miss (JAX's in_top_k), not a hit
    hits = ((scores > target).sum(axis=1) < k) & ~np.isnan(target[:, 0])
    return hits.astype(np.float32).reshape(shape)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where argmax(y_true) is among the k top-scoring classes of y_pred (ties count)."""
    return sparse_top_k_categorical_accuracy(np.argmax(y_true, axis=-1), y_pred, k)


def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)^2) over the last axis (after Keras's rank alignment)."""
    y_pred = np.asarray(y_pred)
    y_true, y_pred = _same_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
    return np.mean(np.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis (after Keras's rank alignment)."""
    y_pred = np.asarray(y_pred)
    y_true, y_pred = _same_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
    return np.mean(np.abs(y_true - y_pred), axis=-1)


# ----- classes --------------------------------------------------------------------------------
class Metric:
    """Base class: update_state(y_true, y_pred, sample_weight=None), result() -> float,
    reset_state(); calling a metric updates it and returns the result. Args: name; dtype
    (kept for Keras configs; state is accumulated in float64)."""

    def __init__(self, name=None, dtype=None):
        owner = type(self).__name__
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"{owner}: name must be a string or None, got {name!r}.")
        self.name = name or _snake(owner)
        self.dtype = "float32" if dtype is None else _float_dtype(dtype, owner)
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError(f"{type(self).__name__}: subclasses implement update_state.")

    def result(self) -> float:
        raise NotImplementedError(f"{type(self).__name__}: subclasses implement result.")

    def reset_state(self):
        pass

    def __call__(self, *args, **kwargs) -> float:
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} result={self.result():.4g}>"


class Mean(Metric):
    """Weighted running mean of values: sum(value * weight) / sum(weight) (the loss tracker
    passes the batch size as the weight of each batch's loss)."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values, weight = _samplewise(self.name, values, sample_weight)
        self.total += float(np.sum(values))
        if weight is not None:
            self.count += float(np.sum(weight))
        else:
            self.count += values.shape[0] if values.ndim else 1

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """Running mean of fn(y_true, y_pred, **kwargs), a per-sample metric (or loss) function."""

    _config_keys = ()  # fn kwargs that subclasses put in their config

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise ArgumentTypeError(f"MeanMetricWrapper: fn must be callable, got {fn!r}.")
        self.fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        with no_grad():  # fn may be a shenjing loss: no graph is needed here
            values = np.asarray(self.fn(y_true, y_pred, **self._fn_kwargs))
        super().update_state(values, sample_weight)

    def get_config(self):
        return {**super().get_config(), **{k: self._fn_kwargs[k] for k in self._config_keys}}


class Accuracy(MeanMetricWrapper):
    """How often y_pred equals y_true exactly (labels against predicted labels)."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name, dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often (y_pred > threshold) equals y_true, for targets in {0, 1} (N, D)."""

    _config_keys = ("threshold",)

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        threshold = arguments.number(threshold, "threshold", "BinaryAccuracy")
        super().__init__(binary_accuracy, name, dtype, threshold=threshold)
        self.threshold = threshold


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals argmax of the one-hot y_true (N, K) or (N, T, K)."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name, dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals the integer label ((N,), (N, 1), or (N, T))."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name, dtype)


class _TopK(MeanMetricWrapper):
    _config_keys = ("k",)

    def __init__(self, fn, k, name, dtype):
        k = arguments.positive_int(k, "k", type(self).__name__)
        super().__init__(fn, name, dtype, k=k)
        self.k = k


class TopKCategoricalAccuracy(_TopK):
    """How often the one-hot target's class is among the k top-scoring classes (ties count)."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, k, name, dtype)


class SparseTopKCategoricalAccuracy(_TopK):
    """How often the integer label is among the k top-scoring classes (ties count)."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(sparse_top_k_categorical_accuracy, k, name, dtype)


class MeanSquaredError(MeanMetricWrapper):
    """Running mean of the per-sample mean((y_true - y_pred)^2) over the last axis."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name, dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Running mean of the per-sample mean(|y_true - y_pred|) over the last axis."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name, dtype)


class RootMeanSquaredError(MeanMetricWrapper):
    """sqrt of the running mean of (y_true - y_pred)^2 (per sample: the mean over its entries)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(_squared_error, name, dtype)

    def result(self) -> float:
        return float(np.sqrt(super().result()))


def _squared_error(y_true, y_pred):
    y_pred = np.asarray(y_pred)
    y_true, y_pred = _same_rank(np.asarray(y_true, dtype=y_pred.dtype), y_pred)
    return np.square(y_pred - y_true)


# Precision, Recall, AUC and the F-scores live in their own modules, which import Metric above
from .metrics_confusion import AUC, Precision, Recall
from .metrics_fscore import F1Score, FBetaScore

# ----- lookup ---------------------------------------------------------------------------------
_CLASSES = {cls.__name__: cls for cls in (
    Mean, Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
    TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError,
    RootMeanSquaredError, Precision, Recall, AUC, F1Score, FBetaScore)}
_NAMES = {
    **_CLASSES, **{_snake(name): cls for name, cls in _CLASSES.items()},
    "mse": MeanSquaredError, "MSE": MeanSquaredError,
    "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
    "auc": AUC, "fbeta_score": FBetaScore,  # Keras's snake case ('auc') and default name
}
del _NAMES["a_u_c"]


def get(identifier, loss=None, y_true=None, y_pred=None):
    """A Metric from a Keras name, a Metric (as is) or Metric class, a {"class_name", "config"}
    dict (built-in classes only) or a callable(y_true, y_pred) (wrapped in MeanMetricWrapper).

    Metrics given by name are named so (as in Keras fit logs: 'acc', 'mse'). 'accuracy'/'acc'
    picks its kind as Keras 3 does from y_true and y_pred when they are given: y_pred's last
    axis 1 -> BinaryAccuracy; y_true of lower rank, or a last axis 1 against more classes ->
    SparseCategoricalAccuracy; else CategoricalAccuracy. Without them it follows the loss
    (binary / sparse categorical / categorical crossentropy).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            return _accuracy_for(identifier, loss, y_true, y_pred)(name=identifier)
        return _lookup(identifier, _NAMES, "metric")(name=identifier)
    if isinstance(identifier, dict):
        cls = _lookup(identifier.get("class_name"), _CLASSES, "metric class")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise ArgumentTypeError(f"metric: could not interpret metric identifier {identifier!r}; "
                            f"expected a name, a Metric, a config dict or a callable(y_true, y_pred).")


def serialize(metric) -> dict:
    """{"class_name", "config"} for a built-in Metric; get() rebuilds it."""
    if type(metric).__name__ not in _CLASSES or not isinstance(metric, Metric):
        raise ArgumentError(f"serialize: expected a built-in Metric ({', '.join(_CLASSES)}), got "
                            f"{metric!r}.")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


# ----- helpers --------------------------------------------------------------------------------
def _float_dtype(dtype, owner) -> str:
    """A float dtype's name (Keras takes a metric's dtype as a float policy)."""
    try:
        resolved = np.dtype(dtype)
    except (TypeError, ValueError) as error:
        raise ArgumentTypeError(f"{owner}: dtype: {error}") from None
    if resolved.kind != "f":
        raise ArgumentError(f"{owner}: dtype must be a float dtype such as 'float32', got "
                            f"{resolved}.")
    return resolved.name


def _accuracy_for(identifier, loss, y_true, y_pred):
    """The accuracy class for 'accuracy': from the data shapes (Keras 3), else from the loss."""
    if y_true is not None and y_pred is not None:
        t_shape, p_shape = np.shape(y_true), np.shape(y_pred)
        if len(p_shape) == 0 or len(t_shape) == 0:
            raise ArgumentError(f"metric {identifier!r}: y_true and y_pred need a batch axis, got "
                                f"shapes {t_shape} and {p_shape}.")
        if p_shape[-1] == 1:
            return BinaryAccuracy
        if len(t_shape) < len(p_shape) or t_shape[-1] == 1:
            return SparseCategoricalAccuracy
        return CategoricalAccuracy
    try:
        resolved = losses.get(loss)
    except (TypeError, ValueError):
        resolved = None
    for loss_cls, fn, metric_cls in (
        (losses.BinaryCrossentropy, losses.binary_crossentropy, BinaryAccuracy),
        (losses.CategoricalCrossentropy, losses.categorical_crossentropy, CategoricalAccuracy),
        (losses.SparseCategoricalCrossentropy, losses.sparse_categorical_crossentropy,
         SparseCategoricalAccuracy),
    ):
        if isinstance(resolved, loss_cls) or getattr(resolved, "fn", None) is fn:
            return metric_cls
    raise ArgumentError(
        f"metric {identifier!r}: cannot tell binary, categorical and sparse categorical "
        f"accuracy apart from loss {loss!r}; pass y_true and y_pred (a batch) to get(), or name "
        f"the metric ('binary_accuracy', 'categorical_accuracy', 'sparse_categorical_accuracy')."
    )


def _samplewise(name, values, sample_weight):
    """Keras 3's reduce_to_samplewise_values with a mean: per-sample values and weights."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        weight = np.asarray(sample_weight, dtype=np.float64)
        values, weight = _same_rank(values, weight)
        w_ndim = weight.ndim
        if values.ndim > w_ndim:
            values = values.mean(axis=tuple(range(w_ndim, values.ndim)))
        try:
            weight = np.broadcast_to(weight, values.shape)
        except ValueError:
            raise ArgumentError(
                f"{name}: sample_weight of shape {np.shape(sample_weight)} does not match the "
                f"per-sample values of shape {values.shape}; expected (batch,) or that shape."
            ) from None
        values = values * weight
        if w_ndim > 1:
            weight = weight.mean(axis=tuple(range(1, w_ndim)))
        sample_weight = weight
    if values.ndim > 1:
        values = values.mean(axis=tuple(range(1, values.ndim)))
    return values, sample_weight
