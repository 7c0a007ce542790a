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
from tests.callbacks.common import CountSteps, Interrupted, ScriptedLogs, regression_data


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
    """A checkpoint after epoch 2 of 10 with EarlyStopping's (best weights) and ModelCheckpoint's
    states, rewritten by change(training_state, tensors)."""
    path = tmp_path / "ckpt.safetensors"
    scripted_fit(dropout_model(), [EarlyStopping(patience=5, restore_best_weights=True),
                                   ModelCheckpoint(path)], epochs=2)
    return _rewrite(path, change)


def _mid_epoch_checkpoint_with(tmp_path, change):
    """A checkpoint after batch 4 of epoch 1 (of 6 batches), rewritten by change(...)."""
    path = tmp_path / "ckpt.safetensors"
    dropout_model().fit(X, Y, batch_size=8, epochs=1, verbose=0,
                        callbacks=[ModelCheckpoint(path, save_freq=4)])
    return _rewrite(path, change)


def _rewrite(path, change):
    tensors, metadata = read_safetensors(path)
    training = json.loads(metadata["training_state"])
    change(training, tensors)
    metadata["training_state"] = json.dumps(training)
    write_safetensors(path, tensors, metadata)
    return path


def _refused(path, problem, field="training_state", **kwargs):
    """load_model refuses the file: FileFormatError naming the file, the field and the problem."""
    with pytest.raises(FileFormatError, match=rf"ckpt\.safetensors: {field}: .*{problem}"):
        sj.load_model(path, **kwargs)


def _early_stopping(change):
    return lambda t, _: change(t["callbacks"]["EarlyStopping"])


def _best_weight(i, make):
    def change(_, tensors):
        name = f"callbacks/EarlyStopping/best_weights/{i}"
        tensors[name] = make(tensors[name])
    return change


BIG = 10**30


@pytest.mark.parametrize("change, problem", [
    (lambda t, _: t.update(batch=-1), "'batch' must be an int from 0"),
    (lambda t, _: t.update(batch=BIG), "'batch' must be an int from 0 to 2147483647"),
    (lambda t, _: t.update(epoch=BIG), "'epoch' must be an int from 0 to 2147483647"),
    (lambda t, _: t.update(batch=2, epoch_rng_state={"state": 1}), "'epoch_rng_state' is not"),
    (lambda t, _: t.update(metrics={"loss": [1.0]}), "'metrics' must map names to"),
    (lambda t, _: t.update(evil=1), r"unknown entries \['evil'\]"),
    (lambda t, tensors: tensors.pop("callbacks/EarlyStopping/best_weights/0"),
     "'EarlyStopping'.*best_weights.*does not hold"),
    (_early_stopping(lambda s: s.update(best=float("nan"))), "'EarlyStopping': 'best' is nan"),
    (_early_stopping(lambda s: s.update(best="0.5")), "'best' must be a number"),
    (_early_stopping(lambda s: s.update(best=10**400)), "'EarlyStopping': 'best' is 1000"),
    (_early_stopping(lambda s: s.update(best_epoch=10**40)), "'best_epoch' must be an int from"),
    (_early_stopping(lambda s: s.update(wait=-3)), "'wait' must be an int from 0"),
    (_early_stopping(lambda s: s.update(colour=1)), r"unknown fields \['colour'\]"),
    (_early_stopping(lambda s: s.pop("wait")), r"missing \['wait'\]"),
    (lambda t, _: t["callbacks"]["ModelCheckpoint"].update(batches_since_save=BIG),
     "'ModelCheckpoint': 'batches_since_save' must be an int from 0 to 2147483647"),
    (lambda t, _: t["callbacks"].update(Evil={"x": 1}), "callback 'Evil': no known callback"),
    (lambda t, _: t["callbacks"].update(EarlyStopping_01=t["callbacks"]["EarlyStopping"]),
     "callback 'EarlyStopping_01': no known callback"),
    (lambda t, tensors: tensors.update({"callbacks/Evil/x": np.ones(2, np.float32)}),
     r"\['callbacks/Evil/x'\] belong to no field"),
    (lambda t, tensors: tensors.update({"callbacks/EarlyStopping/best_weights/9":
                                        np.ones(2, np.float32)}),
     "best_weights/9'.*belong to no field"),
    (_early_stopping(lambda s: s.update(best_weights={"tensors": 2})),
     "'best_weights' holds 2 tensors, the model has 4 weights"),
], ids=["batch-negative", "batch-huge", "epoch-huge", "epoch-rng", "metrics-pair", "unknown-entry",
        "best-weights-missing", "best-nan", "best-string", "best-huge", "best-epoch-huge", "wait-negative",
        "unknown-field", "missing-field", "batches-since-save-huge", "unknown-callback",
        "odd-suffix", "stray-tensor", "extra-best-weight", "best-weights-count"])
