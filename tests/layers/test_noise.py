"""Noise layers (SpatialDropout1D/2D, GaussianNoise, GaussianDropout): identity at inference as
Keras 3, and in training the exact structure of the noise and its statistics."""

import math

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, utils
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras

keras = import_keras()
BASE_KEYS = {"name", "trainable", "dtype"}

CASES = [
    ("SpatialDropout1D", {"rate": 0.3}, (2, 5, 4)),
    ("SpatialDropout2D", {"rate": 0.5}, (2, 3, 4, 5)),
    ("SpatialDropout2D", {"rate": 0.2, "data_format": "channels_first"}, (2, 3, 4, 5)),
    ("GaussianNoise", {"stddev": 0.5, "seed": 3}, (3, 4)),
    ("GaussianDropout", {"rate": 0.4}, (3, 2, 4)),
]


@pytest.mark.parametrize("name, config, shape", CASES, ids=str)
def test_inference_is_identity_and_config_as_keras(name, config, shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    ours, theirs = getattr(layers, name)(**config), getattr(keras.layers, name)(**config)
    expected = keras.ops.convert_to_numpy(theirs(x, training=False))
    np.testing.assert_array_equal(ours(x).numpy(), expected)  # both return x itself
    np.testing.assert_array_equal(ours(x, training=False).numpy(), x)
    their_config, our_config = theirs.get_config(), ours.get_config()
    for key in set(their_config) - BASE_KEYS:
        assert our_config[key] == their_config[key], key
    assert ours.count_params() == theirs.count_params() == 0


@pytest.mark.parametrize("name, config, shape, channel_axis", [
    ("SpatialDropout1D", {}, (400, 3, 50), 2),
    ("SpatialDropout2D", {}, (400, 2, 3, 50), 3),
    ("SpatialDropout2D", {"data_format": "channels_first"}, (400, 50, 2, 3), 1),
], ids=str)
def test_spatial_dropout_drops_whole_channels(name, config, shape, channel_axis, rng):
    rate = 0.3
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32)  # never 0, so zeros are drops
    layer = getattr(layers, name)(rate, **config)
    xt = sj.Tensor(x, requires_grad=True)
    y = layer(xt, training=True)
    y.backward(np.ones(shape, np.float32))
    y = y.numpy()
    spatial = tuple(a for a in range(1, len(shape)) if a != channel_axis)
    dropped = (y == 0).all(axis=spatial)
    kept = (y != 0).all(axis=spatial)
    assert (dropped | kept).all()  # each (sample, channel) is dropped or kept as a whole
    scale = np.float32(1.0 / (1.0 - rate))
    keep = np.expand_dims(kept, spatial)
    # kept values are x * scale, the same float32 product as the op's: exact
    np.testing.assert_array_equal(y, np.where(keep, x * scale, np.float32(0)))
    np.testing.assert_array_equal(xt.grad, np.where(keep, scale, np.float32(0)) * np.ones(shape))
    n = dropped.size  # 20,000 channels: the dropped share is within 5 sigma of rate
    assert abs(dropped.mean() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)


def test_gaussian_noise_exact_and_statistics(rng):
    x = rng.standard_normal((200, 300)).astype(np.float32)
    layer = layers.GaussianNoise(0.2, seed=7)
    xt = sj.Tensor(x, requires_grad=True)
    y = layer(xt, training=True)
    y.backward(np.ones(x.shape, np.float32))
    # the draw is the seeded generator's first standard normal array, scaled by stddev
    noise = np.random.default_rng(7).standard_normal(x.shape, dtype=np.float32)
    np.testing.assert_array_equal(y.numpy(), x + noise * np.float32(0.2))
    np.testing.assert_array_equal(xt.grad, np.ones(x.shape))
    diff = (y.numpy() - x).astype(np.float64)
    assert abs(diff.mean()) < 5 * 0.2 / math.sqrt(diff.size)
    assert abs(diff.std() - 0.2) < 0.01


