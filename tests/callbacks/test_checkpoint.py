"""ModelCheckpoint with real model.save / save_weights: when it writes, and what."""

import os
import re

import numpy as np
import pytest

from shenjing.callbacks import ModelCheckpoint
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.io import read_safetensors
from shenjing.saving import load_model
from tests.callbacks.common import ScriptedLogs, dense_model, regression_data

VAL_LOSSES = [1.0, 0.7, 0.9, 0.6, 0.65]  # improvements at epochs 0, 1 and 3


def fit_with(checkpoint, epochs=5, batch_size=32):
    x, y = regression_data()
    model = dense_model()
    script = ScriptedLogs("val_loss", VAL_LOSSES)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=[script, checkpoint])
    return model, script


def test_save_best_only_writes_on_improvement_only(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.safetensors"),
                                 save_best_only=True)
    _, script = fit_with(checkpoint)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01-1.00.safetensors", "ckpt-02-0.70.safetensors",
                                            "ckpt-04-0.60.safetensors"]
    best = load_model(tmp_path / "ckpt-04-0.60.safetensors")
    for loaded, expected in zip(best.get_weights(), script.weights[3]):
        np.testing.assert_array_equal(loaded, expected)
    assert checkpoint.best == 0.6


def test_one_file_overwritten_by_each_better_model(tmp_path, capsys):
    path = tmp_path / "sub" / "best.safetensors"  # the missing folder is made
    checkpoint = ModelCheckpoint(path, save_best_only=True, save_weights_only=True, verbose=1)
    model, script = fit_with(checkpoint)
    assert os.listdir(tmp_path / "sub") == ["best.safetensors"]
    tensors, _ = read_safetensors(path)
    assert len(tensors) == len(model.weights)
    for variable, expected in zip(model.weights, script.weights[3]):
        np.testing.assert_array_equal(tensors[variable.name], expected)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Epoch 1: val_loss improved from None to 1.00000, saving model to {path}"
    assert out[2] == "Epoch 3: val_loss did not improve from 0.70000"
    assert len(out) == 5


def test_every_epoch_and_every_n_batches(tmp_path):
    fit_with(ModelCheckpoint(tmp_path / "e{epoch}.safetensors"), epochs=3)
    assert sorted(os.listdir(tmp_path)) == ["e1.safetensors", "e2.safetensors", "e3.safetensors"]
    saved = []
    checkpoint = ModelCheckpoint(tmp_path / "b.safetensors", save_freq=3)
    checkpoint.set_model(type("M", (), {"save": lambda self, p: saved.append(p)})())
    # 64 samples in batches of 16: 4 batches an epoch, 12 in 3 epochs -> every third batch
    for epoch in range(3):
        checkpoint.on_epoch_begin(epoch)
        for batch in range(4):
            checkpoint.on_train_batch_end(batch, {"loss": 1.0})
        checkpoint.on_epoch_end(epoch, {"loss": 1.0})
    assert len(saved) == 4


def test_batch_frequency_names_the_batch(tmp_path):
    x, y = regression_data()
    model = dense_model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0,
              callbacks=[ModelCheckpoint(tmp_path / "{epoch}-{batch}.safetensors", save_freq=2)])
    assert sorted(os.listdir(tmp_path)) == ["1-2.safetensors", "1-4.safetensors",
                                            "2-2.safetensors", "2-4.safetensors"]


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="save_freq must be 'epoch' or a positive number of "
                                         "batches, got 0"):
        ModelCheckpoint(tmp_path / "m.safetensors", save_freq=0)
    with pytest.raises(ArgumentError, match=r"names \{val_acc\}, which no log entry .* fills"):
        fit_with(ModelCheckpoint(tmp_path / "m-{val_acc}.safetensors"), epochs=1)
    (tmp_path / "folder.safetensors").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fit_with(ModelCheckpoint(tmp_path / "folder.safetensors"), epochs=1)
    with pytest.warns(UserWarning, match="'val_accuracy', which is not in the logs"):
        fit_with(ModelCheckpoint(tmp_path / "m.safetensors", monitor="val_accuracy",
                                 save_best_only=True), epochs=1)
    assert (tmp_path / "m.safetensors").exists()  # saved anyway, as Keras does


