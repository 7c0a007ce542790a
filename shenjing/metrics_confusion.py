"""Metrics from confusion counts at thresholds, as Keras 3 computes them: Precision, Recall, AUC.

Each keeps the (weighted) true/false positives/negatives per threshold, summed over batches;
a prediction counts as positive at threshold t when y_pred > t. Where the thresholds are evenly
spaced over [0, 1] (AUC's default 200, or a list such as [0, 0.5, 1]) Keras does not compare
against each threshold: it puts each prediction into the bucket ceil(y_pred (T - 1)) - 1 and
adds up the buckets from the top. We do the same, in the metric's dtype (float32 by default),
so our counts and AUC equal Keras's, including at bucket edges. Counts are held in float64.
"""

import numpy as np

from . import arguments
from .errors import ArgumentError
from .losses import _same_rank
from .metrics import Metric
from .ops.activation import _stable_sigmoid

EPSILON = 1e-7  # keras.config.epsilon()
NEG_INF = -1e10  # what Keras gives the scores outside the top k


def _divide_no_nan(a, b):
    """a / b, 0 where b is 0 (Keras's ops.divide_no_nan)."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def _evenly_spaced(thresholds) -> bool:
    """Keras's is_evenly_distributed_thresholds: i / (T - 1) for i = 0 .. T - 1, T >= 3."""
    n = len(thresholds)
    return n >= 3 and np.allclose(thresholds, np.arange(n, dtype=np.float32) / (n - 1),
                                  atol=EPSILON)


def _thresholds(value, owner, default):
    """Keras's parse_init_thresholds: a number or a list of numbers in [0, 1]."""
    if value is None:
        return [default]
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    if not values:
        raise ArgumentError(f"{owner}: thresholds must not be empty.")
    return [arguments.number(t, "thresholds", owner, 0, 1) for t in values]


def _top_k_only(y_pred, k):
    """Scores outside each row's k largest (last axis) replaced by NEG_INF (Keras's _filter_top_k)."""
    k = min(k, y_pred.shape[-1])
    top = np.argpartition(-y_pred, k - 1, axis=-1)[..., :k]
    keep = np.zeros(y_pred.shape, bool)
    np.put_along_axis(keep, top, True, axis=-1)
    return np.where(keep, y_pred, y_pred.dtype.type(NEG_INF))