def test_gaussian_dropout_exact_and_statistics(rng):
    rate = 0.25
    x = rng.uniform(0.5, 1.5, (200, 300)).astype(np.float32)
    layer = layers.GaussianDropout(rate, seed=11)
    xt = sj.Tensor(x, requires_grad=True)
    y = layer(xt, training=True)
    y.backward(np.ones(x.shape, np.float32))
    stddev = np.float32(math.sqrt(rate / (1 - rate)))
    noise = np.random.default_rng(11).standard_normal(x.shape, dtype=np.float32) * stddev + 1
    np.testing.assert_array_equal(y.numpy(), x * noise)
    np.testing.assert_array_equal(xt.grad, noise)  # d(x * noise)/dx
    ratio = (y.numpy() / x).astype(np.float64)
    assert abs(ratio.mean() - 1) < 5 * stddev / math.sqrt(ratio.size)
    assert abs(ratio.std() - stddev) < 0.01


def test_seeds_and_the_shared_generator(rng):
    x = rng.standard_normal((4, 6, 8)).astype(np.float32)
    for make in (lambda s: layers.SpatialDropout1D(0.5, seed=s),
                 lambda s: layers.GaussianNoise(0.3, seed=s),
                 lambda s: layers.GaussianDropout(0.3, seed=s)):
        first, second = make(5), make(5)
        a1, a2 = first(x, training=True).numpy(), first(x, training=True).numpy()
        np.testing.assert_array_equal(second(x, training=True).numpy(), a1)  # same seed
        assert not np.array_equal(a1, a2)  # a new draw at each call
        unseeded = make(None)
        utils.set_seed(1)
        b1 = unseeded(x, training=True).numpy()
        utils.set_seed(1)
        np.testing.assert_array_equal(unseeded(x, training=True).numpy(), b1)


@pytest.mark.parametrize("name, config", [(n, c) for n, c, _ in CASES[:1] + CASES[3:]], ids=str)
def test_mask_is_kept(name, config, rng):
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    x[0, 3:] = 0
    masked = layers.Masking()(x)
    for training in (False, True):
        y = getattr(layers, name)(**config)(masked, training=training)
        np.testing.assert_array_equal(y._keras_mask, masked._keras_mask)


def test_fit_trains_through_noise_layers(rng):
    x = rng.standard_normal((16, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((16, 1)).astype(np.float32)
    model = sj.Sequential([
        layers.Input((6, 6, 2)), layers.Conv2D(4, 3), layers.SpatialDropout2D(0.2),
        layers.GaussianNoise(0.1), layers.Reshape((16, 4)), layers.SpatialDropout1D(0.2),
        layers.GaussianDropout(0.2), layers.Flatten(), layers.Dense(1),
    ])
    model.compile(optimizer=sj.optimizers.SGD(0.01), loss="mse")
    before = model.get_weights()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("make, kind, words", [
    (lambda: layers.SpatialDropout1D(1.0), ArgumentError, "rate"),
    (lambda: layers.SpatialDropout2D(-0.1), ArgumentError, "rate"),
    (lambda: layers.SpatialDropout2D(0.1, data_format="NCHW"), ArgumentError, "data_format"),
    (lambda: layers.SpatialDropout1D("0.5"), ArgumentTypeError, "rate"),
    (lambda: layers.GaussianNoise(1.5), ArgumentError, "stddev"),
    (lambda: layers.GaussianNoise(0.1, seed=-1), ArgumentError, "seed"),
    (lambda: layers.GaussianDropout(1.0), ArgumentError, "rate"),
    (lambda: layers.GaussianDropout(0.1, seed=1.5), ArgumentTypeError, "seed"),
], ids=range(8))
def test_bad_arguments(make, kind, words):
    with pytest.raises(kind, match=words):
        make()


def test_bad_input_rank_names_the_layer():
    layer = layers.SpatialDropout2D(0.5, data_format="channels_first")
    with pytest.raises(ArgumentError, match=r"SpatialDropout2D 'spatial_dropout2d.*rank 4 "
                                            r"\(batch, channels"):
        layer(np.zeros((2, 3, 4), np.float32), training=True)
    with pytest.raises(ArgumentError, match="SpatialDropout1D.*rank 3"):
        layers.SpatialDropout1D(0.5)(np.zeros((2, 3), np.float32))


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([
        layers.Input((4, 4, 3)), layers.SpatialDropout2D(0.3, data_format="channels_first"),
        layers.GaussianNoise(0.1, seed=2), layers.Reshape((16, 3)),
        layers.SpatialDropout1D(0.2, seed=4), layers.GaussianDropout(0.5), layers.Flatten(),
        layers.Dense(2),
    ])
    for layer in model.layers:
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[1].seed == 2 and loaded.layers[0].data_format == "channels_first"
