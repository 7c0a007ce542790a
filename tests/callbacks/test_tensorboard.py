"""TensorBoard: the event files hold History's values under Keras 3's tags and folders, read
back with an independent reader (the TFRecord framing parsed here, the protobuf Event messages
with tensorboardX's bundled classes; and TensorBoard's own EventAccumulator where installed)."""

import glob
import os
import struct
import sys

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, optimizers, utils
from shenjing.callbacks import ReduceLROnPlateau, TensorBoard
from shenjing.errors import ArgumentError
from tests.callbacks.common import regression_data

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")


def read_events(folder):
    """Every Event in the folder's event files: TFRecords (length, its CRC, data, data CRC)."""
    events = []
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        data = open(path, "rb").read()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            events.append(event_pb2.Event.FromString(data[at + 12:at + 12 + length]))
            at += 12 + length + 4
    return events


def scalars(folder):
    """{tag: [(step, value), ...]} of the simple values."""
    out = {}
    for event in read_events(folder):
        for value in event.summary.value:
            if value.WhichOneof("value") == "simple_value":
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def histograms(folder):
    out = {}
    for event in read_events(folder):
        for value in event.summary.value:
            if value.WhichOneof("value") == "histo":
                out.setdefault(value.tag, []).append((event.step, value.histo))
    return out


def make_model():
    utils.set_seed(0)
    model = sj.Sequential([layers.Input((3,)), layers.Dense(4, activation="tanh", name="hidden"),
                           layers.Dense(1, name="out")])
    model.compile(optimizer=optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


X, Y = regression_data(n=40)


def fit(tmp_path, epochs=3, **kwargs):
    model = make_model()
    history = model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0,
                        validation_data=(X[:16], Y[:16]),
                        callbacks=[TensorBoard(tmp_path / "logs", **kwargs)])
    return model, history


def test_epoch_scalars_equal_the_history(tmp_path):
    _, history = fit(tmp_path)
    train, validation = (scalars(tmp_path / "logs" / k) for k in ("train", "validation"))
    for name in ("loss", "mae"):
        assert [s for s, _ in train[f"epoch_{name}"]] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in train[f"epoch_{name}"]],
                                   history.history[name], rtol=1e-6)  # float32 in the file
        np.testing.assert_allclose([v for _, v in validation[f"epoch_{name}"]],
                                   history.history["val_" + name], rtol=1e-6)
    np.testing.assert_allclose([v for _, v in train["epoch_learning_rate"]], [0.05] * 3,
                               rtol=1e-6)
    assert not any(tag.startswith(("batch_", "epoch_val_")) for tag in train)
    assert set(validation) == {"epoch_loss", "epoch_mae"}


def test_learning_rate_follows_the_optimizer(tmp_path):
    model = make_model()
    model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[
        ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=100.0),
        TensorBoard(tmp_path / "logs")])
    lrs = [v for _, v in scalars(tmp_path / "logs" / "train")["epoch_learning_rate"]]
    # the first epoch sets the best loss, the next two halve the rate before it is written
    np.testing.assert_allclose(lrs, [0.05, 0.025, 0.0125], rtol=1e-6)


@pytest.mark.parametrize("update_freq, steps", [("batch", list(range(1, 16))),
                                                (2, list(range(2, 16, 2)))])
def test_batch_scalars(tmp_path, update_freq, steps):
    fit(tmp_path, update_freq=update_freq, write_steps_per_second=True)
    train = scalars(tmp_path / "logs" / "train")
    assert [s for s, _ in train["batch_loss"]] == steps  # 5 batches an epoch, counted over fit
    assert [s for s, _ in train["batch_steps_per_second"]] == steps
    assert all(v > 0 for _, v in train["epoch_steps_per_second"])


def test_weight_histograms_every_histogram_freq_epochs(tmp_path):
    model, _ = fit(tmp_path, histogram_freq=2, write_images=True)
    found = histograms(tmp_path / "logs" / "train")
    assert set(found) == {f"{w.name}/histogram" for w in model.weights}
    kernel = found["out/kernel/histogram"]
    assert [s for s, _ in kernel] == [0, 2]
    last = kernel[-1][1]  # written after epoch 3, the final weights
    w = model.get_weights()[2]
    assert last.num == w.size
    np.testing.assert_allclose([last.min, last.max, last.sum], [w.min(), w.max(), w.sum()],
                               rtol=1e-5)
    images = {v.tag for e in read_events(tmp_path / "logs" / "train") for v in e.summary.value
              if v.WhichOneof("value") == "image"}
    # out/bias (1,) squeezes to a single number: no image, as in Keras
    assert images == {f"{w.name}/image" for w in model.weights} - {"out/bias/image"}


def test_model_config_text_and_evaluate(tmp_path):
    model, _ = fit(tmp_path, epochs=1)
    tags = {v.tag for e in read_events(tmp_path / "logs" / "train") for v in e.summary.value}
    assert any(tag.startswith("keras") for tag in tags)
    loss = model.evaluate(X, Y, verbose=0, callbacks=[TensorBoard(tmp_path / "eval")])
    values = scalars(tmp_path / "eval" / "validation")
    assert values["evaluation_loss_vs_iterations"][0][0] == model.optimizer.iterations == 5
    np.testing.assert_allclose(values["evaluation_loss_vs_iterations"][0][1], np.ravel(loss)[0],
                               rtol=1e-6)


def test_tensorboards_own_reader_sees_the_same(tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    _, history = fit(tmp_path, histogram_freq=1)
    reader = accumulator.EventAccumulator(str(tmp_path / "logs" / "train"),
                                          size_guidance={"scalars": 0, "histograms": 0})
    reader.Reload()
    assert "epoch_loss" in reader.Tags()["scalars"]
    np.testing.assert_allclose([e.value for e in reader.Scalars("epoch_loss")],
                               history.history["loss"], rtol=1e-6)
    assert [e.step for e in reader.Histograms("hidden/kernel/histogram")] == [0, 1, 2]


@pytest.mark.parametrize("kwargs, match", [
    ({"profile_batch": 2}, "profile_batch"), ({"embeddings_freq": 1}, "embeddings_freq"),
    ({"embeddings_metadata": {"e": "m.tsv"}}, "embeddings"), ({"update_freq": 0}, "update_freq"),
    ({"update_freq": "step"}, "update_freq"), ({"histogram_freq": -1}, "histogram_freq"),
    ({"log_dir": ""}, "log_dir"),
])
def test_unsupported_and_bad_arguments_are_refused(kwargs, match):
    with pytest.raises((ArgumentError, TypeError), match=match):
        TensorBoard(**kwargs)


def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"shenjing\[tensorboard\]"):
        TensorBoard()