def test_a_broken_resume_state_is_refused_on_load(tmp_path, change, problem):
    _refused(_checkpoint_with(tmp_path, change), problem)


@pytest.mark.parametrize("make, problem", [
    (lambda w: np.ones((w.shape[0] + 1, *w.shape[1:]), w.dtype),
     r"shape \(4, 8\), where the model's weight '.*kernel'"),
    (lambda w: np.full_like(w, np.nan), "NaN or infinite"),
    (lambda w: np.ones(w.shape, np.int32), "integer values"),
], ids=["shape", "nan", "int"])
def test_bad_best_weights_are_refused_on_load(tmp_path, make, problem):
    path = _checkpoint_with(tmp_path, _best_weight(0, make))
    field = r"(tensor|weight) 'callbacks/EarlyStopping/best_weights/0'"
    _refused(path, problem, field=field)
    if "NaN" in problem:  # the explicit opt-in loads them as they are, as for the weights
        sj.load_model(path, check_values=False)


def test_a_nan_best_loads_with_check_values_off(tmp_path):
    path = _checkpoint_with(tmp_path, _early_stopping(lambda s: s.update(best=float("nan"))))
    sj.load_model(path, check_values=False)


@pytest.mark.parametrize("change, problem", [
    (lambda m: m["loss"].__setitem__(1, -5), r"'metrics'\['loss'\]: the count must be"),
    (lambda m: m["loss"].__setitem__(1, 0), r"'metrics'\['loss'\]: a total of .* count of 0"),
    (lambda m: m["loss"].__setitem__(1, 2.5), "'loss' as .total, samples so far"),
    (lambda m: m["mae"].__setitem__(1, 10**400), r"'metrics'\['mae'\]: the count must be"),
    (lambda m: m["mae"].__setitem__(0, float("nan")), r"'metrics'\['mae'\]: the total is nan"),
    (lambda m: m.pop("loss"), "'metrics' must hold 'loss'"),
], ids=["count-negative", "count-zero", "count-fraction", "count-huge", "total-nan",
                                 "no-loss"])
def test_bad_metric_totals_are_refused_on_load(tmp_path, change, problem):
    path = _mid_epoch_checkpoint_with(tmp_path, lambda t, _: change(t["metrics"]))
    _refused(path, problem)


@pytest.mark.parametrize("change, problem", [
    (lambda m: m.update(evil=[1.0, 8.0]),
     r"\['evil', 'loss', 'mae'\], but the model's metrics are \['loss', 'mae'\]"),
    (lambda m: m.pop("mae"), r"totals of \['loss'\], but the model's metrics are"),
], ids=["unknown", "missing"])
def test_metric_names_must_be_the_models_once_resolved(tmp_path, change, problem):
    path = _mid_epoch_checkpoint_with(tmp_path, lambda t, _: change(t["metrics"]))
    model = sj.load_model(path)
    with pytest.raises(FileFormatError, match=rf"ckpt\.safetensors: training_state: .*{problem}"):
        model.fit(X, Y, initial_epoch=model.completed_epochs, **FIT)


class KeepsCount(Callback):
    """A callback of the user's own with a state: {"seen": int}."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def on_epoch_end(self, epoch, logs=None):
        self.seen += 1

    def get_state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        from shenjing.callbacks import state_fields

        self.seen = state_fields.count(state, "seen")


def test_a_custom_callback_state_loads_through_custom_objects(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    scripted_fit(dropout_model(), [KeepsCount(), ModelCheckpoint(path)], epochs=2)
    _refused(path, "callback 'KeepsCount': no known callback .* custom_objects")
    model, mine = sj.load_model(path, custom_objects={"KeepsCount": KeepsCount}), KeepsCount()
    scripted_fit(model, [mine], epochs=3, initial_epoch=model.completed_epochs)
    assert mine.seen == 3  # 2 before the pause, 1 after


def test_a_custom_callback_state_that_does_not_fit_is_refused_on_resume(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    scripted_fit(dropout_model(), [KeepsCount(), ModelCheckpoint(path)], epochs=2)
    path = _rewrite(path, lambda t, _: t["callbacks"]["KeepsCount"].update(seen=-3))
    model = sj.load_model(path, custom_objects={"KeepsCount": KeepsCount})
    with pytest.raises(FileFormatError, match=r"ckpt\.safetensors: training_state: callback "
                                              r"'KeepsCount'.*'seen' must be an int from 0"):
        scripted_fit(model, [KeepsCount()], epochs=4, initial_epoch=2)
