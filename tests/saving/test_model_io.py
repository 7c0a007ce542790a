"""save / load_model: exact round trips, atomic writes, and refusal of unsafe or broken files."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.io import FileFormatError, read_safetensors, write_safetensors


def cnn():
    return sj.Sequential([
        layers.Input((12, 12, 2)), layers.Conv2D(4, 3, padding="same"),
        layers.BatchNormalization(), layers.Activation("relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.1), layers.Dense(3, activation="softmax"),
    ], name="small")


def functional():
    inputs = layers.Input((6,))
    h = layers.Dense(6, activation="relu", kernel_regularizer=sj.regularizers.L2(1e-3))(inputs)
    h = layers.Add()([h, inputs])
    return sj.Model(inputs, [layers.Dense(2)(h), layers.Dense(1, activation="sigmoid")(h)])


@pytest.mark.parametrize("make", [cnn, functional], ids=["sequential", "functional"])
def test_round_trip_predictions_are_bit_identical(make, tmp_path, rng):
    model = make()
    x = rng.standard_normal((5, *model.input_shape[1:])).astype(np.float32)
    for w in model.weights:  # non-default moving statistics too
        w.assign(rng.standard_normal(w.shape).astype(np.float32) * 0.1 + (w.name.endswith("variance")))
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = sj.load_model(path)
    assert type(loaded) is type(model) and loaded.count_params() == model.count_params()
    expected, got = model.predict(x), loaded.predict(x)
    for p, q in zip(expected if isinstance(expected, list) else [expected],
                    got if isinstance(got, list) else [got]):
        np.testing.assert_array_equal(p, q)
    assert [w.name for w in loaded.weights] == [w.name for w in model.weights]


def test_file_is_plain_safetensors_with_a_json_config(tmp_path):
    model = cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.save(tmp_path / "m.safetensors")
    tensors, metadata = read_safetensors(tmp_path / "m.safetensors")
    config = json.loads(metadata["shenjing_config"])
    assert config["class_name"] == "Sequential"
    assert {w.name for w in model.weights} <= set(tensors)
    assert tensors["optimizer/iterations"] == 0  # the optimizer state travels too
    safetensors = pytest.importorskip("safetensors.numpy")
    loaded = safetensors.load_file(str(tmp_path / "m.safetensors"))
    assert set(loaded) == set(tensors)


def test_weights_only_round_trip(tmp_path, rng):
    source, target = cnn(), cnn()
    source.save_weights(tmp_path / "w.safetensors")
    target.load_weights(tmp_path / "w.safetensors")
    x = rng.standard_normal((3, 12, 12, 2)).astype(np.float32)
    np.testing.assert_array_equal(target.predict(x), source.predict(x))
    with pytest.raises(FileFormatError, match="names do not fit the model"):
        functional().load_weights(tmp_path / "w.safetensors")


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(FileFormatError, match="pickle"):
        sj.load_model(path)
    assert not marker.exists()


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    cnn().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError):
        sj.load_model(path)


def test_unregistered_class_in_config_is_refused(tmp_path):
    model = cnn()
    path = tmp_path / "m.safetensors"
    model.save(path)
    tensors, metadata = read_safetensors(path)
    config = json.loads(metadata["shenjing_config"])
    config["config"]["layers"][1]["class_name"] = "os.system"
    metadata["shenjing_config"] = json.dumps(config)
    write_safetensors(path, tensors, metadata)
    with pytest.raises(ValueError, match="'os.system' that is not registered"):
        sj.load_model(path)


def test_custom_layer_loads_only_when_registered(tmp_path):
    class Scale(layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, inputs):
            return inputs * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = sj.Sequential([layers.Input((3,)), Scale(3.0), layers.Dense(2)])
    model.save(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="'Scale' that is not registered"):
        sj.load_model(tmp_path / "c.safetensors")
    loaded = sj.load_model(tmp_path / "c.safetensors", custom_objects={"Scale": Scale})
    x = np.ones((1, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


KILLED_SAVE = r"""
import contextlib, sys, time
import shenjing as sj
import shenjing.io.safetensors as st
from shenjing import layers

class SlowFile:  # a slow disk, so that the kill lands in the middle of the write
    def __init__(self, f):
        self.f = f
    def write(self, data):
        view = memoryview(data).cast("B")
        for start in range(0, len(view), 1 << 16):
            self.f.write(view[start:start + (1 << 16)])
            self.f.flush()
            time.sleep(0.005)

real_open = st.atomic_open
@contextlib.contextmanager
def slow_open(path, mode="wb"):
    with real_open(path, mode) as f:
        yield SlowFile(f)
st.atomic_open = slow_open

model = sj.Sequential([layers.Input((1000,)), layers.Dense(1000), layers.Dense(1)])
print("saving", flush=True)
model.save(sys.argv[1])
"""


def test_killed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "model.safetensors"
    old = cnn()
    old.save(path)
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 2)).astype(np.float32)
    expected = old.predict(x)
    before = set(os.listdir(tmp_path))
    process = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)],
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"saving"
        deadline = time.time() + 20
        while time.time() < deadline:  # wait until the temporary file has data in it
            temps = [n for n in os.listdir(tmp_path) if n not in before]
            if temps and os.path.getsize(tmp_path / temps[0]) > 1 << 20:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the save never started writing")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    np.testing.assert_array_equal(sj.load_model(path).predict(x), expected)
