"""EarlyStopping, and MonitorCallback: the watched quantity that it, ModelCheckpoint and
ReduceLROnPlateau share (monitor name, min/max mode, min_delta), as in Keras 3."""

from __future__ import annotations

import warnings

from .. import progbar
from ..errors import ArgumentError
from . import state_fields
from .base import Callback

# metric names (without "val_") that grow as the model gets better; others are minimized
_MAXIMIZED = ("acc", "auc", "precision", "recall", "f1", "fbeta", "r2", "iou")


class MonitorCallback(Callback):
    """Base of callbacks that watch one entry of the epoch logs.

    An improvement is ``current < best - min_delta`` in "min" mode, ``current > best +
    min_delta`` in "max" mode; "auto" picks "max" for accuracies, AUC, precision, recall, F1,
    R2 and IoU, and "min" for everything else (losses, errors).
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            raise ArgumentError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', got "
                                f"{mode!r}.")
        if mode == "auto":
            name = monitor.removeprefix("val_")
            mode = "max" if any(part in name for part in _MAXIMIZED) else "min"
        self.monitor, self.mode = monitor, mode
        self.min_delta = abs(min_delta)
        self.best = baseline

    def get_state(self):
        return {"best": None if self.best is None else float(self.best)}

    def set_state(self, state):
        self.best = state_fields.optional_number(state, "best")

    def _is_improvement(self, current, reference) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def _get_monitor_value(self, logs, action):
        """The monitored value, or None with a warning naming the keys there are."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: {action} is conditioned on metric "
                          f"'{self.monitor}', which is not in the logs. Available metrics are: "
                          f"{', '.join(logs) or 'none'}.", stacklevel=3)
        return value


class EarlyStopping(MonitorCallback):
    """Stop training when the monitored quantity has stopped improving; sets model.stop_training.

    Args: monitor ("val_loss"); min_delta (smallest change that counts as an improvement);
    patience (epochs without improvement before stopping); verbose; mode ("auto", "min",
    "max"); baseline (training stops unless it is beaten within patience epochs);
    restore_best_weights (when training ends, early or not, set the weights of the best
    epoch); start_from_epoch (epochs of warm-up not watched).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience, self.verbose, self.baseline = patience, verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # reset, so that one instance can serve several fit calls
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self._get_monitor_value(logs, "early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # the first watched epoch is the best one until another beats it
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # patience restarts only when the baseline is beaten too
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def get_state(self):
        return {**super().get_state(), "wait": self.wait, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def set_state(self, state):
        super().set_state(state)
        self.wait, self.best_epoch, self.stopped_epoch = (
            state_fields.count(state, key) for key in ("wait", "best_epoch", "stopped_epoch"))
        self.best_weights = state_fields.model_weights(state, "best_weights", self.model)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            progbar.print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                progbar.print_msg(f"Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
