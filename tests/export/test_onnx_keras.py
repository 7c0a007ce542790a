"""Keras 3 as the independent reference: its weights copied into shenjing, the export run in
onnxruntime agrees with Keras's own predict."""

import numpy as np

import shenjing as sj
from shenjing import layers as L
from tests.export.onnx_helpers import run_onnx
from tests.keras_oracle import import_keras


def _random_weights(model, rng):
    return [rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if "variance" in w.path
            else rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.weights]


def _compare(keras_model, ours, inputs, tmp_path, rng):
    keras_model.set_weights(_random_weights(keras_model, rng))
    ours.set_weights(keras_model.get_weights())
    ours.export(tmp_path / "m.onnx", format="onnx")
    got, _ = run_onnx(tmp_path / "m.onnx", [inputs])
    want = np.asarray(keras_model.predict(inputs, verbose=0))
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-5)


def test_conv_variants_match_keras(tmp_path):
    keras = import_keras()
    rng = np.random.default_rng(3)
    spec = [("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}),
            ("BatchNormalization", {}),
            ("DepthwiseConv2D", {"kernel_size": 3, "padding": "same", "depth_multiplier": 2}),
            ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2,
                                 "padding": "same", "activation": "relu"}),
            ("SeparableConv2D", {"filters": 2, "kernel_size": 2}),
            ("MaxPooling2D", {"pool_size": 2, "padding": "same"})]
    theirs = keras.Sequential([keras.Input((9, 8, 3))] +
                              [getattr(keras.layers, k)(**a) for k, a in spec])
    ours = sj.Sequential([L.Input((9, 8, 3))] + [getattr(L, k)(**a) for k, a in spec])
    x = rng.standard_normal((7, 9, 8, 3)).astype(np.float32)
    _compare(theirs, ours, x, tmp_path, rng)


def test_masked_bidirectional_recurrences_match_keras(tmp_path):
    keras = import_keras()
    rng = np.random.default_rng(4)

    def build(lib, inp):
        x = inp((6,), dtype="int32")
        h = lib.Embedding(9, 4, mask_zero=True)(x)
        h = lib.Bidirectional(lib.LSTM(3, return_sequences=True))(h)
        h = lib.GRU(4, go_backwards=True)(h)
        return x, lib.Dense(2)(h)

    theirs = keras.Model(*build(keras.layers, keras.Input))
    ours = sj.Model(*build(L, sj.Input))
    tokens = rng.integers(1, 9, (7, 6)).astype(np.int32)
    tokens[np.arange(6)[None, :] >= rng.integers(1, 7, 7)[:, None]] = 0  # right-padded
    _compare(theirs, ours, tokens, tmp_path, rng)