def confusion_counts(owner, y_true, y_pred, thresholds, sample_weight=None, top_k=None,
                     class_id=None, multi_label=False, label_weights=None, dtype="float32",
                     evenly=None):
    """tp, fp, tn, fn of one batch: (T,) arrays, or (T, labels) with multi_label.

    As Keras's update_confusion_matrix_variables: y_true is read as bool (non-zero = positive),
    sample_weight broadcasts against y_pred from the batch axis ((N,) or y_pred's shape).
    evenly: whether to count by buckets (None: whether the thresholds are evenly spaced).
    """
    y_pred, y_true = np.asarray(y_pred, dtype), np.asarray(y_true, dtype)
    y_pred, y_true = _same_rank(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ArgumentError(f"{owner}: y_true of shape {y_true.shape} does not match y_pred of "
                            f"shape {y_pred.shape}.")
    weight = None
    if sample_weight is not None:
        weight = np.asarray(sample_weight, dtype)
        _, weight = _same_rank(y_true, weight.reshape(weight.shape + (1,)))
    if top_k is not None:
        y_pred = _top_k_only(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2 or not 0 <= class_id < y_pred.shape[-1]:
            raise ArgumentError(f"{owner}: class_id={class_id} needs y_pred of shape (batch, "
                                f"classes) with more than {class_id} classes, got {y_pred.shape}.")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
        if weight is not None and weight.ndim == y_pred.ndim and weight.shape[-1] > 1:
            weight = weight[..., class_id, None]
    if multi_label and y_pred.ndim != 2:
        raise ArgumentError(f"{owner}: multi_label needs y_pred of rank 2 (batch, labels), got "
                            f"shape {y_pred.shape}.")
    if weight is not None:
        try:
            weight = np.broadcast_to(weight, y_pred.shape)
        except ValueError:
            raise ArgumentError(f"{owner}: sample_weight of shape {np.shape(sample_weight)} "
                                f"does not broadcast to y_pred's {y_pred.shape}.") from None
    if label_weights is not None and not multi_label:
        label_weights = np.broadcast_to(np.asarray(label_weights, dtype), y_pred.shape)
        weight = label_weights if weight is None else weight * label_weights
    positive = y_true != 0
    if not multi_label:  # every entry is one more example
        positive, y_pred = positive.reshape(-1, 1), y_pred.reshape(-1, 1)
        weight = None if weight is None else weight.reshape(-1, 1)
    w = np.ones(y_pred.shape) if weight is None else weight.astype(np.float64)
    true_w, false_w = w * positive, w * ~positive  # (N, L)
    if _evenly_spaced(thresholds) if evenly is None else evenly:
        tp, fp = _bucket_counts(y_pred, true_w, false_w, thresholds, dtype)
    else:  # (T, N, L): each prediction against each threshold
        above = y_pred[None] > np.asarray(thresholds, dtype)[:, None, None]
        tp, fp = (above * true_w).sum(axis=1), (above * false_w).sum(axis=1)
    fn, tn = true_w.sum(axis=0) - tp, false_w.sum(axis=0) - fp
    if not multi_label:
        tp, fp, tn, fn = (c[:, 0] for c in (tp, fp, tn, fn))
    return tp, fp, tn, fn


def _bucket_counts(y_pred, true_w, false_w, thresholds, dtype):
    """Keras's _update_confusion_matrix_variables_optimized for y_pred (N, L): bucket b =
    ceil(clip(y_pred, 0, 1) (T - 1)) - 1 (at least 0 when the end thresholds lie outside
    [0, 1]); the count at threshold i sums the buckets >= i."""
    n = len(thresholds)
    scaled = np.clip(y_pred, 0, 1) * np.asarray(n - 1, dtype)  # in dtype, as Keras
    bucket = np.ceil(scaled).astype(np.int64) - 1
    if thresholds[0] < 0 or thresholds[-1] > 1:
        bucket = np.maximum(bucket, 0)
    labels = y_pred.shape[1]
    keep = bucket >= 0  # a prediction of exactly 0 is above no threshold >= 0
    index = (bucket + n * np.arange(labels))[keep]  # one run of n buckets per label
    counts = []
    for w in (true_w, false_w):
        per_bucket = np.bincount(index, w[keep], minlength=n * labels).reshape(labels, n).T
        counts.append(np.cumsum(per_bucket[::-1], axis=0)[::-1])  # (T, L)
    return counts


class _ConfusionMetric(Metric):
    """Base: running tp/fp/tn/fn (float64) for the metric's thresholds."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = self._counts(y_true, y_pred, sample_weight)
        if self.true_positives is None:  # shaped by the first batch (multi-label AUC)
            self.true_positives, self.false_positives, self.true_negatives, \
                self.false_negatives = (np.zeros_like(c) for c in counts)
        for total, batch in zip(self._totals(), counts, strict=True):
            total += batch

    def _totals(self):
        return (self.true_positives, self.false_positives, self.true_negatives,
                self.false_negatives)

    def __repr__(self):
        result = np.array2string(np.asarray(self.result()), precision=4)
        return f"<{type(self).__name__} name={self.name!r} result={result}>"


class _PrecisionRecall(_ConfusionMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        self.init_thresholds = thresholds
        self.top_k = None if top_k is None else arguments.positive_int(top_k, "top_k", owner)
        self.class_id = (None if class_id is None
                         else arguments.non_negative_int(class_id, "class_id", owner))
        self.thresholds = _thresholds(thresholds, owner, 0.5 if top_k is None else NEG_INF)
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        size = len(self.thresholds)
        self.true_positives, self.false_positives, self.true_negatives, \
            self.false_negatives = (np.zeros(size) for _ in range(4))

    def _counts(self, y_true, y_pred, sample_weight):
        return confusion_counts(self.name, y_true, y_pred, self.thresholds, sample_weight,
                                self.top_k, self.class_id, dtype=self.dtype)

    def _value(self, wrong):
        value = _divide_no_nan(self.true_positives, self.true_positives + wrong)
        return float(value[0]) if len(self.thresholds) == 1 else value

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """tp / (tp + fp) at each threshold: of the predictions > threshold, the share that are
    positive. Args: thresholds (a number or list in [0, 1]; default 0.5, and with top_k only the
    top k scores count); top_k (the k highest scores of each row are the positives); class_id
    (one column of (N, classes) data); name; dtype. A list of thresholds gives an array."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision",
                 dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._value(self.false_positives)


class Recall(_PrecisionRecall):
    """tp / (tp + fn) at each threshold: of the positives, the share predicted > threshold.
    Args as Precision's."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds, top_k, class_id, name, dtype)

    def result(self):
        return self._value(self.false_negatives)


class AUC(_ConfusionMetric):
    """Area under the ROC or precision-recall curve, a Riemann sum over num_thresholds points.

    ROC: x = fp / (fp + tn), y = tp / (tp + fn); PR: x = recall, y = precision, and
    'interpolation' uses Davis & Goadrich's interpolation of precision between points; PRGAIN:
    the precision-recall gain curve. Heights per interval: the mean of its ends
    ('interpolation'), the smaller ('minoring') or the larger ('majoring').
    Args: num_thresholds (> 1, default 200: 0, 1/199, ... 1, the ends moved out by 1e-7);
    curve; summation_method; name; dtype; thresholds (a list in [0, 1] instead, ends added);
    multi_label (one AUC per column of (N, labels) data, then their mean, weighted by
    label_weights); num_labels; label_weights; from_logits (apply a sigmoid to y_pred first).
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name="auc", dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_thresholds(thresholds, "AUC", None))
            self.num_thresholds = len(inner) + 2
        else:
            self.num_thresholds = arguments.integer(num_thresholds, "num_thresholds", "AUC",
                                                    minimum=2)
            inner = [(i + 1) / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
        self._thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        self._evenly = _evenly_spaced([0.0, *inner, 1.0])
        self.curve = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}[
            arguments.choice(curve, ("roc", "pr", "prgain"), "curve", "AUC")]
        self.summation_method = arguments.choice(
            summation_method, ("interpolation", "minoring", "majoring"), "summation_method", "AUC")
        self.multi_label = arguments.boolean(multi_label, "multi_label", "AUC")
        self.from_logits = arguments.boolean(from_logits, "from_logits", "AUC")
        if num_labels is not None:
            if not self.multi_label:
                raise ArgumentError("AUC: num_labels is needed only when multi_label is True.")
            num_labels = arguments.positive_int(num_labels, "num_labels", "AUC")
        self.num_labels = num_labels
        self.label_weights = None
        if label_weights is not None:
            self.label_weights = np.asarray(label_weights, np.float64)
            if self.label_weights.ndim != 1 or (self.label_weights < 0).any():
                raise ArgumentError(f"AUC: label_weights must be a list of numbers >= 0, got "
                                    f"{label_weights!r}.")
        super().__init__(name=name, dtype=dtype)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def reset_state(self):
        shape = ((self.num_thresholds, self.num_labels) if self.multi_label
                 else (self.num_thresholds,))
        if self.multi_label and self.num_labels is None:  # shaped by the first batch
            self.true_positives = self.false_positives = None
            self.true_negatives = self.false_negatives = None
            return
        self.true_positives, self.false_positives, self.true_negatives, \
            self.false_negatives = (np.zeros(shape) for _ in range(4))

    def _counts(self, y_true, y_pred, sample_weight):
        if self.from_logits:
            y_pred = _stable_sigmoid(np.asarray(y_pred, self.dtype))
        counts = confusion_counts(
            self.name, y_true, y_pred, self._thresholds, sample_weight,
            multi_label=self.multi_label, dtype=self.dtype, evenly=self._evenly,
            label_weights=None if self.multi_label else self.label_weights)
        if self.true_positives is not None and counts[0].shape != self.true_positives.shape:
            raise ArgumentError(f"{self.name}: y_pred has {counts[0].shape[-1]} labels, but "
                                f"the metric counts {self.true_positives.shape[-1]}.")
        return counts

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp, fp, tn, fn = self._totals()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._average(self._interpolated_pr_terms(tp, fp, fn))
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:  # PRGAIN, with Keras's fixes for tp = 0 and a recall gain below 0
            scale = _divide_no_nan(tp + fn, tn + fp)
            x = np.where(tp == 0, 0.0, 1.0 - scale * _divide_no_nan(fn, tp))
            y = np.where(tp == 0, 1.0, 1.0 - scale * _divide_no_nan(fp, tp))
            x = np.maximum(x, 0.0)
        pick = {"interpolation": lambda a, b: (a + b) / 2, "minoring": np.minimum,
                "majoring": np.maximum}[self.summation_method]
        return self._average((x[:-1] - x[1:]) * pick(y[:-1], y[1:]))

    @staticmethod
    def _interpolated_pr_terms(tp, fp, fn):
        """Davis & Goadrich: precision varies as TP and P = TP + FP vary linearly between
        points; the area of interval [A, B] is slope (dTP + c log(P_A / P_B)) / (TP + FN)."""
        p = tp + fp
        dtp, dp = tp[:-1] - tp[1:], p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
        log_ratio = np.log(np.where(ratio > 0, ratio, 1.0))
        return _divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], 0))

    def _average(self, terms) -> float:
        if not self.multi_label:
            return float(terms.sum())
        by_label = terms.sum(axis=0)
        if self.label_weights is None:
            return float(by_label.mean())
        return float(_divide_no_nan((by_label * self.label_weights).sum(),
                                    self.label_weights.sum()))

    def get_config(self):
        config = {
            **super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
            "summation_method": self.summation_method, "multi_label": self.multi_label,
            "num_labels": self.num_labels, "from_logits": self.from_logits,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
        }
        if self._init_from_thresholds:
            config["thresholds"] = self._thresholds[1:-1]
        return config


__all__ = ["AUC", "Precision", "Recall", "confusion_counts"]
