"""GroupNormalization and LayerNormalization against Keras 3 (copied weights, float32) and
torch (float64, values and gradients)."""

import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.helpers import check_against_torch, check_numeric_grad
from tests.keras_oracle import import_keras

keras = import_keras()
torch = pytest.importorskip("torch")
F = torch.nn.functional


def _compare_with_keras(ours, theirs, x, rng, training=False):
    """Build both, give both the same random weights, compare outputs (float32, 1e-5)."""
    theirs(x)
    ours(x)
    their_weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in their_weights]
    assert ours.count_params() == theirs.count_params()
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in their_weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = theirs(x, training=training).detach().cpu().numpy()
    got = ours(x, training=training).numpy()
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def _input(rng, shape):
    return (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)


@pytest.mark.parametrize("shape", [(5, 12), (3, 4, 12), (2, 4, 5, 12)], ids=["2d", "3d", "4d"])
@pytest.mark.parametrize("groups", [1, 2, 3, 6, 12, -1])
def test_group_normalization_matches_keras(shape, groups, rng):
    x = _input(rng, shape)
    _compare_with_keras(layers.GroupNormalization(groups=groups),
                        keras.layers.GroupNormalization(groups=groups), x, rng)


@pytest.mark.parametrize("config", [
    dict(groups=2, axis=1), dict(groups=4, center=False), dict(groups=3, scale=False),
    dict(groups=2, epsilon=1e-5), dict(groups=5, axis=-2),
], ids=range(5))
def test_group_normalization_options_match_keras(config, rng):
    x = _input(rng, (2, 6, 5, 12))
    _compare_with_keras(layers.GroupNormalization(**config),
                        keras.layers.GroupNormalization(**config), x, rng)


@pytest.mark.parametrize("shape, axis", [
    ((5, 12), -1), ((3, 4, 12), -1), ((2, 4, 5, 12), -1), ((2, 4, 5, 12), [1, 2, 3]),
    ((2, 4, 5, 6), [1, 3]), ((2, 4, 5, 6), (-1, -2)),
], ids=range(6))
def test_layer_normalization_matches_keras(shape, axis, rng):
    # NOTE: not a single non-trailing axis such as axis=1 of (N, T, F): Keras 3.15 on torch
    # hands that to torch's layer_norm, which only normalizes trailing axes, and fails. That
    # case is checked against torch below.
    x = _input(rng, shape)
    _compare_with_keras(layers.LayerNormalization(axis=axis),
                        keras.layers.LayerNormalization(axis=axis), x, rng)


@pytest.mark.parametrize("config", [
    dict(center=False), dict(scale=False), dict(epsilon=1e-6), dict(rms_scaling=True),
    dict(rms_scaling=True, axis=[1, 2]),
], ids=range(5))
def test_layer_normalization_options_match_keras(config, rng):
    x = _input(rng, (3, 4, 6))
    with warnings.catch_warnings():  # Keras deprecates rms_scaling, with a warning
        warnings.simplefilter("ignore", UserWarning)
        theirs = keras.layers.LayerNormalization(**config)
        _compare_with_keras(layers.LayerNormalization(**config), theirs, x, rng)


@pytest.mark.parametrize("make", [
    lambda: layers.GroupNormalization(groups=2), lambda: layers.LayerNormalization(),
], ids=["group", "layer"])
def test_same_in_training_and_inference_and_per_sample(make, rng):
    """No moving statistics: training=True and False agree (and agree with Keras), and each
    sample's output does not depend on the rest of the batch (the batch-size-1 case)."""
    layer = make()
    theirs = keras.layers.GroupNormalization(groups=2) if isinstance(
        layer, layers.GroupNormalization) else keras.layers.LayerNormalization()
    x = _input(rng, (4, 3, 3, 6))
    _compare_with_keras(layer, theirs, x, rng, training=True)
    train, infer = layer(x, training=True).numpy(), layer(x, training=False).numpy()
    np.testing.assert_array_equal(train, infer)
    assert layer.non_trainable_weights == []
    for i in range(4):
        np.testing.assert_allclose(layer(x[i : i + 1]).numpy(), infer[i : i + 1], rtol=1e-6,
                                   atol=1e-6)


def _through_layer(layer):
    def fn(x, gamma, beta=None):
        layer.gamma, layer.beta = gamma, beta
        return layer.call(x)

    return fn


@pytest.mark.parametrize("shape, groups", [((4, 6), 3), ((2, 5, 6), 2), ((2, 3, 4, 6), 1)])
def test_group_normalization_against_torch_float64(shape, groups, rng):
    x = rng.standard_normal(shape) * 3 - 1
    layer = layers.GroupNormalization(groups=groups, epsilon=1e-5, dtype="float64")
    layer(x)
    gamma, beta = rng.standard_normal(6), rng.standard_normal(6)

    def theirs(x, gamma, beta):
        return F.group_norm(x.movedim(-1, 1), groups, gamma, beta, 1e-5).movedim(1, -1)

    check_against_torch(_through_layer(layer), theirs, x, gamma, beta)
    check_numeric_grad(_through_layer(layer), x, gamma, beta)


