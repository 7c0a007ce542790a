"""Activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax) against Keras 3 on torch: outputs,
configs, masks, PReLU's weights and one SGD step."""

import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras
from tests.layers.keras_step import compare_sgd_step

keras = import_keras()
BASE_KEYS = {"name", "trainable", "dtype"}


def _input(rng, shape=(3, 4, 5)):
    """Normal values plus the kinks themselves (0, 0.5 and 6 are thresholds used below)."""
    x = rng.standard_normal(shape).astype(np.float32) * 4
    x.flat[:4] = [0.0, 0.5, 6.0, -0.0]
    return x


def _compare(name, config, x, **call):
    ours, theirs = getattr(layers, name)(**config), getattr(keras.layers, name)(**config)
    expected = keras.ops.convert_to_numpy(theirs(x, **call))
    got = ours(x, **call).numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    their_config, our_config = theirs.get_config(), ours.get_config()
    for key in set(their_config) - BASE_KEYS:
        value = their_config[key]
        assert our_config[key] == (list(value) if isinstance(value, tuple) else value), key
    return ours, theirs


RELU = [{}, {"max_value": 6.0}, {"max_value": 2.5}, {"negative_slope": 0.1},
        {"threshold": 0.5}, {"max_value": 6.0, "negative_slope": 0.2, "threshold": 0.5},
        {"max_value": 3.0, "negative_slope": 0.05}]


@pytest.mark.parametrize("config", RELU, ids=str)
def test_relu(config, rng):
    _compare("ReLU", config, _input(rng))


@pytest.mark.parametrize("name, config", [
    ("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.05}), ("LeakyReLU", {"negative_slope": 0}),
    ("ELU", {}), ("ELU", {"alpha": 0.5}),
    ("Softmax", {}), ("Softmax", {"axis": 1}), ("Softmax", {"axis": [1, 2]}),
    ("Softmax", {"axis": (-1,)}),
], ids=str)
def test_elementwise_and_softmax(name, config, rng):
    _compare(name, config, _input(rng))


@pytest.mark.parametrize("mask_shape, axis", [
    ((3, 4, 5), -1), ((4, 5), -1), ((3, 1, 5), 1), ((5,), -1), ((3, 4, 5), [1, 2]),
], ids=str)
def test_softmax_mask(mask_shape, axis, rng):
    x = _input(rng)
    mask = rng.random(mask_shape) > 0.4
    mask.flat[:5] = False  # a fully masked row: zeros, not NaN
    _compare("Softmax", {"axis": axis}, x, mask=mask)
    as_float = mask.astype(np.float32) * 0.8  # > 0.5 keeps, as Keras
    _compare("Softmax", {"axis": axis}, x, mask=as_float)


def test_softmax_mask_that_does_not_broadcast(rng):
    layer = layers.Softmax()
    with pytest.raises(ArgumentError, match=r"Softmax 'softmax.*mask of shape \(3, 4\)"):
        layer(_input(rng), mask=np.ones((3, 4), bool))


@pytest.mark.parametrize("name", ["ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax"])
def test_mask_flows_through_activation_layers(name, rng):
    """After Masking, a (batch, time) mask: activations keep it, as Keras's supports_masking."""
    # batch == time == features: Keras aligns a (batch, time) mask with Softmax's input from
    # the right, so it only broadcasts then (and means (time, features); ours does the same)
    x = _input(rng, (4, 4, 4))
    x[0, 2:] = 0.0
    ours = getattr(layers, name)()(layers.Masking()(x))
    theirs = getattr(keras.layers, name)()(keras.layers.Masking()(x))
    from keras.src.backend.common.masking import get_keras_mask

    their_mask = keras.ops.convert_to_numpy(get_keras_mask(theirs))
    np.testing.assert_array_equal(ours._keras_mask, their_mask)
    np.testing.assert_allclose(ours.numpy(), keras.ops.convert_to_numpy(theirs), rtol=1e-6,
                               atol=1e-7)


# ----- PReLU --------------------------------------------------------------------------------
@pytest.mark.parametrize("config, shape", [
    ({}, (3, 5)), ({"shared_axes": [1, 2]}, (2, 4, 5, 3)), ({"shared_axes": 1}, (3, 4, 5)),
    ({"alpha_initializer": "random_uniform"}, (3, 4, 5)),
], ids=str)
def test_prelu_with_keras_weights(config, shape, rng):
    x = _input(rng, shape)
    ours, theirs = layers.PReLU(**config), keras.layers.PReLU(**config)
    theirs.build(x.shape)
    ours(x)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    alpha = rng.uniform(0.0, 0.5, theirs.get_weights()[0].shape).astype(np.float32)
    theirs.set_weights([alpha])
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), keras.ops.convert_to_numpy(theirs(x)),
                               rtol=1e-6, atol=1e-7)
    assert [w.name.split("/")[-1] for w in ours.weights] == ["alpha"]


