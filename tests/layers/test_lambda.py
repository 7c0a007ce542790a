"""Lambda: in-memory use, shape inference on symbolic inputs, masks, a training step against
Keras 3, and saving by function name only (loading needs custom_objects)."""

import functools
import json

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, ops
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.io import FileFormatError, read_safetensors
from tests.keras_oracle import import_keras
from tests.layers.keras_models import compare_sgd_step, copy_weights


def scaled_square(x, factor=1.0):
    return ops.mul(ops.mul(x, x), factor)


def flatten_time(x):
    return ops.reshape(x, (x.shape[0], -1))


def test_eager_call_applies_the_function_with_arguments(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    layer = layers.Lambda(scaled_square, arguments={"factor": 3.0})
    np.testing.assert_allclose(layer(x).numpy(), 3.0 * x * x, rtol=1e-6)
    assert layer.count_params() == 0


def test_symbolic_shapes_are_inferred_or_given():
    x = layers.Input((3, 4))
    assert layers.Lambda(flatten_time)(x).shape == (None, 12)
    steps = layers.Input((None, 4))  # an unknown axis stays unknown
    assert layers.Lambda(lambda t: ops.mul(t, 2.0))(steps).shape == (None, None, 4)
    assert layers.Lambda(lambda t: ops.mean(t, axis=1))(steps).shape == (None, 4)
    assert layers.Lambda(flatten_time, output_shape=(12,))(x).shape == (None, 12)
    assert layers.Lambda(flatten_time, output_shape=lambda s: (s[0], 12))(x).shape == (None, 12)
    a, b = layers.Input((3,)), layers.Input((3,))
    pair = layers.Lambda(lambda ts: [ops.add(ts[0], ts[1]), ops.sub(ts[0], ts[1])])([a, b])
    assert [t.shape for t in pair] == [(None, 3), (None, 3)]


def test_function_gets_mask_and_training_and_gives_a_mask(rng):
    seen = {}

    def record(x, mask=None, training=None):
        seen.update(mask=mask, training=training)
        return ops.mul(x, 1.0)

    x = sj.Tensor(rng.standard_normal((2, 3, 4)).astype(np.float32))
    mask = x._keras_mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    out = layers.Lambda(record, mask=lambda inputs, mask: mask[:, :2])(x, training=True)
    assert seen["training"] is True
    np.testing.assert_array_equal(seen["mask"], mask)
    np.testing.assert_array_equal(out._keras_mask, mask[:, :2])
    assert getattr(layers.Lambda(record)(x), "_keras_mask", None) is None  # Keras: no mask


def test_trains_as_in_keras(rng):
    keras = import_keras()

    def build(lib, fn):
        x_in = lib.layers.Input((4,), name="x")
        h = lib.layers.Dense(3, name="d1")(x_in)
        h = lib.layers.Lambda(fn, name="lam")(h)
        return lib.Model(x_in, lib.layers.Dense(2, name="d2")(h))

    ours = build(sj, lambda t: ops.mul(ops.tanh(t), t))
    theirs = build(keras, lambda t: keras.ops.tanh(t) * t)
    copy_weights(ours, theirs)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    compare_sgd_step(ours, theirs, keras, x, rng.standard_normal((5, 2)).astype(np.float32))


def _model():
    x_in = layers.Input((3, 2))
    h = layers.Lambda(scaled_square, arguments={"factor": 0.5}, name="square")(x_in)
    h = layers.Lambda(flatten_time, output_shape=(6,), name="flat")(h)
    return sj.Model(x_in, layers.Dense(2)(h))


def test_saved_lambda_needs_its_function_in_custom_objects(tmp_path, rng):
    model, path = _model(), tmp_path / "m.shenjing"
    model.save(path)
    config = json.loads(read_safetensors(path)[1]["shenjing_config"])
    saved = [c["config"] for c in config["config"]["layers"] if c["class_name"] == "Lambda"]
    assert [c["function"] for c in saved] == ["scaled_square", "flatten_time"]  # names only
    with pytest.raises(FileFormatError, match=r"Lambda 'square': its function is the function "
                                              r"'scaled_square'.*custom_objects="):
        sj.load_model(path)
    with pytest.raises(FileFormatError, match=r"'flatten_time'"):
        sj.load_model(path, custom_objects={"scaled_square": scaled_square})
    loaded = sj.load_model(path, custom_objects={"scaled_square": scaled_square,
                                                 "flatten_time": flatten_time})
    x = rng.standard_normal((2, 3, 2)).astype(np.float32)
    # the same functions and weights in the same order: the same floats
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_config_round_trip_and_code_is_never_loaded():
    layer = layers.Lambda(scaled_square, output_shape=(4,), arguments={"factor": 2.0})
    config = layer.get_config()
    again = layers.Lambda.from_config(config, custom_objects={"scaled_square": scaled_square})
    assert again.get_config() == config and again.function is scaled_square
    code = {**config, "function": {"class_name": "__lambda__", "config": {"code": "4wAAAA=="}}}
    with pytest.raises(ArgumentError, match="never loads code from a file"):
        layers.Lambda.from_config(code, custom_objects={"scaled_square": scaled_square})
    with pytest.raises(ArgumentError, match=r"custom_objects=\{'scaled_square'"):
        layers.Lambda.from_config(config)


def test_errors_name_the_layer():
    with pytest.raises(ArgumentTypeError, match=r"Lambda 'l1': function must be callable"):
        layers.Lambda("tanh", name="l1")
    with pytest.raises(ArgumentTypeError, match=r"Lambda 'l2': output_shape must be a tuple"):
        layers.Lambda(flatten_time, output_shape=(0, 2), name="l2")
    with pytest.raises(ArgumentError, match=r"Lambda 'l3': could not infer the output shape.*"
                                            r"pass output_shape"):
        layers.Lambda(lambda t: ops.reshape(t, (5, 7)), name="l3")(layers.Input((3,)))
    partial = layers.Lambda(functools.partial(scaled_square, factor=2.0), name="l4")
    with pytest.raises(ArgumentError, match=r"Lambda 'l4': cannot save the function"):
        partial.get_config()