@pytest.mark.parametrize("shape, axis", [((4, 6), -1), ((2, 3, 4, 6), [1, 2, 3]),
                                         ((3, 4, 5), 1)])
def test_layer_normalization_against_torch_float64(shape, axis, rng):
    x = rng.standard_normal(shape) * 3 - 1
    layer = layers.LayerNormalization(axis=axis, dtype="float64")
    layer(x)
    normalized = tuple(layer.gamma.shape)
    gamma, beta = rng.standard_normal(normalized), rng.standard_normal(normalized)

    def theirs(x, gamma, beta):
        if axis != 1:
            return F.layer_norm(x, normalized, gamma, beta, 1e-3)
        return F.layer_norm(x.movedim(1, -1), normalized, gamma, beta, 1e-3).movedim(-1, 1)

    check_against_torch(_through_layer(layer), theirs, x, gamma, beta)
    check_numeric_grad(_through_layer(layer), x, gamma, beta)


def test_params_and_weights():
    group = layers.GroupNormalization(groups=4)
    group(np.zeros((2, 5, 5, 16), np.float32))
    assert [w.name.split("/")[-1] for w in group.weights] == ["gamma", "beta"]
    assert group.count_params() == 2 * 16 and len(group.trainable_weights) == 2
    ln = layers.LayerNormalization(axis=[1, 2, 3], center=False)
    ln(np.zeros((2, 5, 5, 16), np.float32))
    assert ln.gamma.shape == (5, 5, 16) and ln.beta is None
    assert ln.count_params() == 5 * 5 * 16
    instance = layers.GroupNormalization(groups=-1)
    instance(np.zeros((2, 3, 8), np.float32))
    assert instance.groups == 8 and instance.get_config()["groups"] == 8  # as Keras resolves


def test_float32_stays_float32(rng):
    for layer in (layers.GroupNormalization(groups=3), layers.LayerNormalization()):
        x = sj.Tensor(_input(rng, (2, 4, 4, 6)), requires_grad=True)
        y = layer(x, training=True)
        assert y.dtype == np.float32
        y.backward(rng.standard_normal(y.shape).astype(np.float32))
        assert x.grad.dtype == layer.gamma.grad.dtype == layer.beta.grad.dtype == np.float32


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([
        layers.Input((6, 6, 4)), layers.GroupNormalization(groups=2, epsilon=1e-4),
        layers.Conv2D(4, 3), layers.LayerNormalization(axis=[1, 2, 3], scale=False),
        layers.Flatten(), layers.Dense(3), layers.LayerNormalization(rms_scaling=True),
    ])
    for layer in (model.layers[0], model.layers[2], model.layers[5]):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape).astype(np.float32))
    x = _input(rng, (3, 6, 6, 4))
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.safetensors").predict(x),
                                  model.predict(x))


def test_errors():
    with pytest.raises(ValueError, match=r"groups must be a positive integer \(or -1"):
        layers.GroupNormalization(groups=0)
    with pytest.raises(ValueError, match="epsilon must be a number > 0"):
        layers.LayerNormalization(epsilon=-1)
    with pytest.raises(TypeError, match="axis must be an int or a list of ints"):
        layers.LayerNormalization(axis="last")
    group = layers.GroupNormalization(groups=32, name="gn")
    with pytest.raises(ValueError, match=r"GroupNormalization 'gn': groups=32 must divide the "
                                         r"16 channels on axis -1 of input shape \(2, 5, 16\)"):
        group(np.zeros((2, 5, 16), np.float32))
    with pytest.raises(ValueError, match="groups=3 must divide the 16 channels"):
        layers.GroupNormalization(groups=3)(np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="axis 0 is the batch axis"):
        layers.GroupNormalization(groups=1, axis=0)(np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match="expected an input of rank >= 2"):
        layers.GroupNormalization(groups=1)(np.zeros(16, np.float32))
    ln = layers.LayerNormalization(axis=3, name="ln")
    with pytest.raises(ValueError, match=r"LayerNormalization 'ln': axis 3 is out of range for "
                                         r"an input of shape \(2, 5, 16\)"):
        ln(np.zeros((2, 5, 16), np.float32))
    ln = layers.LayerNormalization()
    ln(np.zeros((2, 16), np.float32))
    with pytest.raises(ValueError, match=r"was built for normalized size \(16,\), got \(8,\)"):
        ln(np.zeros((2, 8), np.float32))
