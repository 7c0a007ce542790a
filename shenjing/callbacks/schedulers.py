"""Callbacks that set the optimizer's learning rate: LearningRateScheduler, ReduceLROnPlateau.

Both add the rate in use to the epoch logs as ``learning_rate``, as Keras 3 does, so History
and the progress bar show it.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import progbar
from ..errors import ArgumentError, ArgumentTypeError
from . import state_fields
from .base import Callback
from .early_stopping import MonitorCallback


def _optimizer(callback):
    optimizer = getattr(callback.model, "optimizer", None)
    if optimizer is None or not hasattr(optimizer, "learning_rate"):
        raise ArgumentError(
            f"{type(callback).__name__}: the model's optimizer must have a "
            f"learning_rate attribute, got {optimizer!r}; compile the model first.")
    return optimizer


class LearningRateScheduler(Callback):
    """At each epoch's start, set the learning rate to ``schedule(epoch, lr)``.

    Args: schedule (a function of the epoch index, from 0, and the current rate, returning
    the new rate; a function of the epoch alone works too); verbose.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = _optimizer(self)
        try:
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # Keras's older one-argument form, schedule(epoch)
            lr = self.schedule(epoch)
        if isinstance(lr, np.ndarray) and lr.ndim == 0:
            lr = lr.item()
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise ArgumentTypeError(
                f"LearningRateScheduler: the schedule must return a float, got "
                f"{lr!r} for epoch {epoch}.")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            progbar.print_msg(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate "
                              f"to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(_optimizer(self).learning_rate)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` once the monitored quantity has not improved
    for ``patience`` epochs: new_lr = max(lr * factor, min_lr).

    Args: monitor ("val_loss"); factor (< 1); patience; verbose; mode ("auto", "min", "max");
    min_delta (smallest change that counts as an improvement); cooldown (epochs to wait after
    a reduction before counting again); min_lr (lower bound).
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ArgumentError(f"ReduceLROnPlateau: factor must be < 1.0 (the rate is multiplied "
                                f"by it), got {factor}.")
        self.factor, self.patience, self.verbose = factor, patience, verbose
        self.cooldown, self.min_lr = cooldown, min_lr
        self.cooldown_counter = self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.cooldown_counter, self.wait = None, 0, 0

    def get_state(self):
        # the learning rate already set travels in the optimizer's config in the same file
        return {**super().get_state(), "wait": self.wait,
                "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        super().set_state(state)
        self.wait = state_fields.count(state, "wait")
        self.cooldown_counter = state_fields.count(state, "cooldown_counter")

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        optimizer = _optimizer(self)
        logs = {} if logs is None else logs
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = self._get_monitor_value(logs, "learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
            return
        if self.in_cooldown():
            return
        self.wait += 1
        old_lr = float(optimizer.learning_rate)
        # NOTE: compared in float32 as Keras does, so a rate stored as float32 stops at min_lr
        if self.wait >= self.patience and old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                progbar.print_msg(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                                  f"to {new_lr}.")
            self.cooldown_counter, self.wait = self.cooldown, 0
