"""Dropout(seed=...) draws from its own generator; initializers by Keras class name."""

import numpy as np

import shenjing as sj
from shenjing import initializers, layers


def test_seeded_dropout_repeats_its_masks_whatever_the_shared_generator_does():
    x = np.ones((8, 50), np.float32)
    first = layers.Dropout(0.5, seed=3)
    sj.utils.set_seed(1)
    a = [first(x, training=True).numpy() for _ in range(2)]
    second = layers.Dropout(0.5, seed=3)
    sj.utils.set_seed(99)  # the shared generator does not reach a seeded layer
    b = [second(x, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])  # a stream, not one mask repeated
    assert set(np.unique(a[0])) == {0.0, 2.0}


def test_unseeded_dropout_follows_set_seed():
    x = np.ones((4, 40), np.float32)
    layer = layers.Dropout(0.5)
    sj.utils.set_seed(5)
    a = layer(x, training=True).numpy()
    sj.utils.set_seed(5)
    np.testing.assert_array_equal(layer(x, training=True).numpy(), a)


def test_initializers_by_keras_class_name():
    assert isinstance(initializers.get("Zeros"), initializers.Zeros)
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    np.testing.assert_array_equal(initializers.get("Ones")((2, 2)), np.ones((2, 2)))
