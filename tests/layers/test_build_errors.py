"""Shapes that cannot work fail when the layer is added, naming the layer, shape and a hint."""

import pytest

import shenjing as sj
from shenjing import layers


def test_conv_output_smaller_than_one_fails_on_add():
    model = sj.Sequential([layers.Input((4, 4, 1))])
    with pytest.raises(ValueError, match=r"Conv2D 'big': input shape \(None, 4, 4, 1\) is too "
                                         r"small for kernel_size \(5, 5\).*padding='same'"):
        model.add(layers.Conv2D(2, 5, name="big"))


def test_dense_fed_a_4d_map_fails_with_a_flatten_hint():
    with pytest.raises(ValueError, match=r"Dense 'head': got a 4-D input of shape "
                                         r"\(None, 8, 8, 3\).*Flatten"):
        sj.Sequential([layers.Input((8, 8, 3)), layers.Dense(10, name="head")])


def test_wrong_rank_for_conv_and_pooling():
    with pytest.raises(ValueError, match=r"Conv2D 'c': expected input of rank 4 "
                                         r"\(batch, height, width, channels\), got shape \(None, 28, 28\)"):
        layers.Conv2D(4, 3, name="c")(layers.Input((28, 28)))
    with pytest.raises(ValueError, match=r"MaxPooling2D 'p'.*smaller than pool_size"):
        layers.MaxPooling2D(4, name="p")(layers.Input((3, 3, 2)))


def test_mismatched_merge_and_duplicate_names():
    a, b = layers.Input((3,)), layers.Input((4,))
    with pytest.raises(ValueError, match=r"Add 'add_x': inputs must have the same shape"):
        layers.Add(name="add_x")([a, b])
    with pytest.raises(ValueError, match="already in the model"):
        sj.Sequential([layers.Input((3,)), layers.Dense(2, name="d"), layers.Dense(2, name="d")])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="Dense 'x': units must be a positive integer, got 0"):
        layers.Dense(0, name="x")
    with pytest.raises(ValueError, match="Conv2D 'k': padding must be 'valid', 'same'"):
        layers.Conv2D(3, 3, padding="full", name="k")
    with pytest.raises(ValueError, match="BatchNormalization 'bn': momentum must be in"):
        layers.BatchNormalization(momentum=1.5, name="bn")


def test_weights_from_a_call_with_other_channels_are_refused():
    conv = layers.Conv2D(2, 3, name="c2")
    import numpy as np

    conv(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="expected 3 input channels \\(as built\\), got 4"):
        conv(np.zeros((1, 5, 5, 4), np.float32))


def test_conv_layers_accept_int_and_pair_padding_per_axis():
    import numpy as np

    x = np.random.default_rng(0).standard_normal((2, 7, 9, 3)).astype(np.float32)
    for padding, explicit in (((1, 2), ((1, 1), (2, 2))), (((1, 0), (2, 1)), ((1, 0), (2, 1)))):
        conv = layers.Conv2D(4, 3, padding=padding)
        y = conv(x)
        expected = sj.ops.conv2d(x, conv.kernel, conv.bias, padding=explicit)
        np.testing.assert_array_equal(y.numpy(), expected.numpy())
        assert tuple(y.shape[1:]) == conv.compute_output_shape((None, 7, 9, 3))[1:]
        again = layers.Conv2D.from_config(conv.get_config())
        assert again.compute_output_shape((None, 7, 9, 3)) == conv.compute_output_shape((None, 7, 9, 3))
