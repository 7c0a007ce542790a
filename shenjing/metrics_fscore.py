"""F-scores over (batch, classes) data, as Keras 3 computes them: FBetaScore and F1Score.

Predictions become 0/1 (y_pred > threshold, or the row's maximum when threshold is None), then
per class tp, fp, fn and the support (sum of y_true) are summed over batches (weighted by
sample_weight (N,)). F_beta = (1 + beta^2) P R / (beta^2 P + R), with Keras's 1e-7 added to
each denominator, so an empty class scores 0.
"""

import numpy as np

from . import arguments
from .errors import ArgumentError
from .metrics import Metric

EPSILON = 1e-7  # keras.config.epsilon()
AVERAGES = (None, "micro", "macro", "weighted")


class FBetaScore(Metric):
    """F_beta = (1 + beta^2) * precision * recall / (beta^2 * precision + recall).

    Args: average (None: one score per class; 'micro': from the counts of all classes
    together; 'macro': the mean of the class scores; 'weighted': their mean weighted by each
    class's support); beta (> 0; recall weighs beta times as much as precision); threshold
    (in (0, 1]: y_pred > threshold is positive; None: each row's maximum, if not ~0); name; dtype.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        owner = type(self).__name__
        if average not in AVERAGES:
            raise ArgumentError(f"{owner}: average must be one of None, 'micro', 'macro', "
                                f"'weighted', got {average!r}.")
        self.average = average
        self.beta = arguments.number(beta, "beta", owner, low=0, low_open=True)
        self.threshold = (None if threshold is None else
                          arguments.number(threshold, "threshold", owner, 0, 1, low_open=True))
        self._classes = None  # known from the first batch
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        shape = () if self.average == "micro" else (self._classes or 0,)
        if self._classes is None:
            self.true_positives = None
            return
        self.true_positives, self.false_positives, self.false_negatives, \
            self.intermediate_weights = (np.zeros(shape) for _ in range(4))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = np.asarray(y_true, self.dtype), np.asarray(y_pred, self.dtype)
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ArgumentError(f"{self.name}: expected y_true and y_pred of one shape (batch, "
                                f"classes), got {y_true.shape} and {y_pred.shape}.")
        if self._classes is None:
            self._classes = y_pred.shape[1]
            self.reset_state()
        elif y_pred.shape[1] != self._classes:
            raise ArgumentError(f"{self.name}: y_pred has {y_pred.shape[1]} classes, earlier "
                                f"batches had {self._classes}.")
        if self.threshold is None:  # the row's maximum (ties: all of them), unless ~0
            top = y_pred.max(axis=-1, keepdims=True)
            predicted = (y_pred >= top) & (np.abs(y_pred) > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.astype(np.float64)
        y_true = y_true.astype(np.float64)
        weight = None
        if sample_weight is not None:
            weight = np.asarray(sample_weight, np.float64)
            if weight.shape not in ((len(y_pred),), ()):
                raise ArgumentError(f"{self.name}: sample_weight must have shape "
                                    f"({len(y_pred)},), got {weight.shape}.")
            weight = np.reshape(weight, (-1, 1))
        axis = None if self.average == "micro" else 0

        def total(values):
            return (values if weight is None else values * weight).sum(axis=axis)

        self.true_positives += total(predicted * y_true)
        self.false_positives += total(predicted * (1 - y_true))
        self.false_negatives += total((1 - predicted) * y_true)
        self.intermediate_weights += total(y_true)

    def result(self):
        if self.true_positives is None:
            return 0.0
        tp = self.true_positives
        precision = tp / (tp + self.false_positives + EPSILON)
        recall = tp / (tp + self.false_negatives + EPSILON)
        b2 = self.beta**2
        score = precision * recall / (b2 * precision + recall + EPSILON) * (1 + b2)
        if self.average == "weighted":
            support = self.intermediate_weights
            return float(np.sum(score * support / (support.sum() + EPSILON)))
        if self.average is not None:  # micro (one score), macro
            return float(np.mean(score))
        return score

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}

    def __repr__(self):
        result = np.array2string(np.asarray(self.result()), precision=4)
        return f"<{type(self).__name__} name={self.name!r} result={result}>"


class F1Score(FBetaScore):
    """F_1 = 2 * precision * recall / (precision + recall): FBetaScore with beta = 1.
    Args: average, threshold, name, dtype as FBetaScore's."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


__all__ = ["F1Score", "FBetaScore"]
