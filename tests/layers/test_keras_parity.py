"""Layers against Keras 3 itself: same weights in, same outputs and weight shapes out."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


def _compare(ours, theirs, x, training=False, rtol=1e-5, atol=1e-5):
    """Build both on x, copy Keras's weights into ours, compare outputs."""
    expected = np.asarray(theirs(x, training=training).detach().cpu().numpy())
    ours(x)  # build
    their_weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in their_weights]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(their_weights)
    got = ours(x, training=training).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "softmax", "tanh"])
def test_dense(use_bias, activation, rng):
    x = rng.standard_normal((4, 7)).astype(np.float32)
    _compare(layers.Dense(5, activation=activation, use_bias=use_bias),
             keras.layers.Dense(5, activation=activation, use_bias=use_bias), x)


CONV_CASES = [
    dict(filters=4, kernel_size=3, strides=1, padding="valid"),
    dict(filters=3, kernel_size=(2, 4), strides=2, padding="same"),
    dict(filters=5, kernel_size=3, strides=(2, 1), padding="same", use_bias=False),
    dict(filters=2, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=2, kernel_size=5, strides=3, padding="valid", activation="relu"),
]


@pytest.mark.parametrize("config", CONV_CASES, ids=range(len(CONV_CASES)))
def test_conv2d(config, rng):
    x = rng.standard_normal((2, 9, 11, 3)).astype(np.float32)
    _compare(layers.Conv2D(**config), keras.layers.Conv2D(**config), x)


def test_conv2d_channels_first(rng):
    x = rng.standard_normal((2, 3, 8, 6)).astype(np.float32)
    config = dict(filters=4, kernel_size=3, padding="same", data_format="channels_first")
    _compare(layers.Conv2D(**config), keras.layers.Conv2D(**config), x)


@pytest.mark.parametrize("config", [
    dict(filters=3, kernel_size=3), dict(filters=2, kernel_size=4, strides=2, padding="same"),
    dict(filters=4, kernel_size=2, dilation_rate=3),
], ids=range(3))
def test_conv1d(config, rng):
    x = rng.standard_normal((3, 13, 5)).astype(np.float32)
    _compare(layers.Conv1D(**config), keras.layers.Conv1D(**config), x)


POOL_CASES = [
    (layers.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=2)),
    (layers.MaxPooling2D, keras.layers.MaxPooling2D, dict(pool_size=3, strides=2, padding="same")),
    (layers.AveragePooling2D, keras.layers.AveragePooling2D, dict(pool_size=2)),
    (layers.AveragePooling2D, keras.layers.AveragePooling2D,
     dict(pool_size=3, strides=2, padding="same")),
    (layers.GlobalAveragePooling2D, keras.layers.GlobalAveragePooling2D, {}),
    (layers.GlobalMaxPooling2D, keras.layers.GlobalMaxPooling2D, {}),
]


@pytest.mark.parametrize("ours, theirs, config", POOL_CASES, ids=range(len(POOL_CASES)))
def test_pooling_2d(ours, theirs, config, rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    _compare(ours(**config), theirs(**config), x)


@pytest.mark.parametrize("ours, theirs, config", [
    (layers.MaxPooling1D, keras.layers.MaxPooling1D, dict(pool_size=2)),
    (layers.AveragePooling1D, keras.layers.AveragePooling1D, dict(pool_size=3, strides=2,
                                                                  padding="same")),
    (layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling1D, {}),
    (layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling1D, {}),
], ids=range(4))
def test_pooling_1d(ours, theirs, config, rng):
    x = rng.standard_normal((2, 11, 3)).astype(np.float32)
    _compare(ours(**config), theirs(**config), x)


@pytest.mark.parametrize("shape", [(8, 5), (4, 6, 5), (4, 5, 6, 3)], ids=str)
def test_batch_normalization_training_inference_and_moving_statistics(shape, rng):
    ours, theirs = layers.BatchNormalization(momentum=0.9), keras.layers.BatchNormalization(momentum=0.9)
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    theirs.build(x.shape)
    ours(x)
    gamma = rng.uniform(0.5, 1.5, shape[-1]).astype(np.float32)
    beta = rng.standard_normal(shape[-1]).astype(np.float32)
    init = [gamma, beta, np.zeros(shape[-1], np.float32), np.ones(shape[-1], np.float32)]
    theirs.set_weights(init)
    ours.set_weights(init)
    for step in range(3):  # training steps update the moving statistics the same way
        batch = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
        expected = theirs(batch, training=True).detach().numpy()
        np.testing.assert_allclose(ours(batch, training=True).numpy(), expected, rtol=1e-4, atol=1e-4)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-5)
    expected = theirs(x, training=False).detach().numpy()
    np.testing.assert_allclose(ours(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert len(ours.trainable_weights) == 2 and len(ours.non_trainable_weights) == 2


@pytest.mark.parametrize("ours, theirs", [
    (layers.Flatten(), keras.layers.Flatten()),
    (layers.Reshape((3, -1)), keras.layers.Reshape((3, -1))),
    (layers.Activation("elu"), keras.layers.Activation("elu")),
    (layers.ZeroPadding2D(((1, 2), (0, 3))), keras.layers.ZeroPadding2D(((1, 2), (0, 3)))),
    (layers.Dropout(0.5), keras.layers.Dropout(0.5)),  # identity at inference
], ids=range(5))
def test_shape_layers(ours, theirs, rng):
    x = rng.standard_normal((2, 3, 4, 2)).astype(np.float32)
    _compare(ours, theirs, x)


def test_merge_layers(rng):
    a, b = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(2))
    for ours, theirs in ((layers.Add(), keras.layers.Add()),
                         (layers.Multiply(), keras.layers.Multiply()),
                         (layers.Concatenate(), keras.layers.Concatenate())):
        expected = theirs([a, b]).detach().numpy()
        np.testing.assert_allclose(ours([a, b]).numpy(), expected, rtol=1e-6)


def test_dropout_in_training_zeroes_and_scales(rng):
    sj.utils.set_seed(0)
    x = np.ones((200, 50), np.float32)
    y = layers.Dropout(0.25)(x, training=True).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
