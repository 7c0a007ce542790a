"""Resuming fit from a checkpoint: mid-epoch at the batch after it, and with the callbacks'
state, so an interrupted and resumed run repeats the uninterrupted one.

Weights are compared bit for bit: the resumed run does the same operations in the same order
on the same values (the file holds the float32 weights and optimizer slots exactly, and the
random stream and shuffle order are restored), so nothing can round differently.
"""

import json

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, optimizers, utils
from shenjing.callbacks import Callback, EarlyStopping, ModelCheckpoint, ReduceLROnPlateau
from shenjing.io import FileFormatError, read_safetensors, write_safetensors
from tests.callbacks.common import ScriptedLogs, regression_data


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


def dropout_model():
    utils.set_seed(0)
    model = sj.Sequential([layers.Input((3,)), layers.Dense(8, activation="tanh"),
                           layers.Dropout(0.3), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


def assert_same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(p, q)  # same operations in the same order: see above


# 44 samples in batches of 8: 6 batches an epoch (the last of 4), 18 in 3 epochs
X, Y = regression_data(n=44)
FIT = {"batch_size": 8, "epochs": 3, "verbose": 0}


def test_mid_epoch_checkpoint_resumes_at_the_next_batch(tmp_path):
    straight, counter = dropout_model(), CountSteps()
    expected = straight.fit(X, Y, callbacks=[counter], **FIT)
    assert counter.steps == 18

    # checkpoints after batches 4 and 8 (epoch 2, its batch 2); the process dies after 9
    path = tmp_path / "ckpt.safetensors"
    first, counter = dropout_model(), CountSteps(stop_before=10)
    with pytest.raises(Interrupted):
        first.fit(X, Y, callbacks=[counter, ModelCheckpoint(path, save_freq=4)], **FIT)
    training = json.loads(read_safetensors(path)[1]["training_state"])
    assert (training["epoch"], training["batch"]) == (1, 2)

    utils.set_seed(123)  # another random state, as in a fresh process
    model, resumed_counter = sj.load_model(path), CountSteps()
    history = model.fit(X, Y, callbacks=[resumed_counter], initial_epoch=model.completed_epochs,
                        **FIT)
    assert 8 + resumed_counter.steps == 18 and model.optimizer.iterations == 18
    assert_same_weights(model, straight)
    assert history.epoch == [1, 2]
    for key in ("loss", "mae"):  # the resumed epoch's logs cover its batches before the pause
        assert history.history[key] == expected.history[key][1:]


def test_a_batch_checkpoint_written_at_an_epochs_end_resumes_with_the_next_epoch(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    straight = dropout_model()
    straight.fit(X, Y, **FIT)
    first = dropout_model()
    with pytest.raises(Interrupted):  # the checkpoint after batch 12 is the epoch's last batch
        first.fit(X, Y, callbacks=[CountSteps(stop_before=13), ModelCheckpoint(path, save_freq=6)],
                  **FIT)
    model = sj.load_model(path)
    model.fit(X, Y, initial_epoch=model.completed_epochs, **FIT)
    assert model.optimizer.iterations == 18
    assert_same_weights(model, straight)


def test_resuming_with_another_batch_size_is_refused(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    with pytest.raises(Interrupted):
        dropout_model().fit(X, Y, callbacks=[CountSteps(stop_before=6),
                                             ModelCheckpoint(path, save_freq=5)], **FIT)
    model = sj.load_model(path)
    with pytest.raises(FileFormatError, match=r"ckpt\.safetensors: training_state: .*after batch "
                                              r"5 of epoch 1, but this fit has 3 batches.*"
                                              r"batch_size"):
        model.fit(X, Y, initial_epoch=0, **{**FIT, "batch_size": 16})


# ----- callback state --------------------------------------------------------------------------
VAL_LOSSES = [1.0, 0.8, 0.9, 0.85, 0.95, 0.7, 0.75, 0.8, 0.9, 0.95]


def scripted_fit(model, callbacks, epochs, initial_epoch=0):
    script = ScriptedLogs("val_loss", VAL_LOSSES)  # first: the others see its val_loss
    return model.fit(X, Y, batch_size=16, epochs=epochs, verbose=0, initial_epoch=initial_epoch,
                     callbacks=[script, *callbacks])


def interrupted_and_resumed(tmp_path, make_callbacks, stop_after, checkpoint_first,
                            epochs=len(VAL_LOSSES)):
    """Train `stop_after` epochs with a checkpoint each epoch, then resume the loaded file."""
    path = tmp_path / "ckpt.safetensors"

    def with_checkpoint():
        callbacks, checkpoint = make_callbacks(), ModelCheckpoint(path)
        return [checkpoint, *callbacks] if checkpoint_first else [*callbacks, checkpoint]

    scripted_fit(dropout_model(), with_checkpoint(), epochs=stop_after)
    utils.set_seed(123)
    model = sj.load_model(path)
    history = scripted_fit(model, with_checkpoint(), epochs=epochs,
                           initial_epoch=model.completed_epochs)
    return model, history


@pytest.mark.parametrize("checkpoint_first", [False, True])
def test_early_stopping_resumed_stops_in_the_same_epoch(tmp_path, checkpoint_first):
    def callbacks():
        return [EarlyStopping(patience=2, restore_best_weights=True)]

    # best 0.8 at epoch 2 (from 1); epochs 3 and 4 do not beat it: stop at epoch 4
    straight = dropout_model()
    expected = scripted_fit(straight, callbacks(), epochs=len(VAL_LOSSES))
    assert expected.epoch == [0, 1, 2, 3]
    model, history = interrupted_and_resumed(tmp_path, callbacks, 3, checkpoint_first)
    assert history.epoch == [3]  # stopped where the uninterrupted run did
    assert_same_weights(model, straight)  # the best epoch's weights, restored from the file


@pytest.mark.parametrize("checkpoint_first", [False, True])
def test_reduce_lr_on_plateau_resumed_reduces_in_the_same_epochs(tmp_path, checkpoint_first):
    def callbacks():
        return [ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)]

    straight = dropout_model()
    expected = scripted_fit(straight, callbacks(), epochs=len(VAL_LOSSES))
    rates = expected.history["learning_rate"]
    # 0.9 and 0.85 after the best 0.8: reduced at the end of epoch 4 (from 1), the first of the
    # resumed run, which needs the wait counted before the pause; then a cooldown epoch
    assert rates == [0.01] * 4 + [0.005] * 4 + [0.0025] * 2
    model, history = interrupted_and_resumed(tmp_path, callbacks, 3, checkpoint_first)
    assert history.history["learning_rate"] == rates[3:]
    assert model.optimizer.learning_rate == straight.optimizer.learning_rate
    assert_same_weights(model, straight)


def test_model_checkpoint_keeps_its_best_across_a_resume(tmp_path):
    best = tmp_path / "best.safetensors"

    def callbacks():
        return [ModelCheckpoint(best, save_best_only=True)]

    # best 0.8 at epoch 2 (from 1); resumed after epoch 3, 0.85 and 0.95 must not overwrite it
    interrupted_and_resumed(tmp_path, callbacks, 3, checkpoint_first=False, epochs=5)
    assert json.loads(read_safetensors(best)[1]["training_state"])["epoch"] == 2


# ----- a file with a broken resume state ---------------------------------------------------------
def _checkpoint_with(tmp_path, change):
    path = tmp_path / "ckpt.safetensors"
    scripted_fit(dropout_model(), [EarlyStopping(patience=5, restore_best_weights=True),
                                   ModelCheckpoint(path)], epochs=2)
    tensors, metadata = read_safetensors(path)
    training = json.loads(metadata["training_state"])
    change(training, tensors)
    metadata["training_state"] = json.dumps(training)
    write_safetensors(path, tensors, metadata)
    return path


@pytest.mark.parametrize("change, problem", [
    (lambda t, _: t.update(batch=-1), "'batch' must be an int >= 0"),
    (lambda t, _: t.update(batch=2, epoch_rng_state={"state": 1}), "'epoch_rng_state' is not"),
    (lambda t, _: t.update(metrics={"loss": [1.0]}), "'metrics' must map names to"),
    (lambda t, tensors: tensors.pop("callbacks/EarlyStopping/best_weights/0"),
     "'EarlyStopping'.*best_weights.*does not hold"),
])
def test_a_broken_resume_state_is_refused_on_load(tmp_path, change, problem):
    path = _checkpoint_with(tmp_path, change)
    with pytest.raises(FileFormatError, match=rf"ckpt\.safetensors: training_state: .*{problem}"):
        sj.load_model(path)


def test_a_callback_state_that_does_not_fit_is_refused_on_resume(tmp_path):
    path = _checkpoint_with(tmp_path, lambda t, _: t["callbacks"]["EarlyStopping"].update(wait=-3))
    model = sj.load_model(path)
    with pytest.raises(FileFormatError, match=r"ckpt\.safetensors: training_state: callback "
                                              r"'EarlyStopping'.*'wait' must be an int >= 0"):
        scripted_fit(model, [EarlyStopping(patience=5)], epochs=4, initial_epoch=2)
