"""Keras 3 (torch backend) as the oracle: the same scripted logs through its callbacks and ours
must give the same decisions (stop epoch, restored epoch, learning rates, saved files, CSV) and
the same progress-bar text."""

import io
import itertools
import re
import types

import numpy as np
import pytest

from shenjing import callbacks, progbar
from tests.callbacks.common import FakeModel, drive
from tests.keras_oracle import import_keras

keras = import_keras()
keras_progbar = pytest.importorskip("keras.src.utils.progbar")
CASES = 40


def random_losses(rng, n):
    # one decimal: equal values happen, and steps of 0.1 straddle min_delta 0.05 and 0.1
    return [{"loss": 1.0, "val_loss": float(v)} for v in np.round(rng.uniform(0, 1, n), 1)]


def test_early_stopping(rng):
    for _ in range(CASES):
        config = {
            "patience": int(rng.integers(0, 4)), "min_delta": float(rng.choice([0, 0.05, 0.1])),
            "mode": str(rng.choice(["min", "max", "auto"])),
            "baseline": rng.choice([None, 0.3, 0.7]),
            "restore_best_weights": bool(rng.integers(2)),
            "start_from_epoch": int(rng.integers(0, 3)),
        }
        logs = random_losses(rng, int(rng.integers(3, 11)))
        ours, theirs = callbacks.EarlyStopping(**config), keras.callbacks.EarlyStopping(**config)
        ours_model, their_model = FakeModel(), FakeModel()
        assert len(drive(ours, ours_model, logs)) == len(drive(theirs, their_model, logs)), config
        assert (ours.stopped_epoch, ours.best_epoch, ours.best, ours.wait) == \
            (theirs.stopped_epoch, theirs.best_epoch, theirs.best, theirs.wait), (config, logs)
        assert ours_model.restored == their_model.restored


def test_reduce_lr_on_plateau(rng):
    for _ in range(CASES):
        config = {
            "factor": float(rng.choice([0.1, 0.5])), "patience": int(rng.integers(0, 4)),
            "cooldown": int(rng.integers(0, 3)), "min_delta": float(rng.choice([0, 1e-4, 0.05])),
            "min_lr": float(rng.choice([0.0, 0.01])),
            "mode": str(rng.choice(["min", "max", "auto"])),
        }
        logs = random_losses(rng, 10)
        ours, theirs = callbacks.ReduceLROnPlateau(**config), keras.callbacks.ReduceLROnPlateau(
            **config)
        ours_model, their_model = FakeModel(0.1), FakeModel(0.1)
        ours_logs, their_logs = drive(ours, ours_model, logs), drive(theirs, their_model, logs)
        assert [entry["learning_rate"] for entry in ours_logs] == \
            [entry["learning_rate"] for entry in their_logs], (config, logs)
        assert ours_model.optimizer.learning_rate == their_model.optimizer.learning_rate


def test_model_checkpoint_decisions(rng):
    for _ in range(CASES):
        config = {
            "save_best_only": bool(rng.integers(2)), "save_weights_only": bool(rng.integers(2)),
            "mode": str(rng.choice(["min", "max", "auto"])),
            "initial_value_threshold": rng.choice([None, 0.5]),
        }
        # each library's own format: Keras refuses any other name, and so do we
        path = "m-{epoch:02d}-{val_loss:.2f}"
        theirs = path + (".weights.h5" if config["save_weights_only"] else ".keras")
        logs = random_losses(rng, 6)
        ours_model, their_model = FakeModel(), FakeModel()
        drive(callbacks.ModelCheckpoint(path + ".safetensors", **config), ours_model, logs)
        drive(keras.callbacks.ModelCheckpoint(theirs, **config), their_model, logs)
        keras_names = [(kind, re.sub(r"(\.weights\.h5|\.keras)$", ".safetensors", name))
                       for kind, name in their_model.saved]
        assert ours_model.saved == keras_names, (config, logs)


@pytest.mark.parametrize("with_val", [True, False])
def test_csv_logger(tmp_path, with_val):
    logs = [{"loss": 0.5 / (e + 1), "accuracy": 0.25 * e, "val_loss": 0.125}
            for e in range(3)]
    logs = logs if with_val else [{k: v for k, v in entry.items() if k != "val_loss"}
                                  for entry in logs]
    for make, name in [(callbacks.CSVLogger, "ours.csv"), (keras.callbacks.CSVLogger, "k.csv")]:
        drive(make(tmp_path / name, separator=";"), FakeModel(), logs)
    assert (tmp_path / "ours.csv").read_text().splitlines() == \
        (tmp_path / "k.csv").read_text().splitlines()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def bar_frames(make_bar, monkeypatch, verbose, steps, step_time, values):
    """Run a bar under a fake clock; the frames it printed, without colours and backspaces."""
    clock = types.SimpleNamespace(now=50.0)
    fake_time = types.SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(progbar, "time", fake_time)
    monkeypatch.setattr(keras_progbar, "time", fake_time)
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    bar = make_bar(steps, verbose=verbose, stateful_metrics=["acc"])
    for step in range(1, steps + 1):
        clock.now += step_time
        bar.update(step, values(step), finalize=False)
    bar.update(steps, values(steps), finalize=True)
    monkeypatch.undo()
    return re.sub(r"\x1b\[[0-9;]*m|\x08", "", terminal.getvalue()).split("\r")


@pytest.mark.parametrize("verbose, steps, step_time", list(itertools.product(
    [1, 2], [1, 7, 120], [0.01, 0.0004, 0.9, 2.5, 70.0])))
def test_progbar_text(monkeypatch, verbose, steps, step_time):
    monkeypatch.setattr(progbar.shutil, "get_terminal_size", lambda: types.SimpleNamespace(
        columns=500))

    def values(step):
        return [("loss", 1.0 / step), ("acc", step / steps), ("tiny", 1e-5 * step)]

    ours = bar_frames(progbar.Progbar, monkeypatch, verbose, steps, step_time, values)
    theirs = bar_frames(keras_progbar.Progbar, monkeypatch, verbose, steps, step_time, values)
    assert ours == theirs
