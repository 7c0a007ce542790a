"""ONNX export of SimpleRNN, LSTM, GRU and Bidirectional (ONNX's own recurrences), with
masks, checked in onnxruntime against predict."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.errors import ArgumentError
from tests.export.onnx_helpers import check_export, normal, randomize


@pytest.fixture
def rng():
    return np.random.default_rng(2)


def test_stacked_recurrences(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((6, 3)),
        L.LSTM(4, return_sequences=True),
        L.GRU(5, return_sequences=True),  # reset_after=True: linear_before_reset
        L.GRU(3, reset_after=False, return_sequences=True, recurrent_activation="hard_sigmoid"),
        L.SimpleRNN(4, activation="relu", return_sequences=True),
        L.LSTM(3, activation="linear", use_bias=False),
        L.Dense(2),
    ], name="stacked"), rng)
    check_export(model, tmp_path, normal(rng, 6, 3))


@pytest.mark.parametrize("kind", [L.SimpleRNN, L.LSTM, L.GRU])
def test_go_backwards_and_states(rng, tmp_path, kind):
    x = sj.Input((5, 3), name="x")
    outputs = [kind(4, go_backwards=True, return_sequences=True)(x),
               kind(4, go_backwards=True)(x),
               *kind(3, return_sequences=True, return_state=True)(x)]
    model = randomize(sj.Model(x, outputs, name=f"states_{kind.__name__}"), rng)
    check_export(model, tmp_path, normal(rng, 5, 3))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional(rng, tmp_path, merge_mode):
    x = sj.Input((5, 3), name="x")
    y = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode=merge_mode)(x)
    if merge_mode is None:
        y = L.Concatenate()(y)
    outputs = [y, *L.Bidirectional(L.GRU(3, return_state=True), merge_mode=merge_mode)(x)]
    model = randomize(sj.Model(x, outputs, name="bidirectional"), rng)
    check_export(model, tmp_path, normal(rng, 5, 3))


def _right_padded_tokens(rng, batch, steps=7, vocab=9):
    tokens = rng.integers(1, vocab, (batch, steps)).astype(np.int32)
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps  # one full row
    tokens[np.arange(steps) >= lengths[:, None]] = 0
    return tokens


def test_embedding_mask_into_recurrences(rng, tmp_path):
    tokens = sj.Input((7,), dtype="int32", name="tokens")
    h = L.Embedding(9, 4, mask_zero=True)(tokens)
    h = L.Bidirectional(L.GRU(3, return_sequences=True))(h)
    h = L.Dropout(0.1)(h)  # passes the mask on
    last = L.LSTM(4, go_backwards=True)(h)
    seq = L.SimpleRNN(2, return_sequences=True, go_backwards=True)(h)
    model = randomize(sj.Model(tokens, [last, seq], name="masked"), rng)
    check_export(model, tmp_path, lambda n: [_right_padded_tokens(rng, n)])


def test_masking_layer(rng, tmp_path):
    def inputs(batch):
        x = rng.standard_normal((batch, 6, 3)).astype(np.float32)
        lengths = rng.integers(1, 7, batch)
        x[np.arange(6)[None, :] >= lengths[:, None]] = 0.0
        return [x]

    model = randomize(sj.Sequential([
        L.Input((6, 3)), L.Masking(0.0),
        L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum"), L.GRU(2),
    ], name="masking"), rng)
    check_export(model, tmp_path, inputs)


def test_refused_recurrent_cases(tmp_path):
    model = sj.Sequential([L.Input((4, 3), batch_size=2), L.GRU(2, stateful=True, name="st")])
    with pytest.raises(ArgumentError, match=r"'st' \(GRU\).*stateful"):
        model.export(tmp_path / "m.onnx")
    model = sj.Sequential([L.Input((4, 3)), L.SimpleRNN(2, activation="sigmoid", return_sequences=True),
                           L.RNN(L.SimpleRNNCell(2), name="generic")])
    with pytest.raises(ArgumentError, match=r"'generic' \(RNN\)"):
        model.export(tmp_path / "m.onnx")


def test_a_mask_into_a_merge_is_refused(tmp_path):
    tokens = sj.Input((5,), dtype="int32")
    h = L.Embedding(9, 4, mask_zero=True)(tokens)
    model = sj.Model(tokens, L.Add(name="joined")([h, h]))
    with pytest.raises(ArgumentError, match=r"'joined' \(Add\).*mask"):
        model.export(tmp_path / "m.onnx")
