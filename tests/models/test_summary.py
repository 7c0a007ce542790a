"""summary() and parameter counts against Keras 3 on a zoo of architectures."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


def _zoo(lib):
    """The same architectures written with either library's layers."""
    L = lib.layers
    inputs = L.Input((16, 16, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    y = L.Conv2D(8, 1)(x)
    residual = L.Add()([x, y])
    pooled = L.GlobalAveragePooling2D()(residual)
    branch = L.Dense(4)(pooled)
    merged = L.Concatenate()([pooled, branch])
    functional = lib.Model(inputs, L.Dense(3, activation="softmax")(merged))
    return {
        "mlp": lib.Sequential([L.Input((100,)), L.Dense(10), L.Dense(3, use_bias=False)]),
        "notes_cnn": lib.Sequential([
            L.Input((28, 28, 1)), L.Conv2D(32, 3, padding="same"), L.BatchNormalization(),
            L.Activation("relu"), L.MaxPooling2D(), L.Conv2D(64, 3, padding="same"),
            L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
            L.Dense(128), L.Dense(10)]),
        "strided": lib.Sequential([
            L.Input((7, 7, 3)), L.Conv2D(2, 3, strides=2, padding="same"),
            L.Conv2D(5, (2, 3), dilation_rate=(1, 1), use_bias=False), L.Flatten()]),
        "conv1d": lib.Sequential([
            L.Input((50, 6)), L.Conv1D(16, 5, strides=2), L.MaxPooling1D(),
            L.BatchNormalization(center=False), L.GlobalMaxPooling1D(), L.Dense(1)]),
        "functional": functional,
        "notes_lstm": lib.Sequential([L.Input((20, 100)), L.LSTM(150)]),
        "recurrent": lib.Sequential([
            L.Input((12,), dtype="int32"), L.Embedding(50, 8, mask_zero=True),
            L.Bidirectional(L.LSTM(6, return_sequences=True)),
            L.GRU(5, return_sequences=True), L.GRU(4, reset_after=False, return_sequences=True),
            L.SimpleRNN(3, return_sequences=True), L.TimeDistributed(L.Dense(2)),
            L.Bidirectional(L.SimpleRNN(2), merge_mode="sum"), L.Dense(1)]),
    }


@pytest.mark.parametrize("name", ["mlp", "notes_cnn", "strided", "conv1d", "functional",
                                  "notes_lstm", "recurrent"])
def test_counts_and_shapes_match_keras(name):
    ours, theirs = _zoo(sj)[name], _zoo(keras)[name]
    assert ours.count_params() == theirs.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in theirs.trainable_weights)
    assert sum(w.size for w in ours.trainable_weights) == trainable
    our_layers = [layer for layer in ours.layers if type(layer).__name__ != "InputLayer"]
    their_layers = [layer for layer in theirs.layers if type(layer).__name__ != "InputLayer"]
    assert [type(a).__name__ for a in our_layers] == [type(b).__name__ for b in their_layers]
    for a, b in zip(our_layers, their_layers):
        assert a.count_params() == b.count_params(), a.name
        assert tuple(a.output_shape) == tuple(b.output.shape), a.name


def test_summary_table_prints_keras_columns_and_totals(capsys):
    model = _zoo(sj)["notes_cnn"]
    model.summary()
    text = capsys.readouterr().out
    for header in ("Layer (type)", "Output Shape", "Param #"):
        assert header in text
    assert "(None, 28, 28, 32)" in text and "conv2d" in text and "(Conv2D)" in text
    # BN: 4 per channel, 2 of them non-trainable: (32 + 64) * 2 non-trainable
    assert f"Non-trainable params: {2 * (32 + 64)} " in text
    assert f"Total params: {model.count_params()} " in text
    assert model.count_params() == _zoo(keras)["notes_cnn"].count_params()


def test_unbuilt_sequential_shows_unbuilt_rows(capsys):
    model = sj.Sequential([layers.Dense(4), layers.Dense(2)])
    model.summary()
    assert "0 (unbuilt)" in capsys.readouterr().out
    model(np.zeros((1, 3), np.float32))
    assert model.count_params() == (3 + 1) * 4 + (4 + 1) * 2


def test_lstm_of_the_notes_has_150600_parameters(capsys):
    model = _zoo(sj)["notes_lstm"]
    model.summary()
    assert model.count_params() == (150 + 100 + 1) * 150 * 4 == 150600
    assert "150600" in capsys.readouterr().out
