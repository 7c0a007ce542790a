"""ONNX export of the windowed layers, checked in onnxruntime against predict."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from tests.export.onnx_helpers import check_export, normal, randomize


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_cnn_with_batch_norm_strides_dilation_pooling(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((11, 10, 3)),
        L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),  # asymmetric 'same'
        L.BatchNormalization(),
        L.MaxPooling2D(2, strides=1, padding="same"),
        L.Conv2D(5, (3, 2), dilation_rate=(2, 1), padding="same", activation="tanh"),
        L.Conv2D(5, 2, padding=((1, 0), (2, 1)), use_bias=False),
        L.AveragePooling2D(3, strides=2, padding="same"),  # partial windows: only what is read
        L.Conv2D(6, 2, padding="valid", activation="elu"),
        L.GlobalAveragePooling2D(),
        L.Dense(4, activation="softmax"),
    ], name="cnn"), rng)
    check_export(model, tmp_path, normal(rng, 11, 10, 3))


def test_conv1d_family(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((13, 3)),
        L.Conv1D(4, 3, strides=2, padding="same"),
        L.Conv1D(4, 3, dilation_rate=2, padding="same", activation="relu"),
        L.Conv1D(5, 2, padding=(2, 1)),
        L.MaxPooling1D(2),
        L.AveragePooling1D(2, strides=1, padding="same"),
        L.BatchNormalization(),
        L.GlobalMaxPooling1D(),
        L.Dense(3),
    ], name="conv1d"), rng)
    check_export(model, tmp_path, normal(rng, 13, 3))


def test_channels_first(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((3, 8, 9)),
        L.Conv2D(4, 3, padding="same", strides=2, data_format="channels_first"),
        L.MaxPooling2D(2, data_format="channels_first", padding="same"),
        L.BatchNormalization(axis=1),
        L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True),
        L.Flatten(),
    ], name="channels_first"), rng)
    check_export(model, tmp_path, normal(rng, 3, 8, 9))


def test_depthwise_and_separable(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((9, 8, 3)),
        L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2),
        L.DepthwiseConv2D(2, dilation_rate=2, use_bias=False),
        L.SeparableConv2D(4, 2, strides=2, activation="sigmoid"),
    ], name="depthwise2d"), rng)
    check_export(model, tmp_path, normal(rng, 9, 8, 3))
    model = randomize(sj.Sequential([
        L.Input((12, 3)),
        L.DepthwiseConv1D(3, strides=2, padding="same", depth_multiplier=3),
        L.SeparableConv1D(4, 3, padding="same", use_bias=False),
    ], name="depthwise1d"), rng)
    check_export(model, tmp_path, normal(rng, 12, 3))


@pytest.mark.parametrize("padding, strides, output_padding, dilation", [
    ("same", 2, None, 1), ("valid", 2, None, 1), ("valid", 3, 1, 1), ("same", 2, 1, 1),
    ("same", 1, None, 2), ("valid", 1, None, 2), ("same", 3, None, 1),
])
def test_conv_transpose(rng, tmp_path, padding, strides, output_padding, dilation):
    model = randomize(sj.Sequential([
        L.Input((5, 4, 3)),
        L.Conv2DTranspose(4, 3, strides=strides, padding=padding, output_padding=output_padding,
                          dilation_rate=dilation, activation="relu"),
    ], name="conv2d_transpose_model"), rng)
    check_export(model, tmp_path, normal(rng, 5, 4, 3))
    model = randomize(sj.Sequential([
        L.Input((6, 3)),
        L.Conv1DTranspose(2, 2, strides=strides, padding=padding, dilation_rate=dilation,
                          output_padding=output_padding),
    ], name="conv1d_transpose_model"), rng)
    check_export(model, tmp_path, normal(rng, 6, 3))


def test_conv_transpose_kernel_below_stride(rng, tmp_path):
    # full output shorter than strides * n: zeros (plus bias) appended, ONNX's output_padding
    model = randomize(sj.Sequential([
        L.Input((4, 4, 2)), L.Conv2DTranspose(3, 1, strides=3, padding="valid"),
        L.Conv2DTranspose(2, 1, strides=2, padding="same"),
    ], name="short_kernel"), rng)
    check_export(model, tmp_path, normal(rng, 4, 4, 2))


def test_unknown_length_uses_same_upper(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((None, 3)),
        L.Conv1D(4, 3, strides=2, dilation_rate=1, padding="same"),
        L.Conv1D(4, 3, dilation_rate=2, padding="same"),
        L.MaxPooling1D(2, padding="same"), L.AveragePooling1D(3, strides=2, padding="same"),
        L.Conv1D(2, 2), L.GlobalAveragePooling1D(),
    ], name="any_length"), rng)
    for steps in (9, 10, 13):
        check_export(model, tmp_path, normal(rng, steps, 3))
