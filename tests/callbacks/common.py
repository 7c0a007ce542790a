"""Small models, data and stand-ins shared by the callback tests."""

import numpy as np

from shenjing import layers, optimizers, utils
from shenjing.callbacks import Callback
from shenjing.models import Sequential


def regression_data(n=64, seed=0):
    """y = x @ w + 0.1 noise, x (n, 3) float32: a task a small Dense net learns in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((n, 1)))
    return x, y.astype(np.float32)


def dense_model(learning_rate=0.05, seed=0):
    utils.set_seed(seed)
    model = Sequential([layers.Input((3,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    model.compile(optimizer=optimizers.SGD(learning_rate), loss="mse")
    return model


class ScriptedLogs(Callback):
    """Put it first in ``callbacks``: at each epoch end it overwrites ``logs[key]`` with the next
    scripted value and keeps a copy of the model's weights, so tests know the best epoch's."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values, self.weights = key, list(values), []

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.weights.append(self.model.get_weights())


class FakeOptimizer:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class FakeModel:
    """What callbacks touch on a model, with each epoch's weights a marker array [epoch]."""

    def __init__(self, learning_rate=0.1):
        self.stop_training, self.epoch, self.restored, self.saved = False, 0, None, []
        self.optimizer = FakeOptimizer(learning_rate)

    def get_weights(self):
        return [np.array([float(self.epoch)])]

    def set_weights(self, weights):
        self.restored = int(weights[0][0])

    def save(self, filepath, **kwargs):
        self.saved.append(("model", filepath))

    def save_weights(self, filepath, **kwargs):
        self.saved.append(("weights", filepath))


def drive(callback, model, logs_per_epoch):
    """Run the epoch hooks of fit over scripted logs; returns the epochs run and their logs."""
    callback.set_model(model)
    callback.on_train_begin()
    seen = []
    for epoch, logs in enumerate(logs_per_epoch):
        model.epoch = epoch
        callback.on_epoch_begin(epoch)
        logs = dict(logs)
        callback.on_epoch_end(epoch, logs)
        seen.append(logs)
        if model.stop_training:
            break
    callback.on_train_end()
    return seen


class Interrupted(Exception):
    """Stands for the process dying (a kill, a power cut) in the middle of fit."""


class CountSteps(Callback):
    """Counts train batches; raises Interrupted before batch `stop_before` (counted from 1)."""

    def __init__(self, stop_before=None):
        super().__init__()
        self.steps, self.stop_before = 0, stop_before

    def on_train_batch_begin(self, batch, logs=None):
        if self.steps + 1 == self.stop_before:
            raise Interrupted
        self.steps += 1
