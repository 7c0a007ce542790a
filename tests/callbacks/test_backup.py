"""BackupAndRestore: a fit interrupted by an exception, run again with the same callback,
goes on from the last backup and ends with the weights of the uninterrupted fit, bit for bit
(the same operations on the same values in the same order: see test_resume.py)."""

import os

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, optimizers, utils
from shenjing.callbacks import BackupAndRestore, EarlyStopping
from shenjing.errors import ArgumentError
from shenjing.io import FileFormatError
from tests.callbacks.common import CountSteps, Interrupted, regression_data


def make_model(seed=0, optimizer=None):
    utils.set_seed(seed)
    model = sj.Sequential([layers.Input((3,)), layers.Dense(8, activation="tanh"),
                           layers.Dropout(0.3), layers.Dense(1)])
    model.compile(optimizer=optimizer or optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    return model


X, Y = regression_data(n=44)  # batches of 8: 6 an epoch
FIT = {"batch_size": 8, "epochs": 4, "verbose": 0}


def assert_same_weights(a, b):
    for p, q in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(p, q)  # the same operations in the same order


def straight_run(**fit):
    model = make_model()
    history = model.fit(X, Y, **{**FIT, **fit})
    return model, history


@pytest.mark.parametrize("stop_before", [15, 19, 24])  # in epoch 3; at its first batch; last
def test_an_interrupted_fit_resumes_from_the_last_epoch_backup(tmp_path, stop_before):
    straight, expected = straight_run()
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        make_model().fit(X, Y, callbacks=[CountSteps(stop_before), BackupAndRestore(backup)], **FIT)
    assert os.listdir(backup) == ["latest.shenjing"]
    # a new process: another random state, the model made again (its layers named anew)
    sj.layers.Dense(2)
    model = make_model(seed=99)
    history = model.fit(X, Y, callbacks=[BackupAndRestore(backup)], **FIT)
    done = (stop_before - 1) // 6  # epochs completed before the interruption
    assert history.epoch == list(range(done, 4))
    assert history.history["loss"] == expected.history["loss"][done:]
    assert model.optimizer.iterations == straight.optimizer.iterations == 24
    assert_same_weights(model, straight)
    assert not backup.exists()  # delete_checkpoint: a fit that ended normally


def test_batch_backups_resume_at_the_next_batch(tmp_path):
    straight, _ = straight_run()
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):  # backups after batches 5, 10, 15; dies before batch 17
        make_model().fit(X, Y, callbacks=[CountSteps(17), BackupAndRestore(backup, save_freq=5)],
                         **FIT)
    model = make_model(seed=5)
    counter = CountSteps()
    model.fit(X, Y, callbacks=[counter, BackupAndRestore(backup, save_freq=5)], **FIT)
    assert counter.steps == 24 - 15
    assert_same_weights(model, straight)


def test_other_callbacks_states_come_back(tmp_path):
    early = {"monitor": "loss", "patience": 1, "min_delta": 10.0}  # stops after 2 epochs
    straight = make_model()
    expected = straight.fit(X, Y, callbacks=[EarlyStopping(**early)], **FIT)
    assert len(expected.epoch) == 2
    backup = tmp_path / "b"
    with pytest.raises(Interrupted):
        make_model().fit(X, Y, callbacks=[CountSteps(8), EarlyStopping(**early),
                                          BackupAndRestore(backup)], **FIT)
    model = make_model(seed=3)
    history = model.fit(X, Y, callbacks=[EarlyStopping(**early), BackupAndRestore(backup)],
                        **FIT)
    assert history.epoch == [1]  # the waiting count came back: it stops in the same epoch
    assert_same_weights(model, straight)


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path):
    straight, _ = straight_run()
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        make_model().fit(X, Y, callbacks=[CountSteps(20), BackupAndRestore(
            backup, double_checkpoint=True)], **FIT)
    assert sorted(os.listdir(backup)) == ["latest.shenjing", "previous.shenjing"]
    (backup / "latest.shenjing").write_bytes(b"torn write")
    model = make_model(seed=4)
    history = model.fit(X, Y, callbacks=[BackupAndRestore(backup, double_checkpoint=True)],
                        **FIT)
    assert history.epoch == [2, 3]  # from the backup after epoch 2
    assert_same_weights(model, straight)


def test_an_unreadable_backup_is_an_error_without_double_checkpoint(tmp_path):
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "latest.shenjing").write_bytes(b"torn write")
    with pytest.raises(FileFormatError):
        make_model().fit(X, Y, callbacks=[BackupAndRestore(backup)], **FIT)


def test_no_backup_starts_afresh_and_delete_checkpoint_false_keeps_it(tmp_path):
    straight, _ = straight_run(epochs=2)
    backup = tmp_path / "backup"
    model = make_model()
    model.fit(X, Y, callbacks=[BackupAndRestore(backup, delete_checkpoint=False)],
              **{**FIT, "epochs": 2})
    assert_same_weights(model, straight)
    assert os.listdir(backup) == ["latest.shenjing"]
    assert sj.load_model(backup / "latest.shenjing").completed_epochs == 2


def test_a_backup_of_another_model_is_refused(tmp_path):
    backup = tmp_path / "backup"
    with pytest.raises(Interrupted):
        make_model().fit(X, Y, callbacks=[CountSteps(8), BackupAndRestore(backup)], **FIT)
    other = sj.Sequential([layers.Input((3,)), layers.Dense(4), layers.Dense(1)])
    other.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    with pytest.raises(FileFormatError, match="same architecture"):
        other.fit(X, Y, callbacks=[BackupAndRestore(backup)], **FIT)
    sgd = make_model(optimizer=optimizers.SGD(0.1))
    with pytest.raises(FileFormatError, match="Adam"):
        sgd.fit(X, Y, callbacks=[BackupAndRestore(backup)], **FIT)


@pytest.mark.parametrize("kwargs, kind, match", [
    ({"backup_dir": ""}, ArgumentError, "backup_dir"),
    ({"backup_dir": None}, ArgumentError, "backup_dir"),
    ({"backup_dir": "b", "save_freq": 0}, ArgumentError, "save_freq"),
    ({"backup_dir": "b", "save_freq": "batch"}, TypeError, "save_freq"),
    ({"backup_dir": "b", "double_checkpoint": "yes"}, TypeError, "double_checkpoint"),
])
def test_bad_arguments(kwargs, kind, match):
    with pytest.raises(kind, match=match):
        BackupAndRestore(**kwargs)