@pytest.mark.parametrize("name, weights_only", [
    (name, weights_only) for name in ("m.keras", "m.h5", "m.weights.h5", "ckpt-{epoch}", "m.bin")
    for weights_only in (False, True)
    # Keras's own files are taken when they match what is saved (test_checkpoint_keras_files)
    if (name, weights_only) not in (("m.keras", False), ("m.weights.h5", True))])
def test_a_foreign_extension_fails_at_construction(tmp_path, name, weights_only):
    with pytest.raises(ArgumentError, match=r"ModelCheckpoint: invalid filepath extension.*"
                       r"`\.safetensors` or `\.shenjing`.*Received: filepath=.*" + name[-6:]):
        ModelCheckpoint(tmp_path / name, save_weights_only=weights_only)
    with pytest.raises(ArgumentError, match="ModelCheckpoint: invalid filepath extension"):
        ModelCheckpoint(tmp_path)  # a folder has no extension of ours either
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, problem", [
    ("ck_{epoch:q}.safetensors", "the field {epoch:q} cannot format an int"),
    ("ck_{loss:d}.safetensors", "the field {loss:d} cannot format a float"),
    ("ck_{}.safetensors", "has the field {}"),
    ("ck_{0}.safetensors", "has the field {0}"),
    ("ck_{epoch.real}.safetensors", "has the field {epoch.real}"),
    ("ck_{epoch.safetensors", "is not a valid format string"),
    ("ck_{batch}.safetensors", "names {batch}, which only save_freq=N"),
])
def test_filepath_format_fields_are_checked_at_construction(tmp_path, name, problem):
    with pytest.raises(ArgumentError, match="ModelCheckpoint: filepath .*" + re.escape(problem)):
        ModelCheckpoint(tmp_path / name)


def test_a_field_no_log_fills_is_refused_before_the_first_batch(tmp_path):
    # {bogus} could be a custom metric's name until the model is known: fit refuses it at
    # on_train_begin, before any work, instead of Keras's KeyError at the first save
    model, (x, y) = dense_model(), regression_data()
    before = model.get_weights()
    with pytest.raises(ArgumentError, match=r"names \{bogus\}, which no log entry"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[ModelCheckpoint(tmp_path / "ck_{bogus}.safetensors")])
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    model.compile("sgd", "mse", metrics=["mae"])  # a compiled metric's log names are fields
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25, callbacks=[ModelCheckpoint(
        tmp_path / "ck_{epoch:02d}_{val_mae:.3f}_{loss:.2f}.safetensors")])
    assert len(os.listdir(tmp_path)) == 1


@pytest.mark.parametrize("kwargs, error, argument", [
    ({"save_freq": 0}, ArgumentError, "save_freq"),
    ({"save_freq": 2.5}, ArgumentTypeError, "save_freq"),
    ({"save_freq": "batch"}, ArgumentError, "save_freq"),
    ({"save_best_only": "yes"}, ArgumentTypeError, "save_best_only"),
    ({"save_weights_only": 1}, ArgumentTypeError, "save_weights_only"),
    ({"verbose": 5}, ArgumentError, "verbose"),
    ({"monitor": 3}, ArgumentTypeError, "monitor"),
])
def test_constructor_arguments_are_refused_naming_them(tmp_path, kwargs, error, argument):
    with pytest.raises(error, match=f"ModelCheckpoint: {argument}"):
        ModelCheckpoint(tmp_path / "m.safetensors", **kwargs)


def test_a_val_field_without_validation_data_is_our_error_and_a_key_error(tmp_path):
    """Keras raises KeyError at save time; ours is an ArgumentError too, naming the filepath."""
    import shenjing as sj

    model = sj.Sequential([sj.layers.Input((3,)), sj.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    checkpoint = sj.callbacks.ModelCheckpoint(str(tmp_path / "ck_{val_loss:.2f}.safetensors"))
    with pytest.raises(ArgumentError, match=r"ck_\{val_loss:.2f\}.*'val_loss'.*validation") as e:
        model.fit(np.ones((4, 3)), np.ones((4, 1)), epochs=1, verbose=0, callbacks=[checkpoint])
    assert isinstance(e.value, KeyError)