def test_prelu_sgd_step(rng):
    x = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)

    def stack(lib):
        return [lib.Conv2D(3, 2), lib.PReLU(alpha_initializer="random_uniform",
                                            shared_axes=[1, 2]),
                lib.Flatten(), lib.Dense(5), lib.PReLU(alpha_initializer="ones"), lib.Dense(2)]

    compare_sgd_step(stack(layers), stack(keras.layers), x, y)


def test_other_layers_sgd_step(rng):
    """Gradients of every argument set: a Dense, each activation layer, a Dense."""
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)

    def stack(lib):
        made = [lib.Dense(12, kernel_initializer="random_normal")]
        for config in RELU[1:]:
            made += [lib.ReLU(**config), lib.Dense(12)]
        made += [lib.LeakyReLU(), lib.ELU(0.7), lib.Reshape((3, 4)), lib.Softmax(axis=1),
                 lib.Dense(4), lib.Softmax(axis=[1, 2]), lib.Flatten(), lib.Dense(3)]
        return made

    compare_sgd_step(stack(layers), stack(keras.layers), x, y, lr=0.5)


# ----- arguments, config, saving ------------------------------------------------------------
@pytest.mark.parametrize("make, kind, words", [
    (lambda: layers.ReLU(max_value=-1), ArgumentError, "max_value"),
    (lambda: layers.ReLU(negative_slope=-0.1), ArgumentError, "negative_slope"),
    (lambda: layers.ReLU(threshold=None), ArgumentTypeError, "threshold"),
    (lambda: layers.ReLU(max_value="6"), ArgumentTypeError, "max_value"),
    (lambda: layers.LeakyReLU(-0.3), ArgumentError, "negative_slope"),
    (lambda: layers.ELU(float("nan")), ArgumentError, "alpha"),
    (lambda: layers.PReLU(shared_axes=0), ArgumentError, "shared_axes"),
    (lambda: layers.PReLU(shared_axes="1"), ArgumentTypeError, "shared_axes"),
    (lambda: layers.PReLU(alpha_initializer="nope"), ArgumentError, "alpha_initializer"),
    (lambda: layers.PReLU(alpha_constraint="non_neg"), ArgumentError, "alpha_constraint"),
    (lambda: layers.Softmax(axis="last"), ArgumentTypeError, "axis"),
    (lambda: layers.Softmax(axis=[]), ArgumentTypeError, "axis"),
], ids=range(12))
def test_bad_arguments(make, kind, words):
    with pytest.raises(kind, match=words):
        make()


def test_bad_inputs_name_the_layer(rng):
    with pytest.raises(ArgumentError, match="Softmax 'softmax.*axis 3 is out of range"):
        layers.Softmax(axis=3)(_input(rng))
    prelu = layers.PReLU(shared_axes=[3])
    with pytest.raises(ArgumentError, match="PReLU 'p_re_lu.*shared_axes"):
        prelu(_input(rng))
    prelu = layers.PReLU()
    prelu(_input(rng))
    with pytest.raises(ArgumentError, match="alpha of shape"):
        prelu(_input(rng, (3, 4, 6)))


def test_leaky_relu_alpha_is_keras_2_name():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = layers.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1 and caught
    assert layers.LeakyReLU().negative_slope == 0.3  # Keras 3's default


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([
        layers.Input((4, 5)), layers.Dense(6), layers.PReLU(shared_axes=1, alpha_regularizer="l2"),
        layers.ReLU(max_value=3.0, negative_slope=0.1, threshold=0.2), layers.LeakyReLU(0.1),
        layers.ELU(0.5), layers.Softmax(axis=[1, 2]),
    ])
    for layer in model.layers:
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    model.layers[1].alpha.assign(rng.uniform(0, 1, (1, 6)).astype(np.float32))
    x = _input(rng, (2, 4, 5))
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[4].alpha == 0.5  # ELU keeps alpha (Keras 3 drops it from its config)
