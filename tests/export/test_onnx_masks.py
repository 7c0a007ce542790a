"""ONNX export of masked recurrences for any mask: left-padded (pad_sequences' default),
right-padded, gapped, all-masked and unmasked rows, checked in onnxruntime against predict on
batches of 1 and 7, and against Keras 3 itself with its weights copied."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from tests.export.onnx_helpers import check_export, randomize, run_onnx

STEPS, FEATURES, VOCAB = 7, 3, 9
ROWS = ["left", "right", "gaps", "all", "none", "left", "gaps"]


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def masks(rng, batch, rows=None):
    """(batch, STEPS) bool, True at kept steps: one row of each kind (a lone row is left-padded,
    as pad_sequences gives by default)."""
    rows = rows or (["left"] if batch == 1 else ROWS)
    keep = np.ones((batch, STEPS), bool)
    for i in range(batch):
        kind, length = rows[i % len(rows)], int(rng.integers(2, STEPS))
        if kind == "left":
            keep[i, :STEPS - length] = False
        elif kind == "right":
            keep[i, length:] = False
        elif kind == "gaps":  # kept steps on both sides of masked ones, and a masked end
            keep[i] = [True, False, False, True, True, False, True][:STEPS]
            keep[i] = np.roll(keep[i], i) if i % 2 else keep[i]
        elif kind == "all":
            keep[i] = False
    return keep


def zero_rows(rng):
    """Inputs for Masking(0.0): random rows, zero rows at the masked steps."""
    def make(batch):
        x = rng.standard_normal((batch, STEPS, FEATURES)).astype(np.float32)
        x[~masks(rng, batch)] = 0.0
        return [x]
    return make


def tokens(rng):
    """Inputs for Embedding(mask_zero=True): token 0 at the masked steps."""
    def make(batch):
        t = rng.integers(1, VOCAB, (batch, STEPS)).astype(np.int32)
        t[~masks(rng, batch)] = 0
        return [t]
    return make


def test_mask_rows_cover_every_kind(rng):
    keep = masks(rng, 7)
    assert not keep[3].any() and keep[4].all()
    assert not keep[0, 0] and keep[0, -1]  # left-padded
    assert keep[1, 0] and not keep[1, -1]  # right-padded
    gaps = keep[2]
    first, last = np.flatnonzero(gaps)[[0, -1]]
    assert not gaps[first:last + 1].all()  # a masked step between kept ones


@pytest.mark.parametrize("kind", [L.SimpleRNN, L.LSTM, L.GRU])
def test_any_mask_each_recurrence(rng, tmp_path, kind):
    x = sj.Input((STEPS, FEATURES), name="x")
    h = L.Masking(0.0)(x)
    outputs = [kind(4, return_sequences=True)(h), kind(4)(h),
               kind(4, go_backwards=True, return_sequences=True)(h),
               kind(4, go_backwards=True)(h),
               *kind(3, return_sequences=True, return_state=True)(h),
               *kind(2, go_backwards=True, return_state=True)(h)]
    model = randomize(sj.Model(x, outputs, name=f"masked_{kind.__name__}"), rng)
    check_export(model, tmp_path, zero_rows(rng))


@pytest.mark.parametrize("kind", [L.SimpleRNN, L.LSTM, L.GRU])
def test_any_mask_repeating_outputs(rng, tmp_path, kind):
    # zero_output_for_mask=False (Keras's default): a masked step repeats the output of the last
    # kept step processed before it (0 if none), reading forwards or backwards
    x = sj.Input((STEPS, FEATURES), name="x")
    h = L.Masking(0.0)(x)
    options = {"return_sequences": True, "zero_output_for_mask": False}
    outputs = [kind(4, **options)(h), kind(3, go_backwards=True, **options)(h),
               L.Bidirectional(kind(2, **options), merge_mode=None)(h)[1],
               *kind(2, return_state=True, **options)(h)]
    model = randomize(sj.Model(x, outputs, name=f"repeats_{kind.__name__}"), rng)
    check_export(model, tmp_path, zero_rows(rng))


def test_any_mask_gru_reset_before_and_no_bias(rng, tmp_path):
    x = sj.Input((STEPS,), dtype="int32", name="tokens")
    h = L.Embedding(VOCAB, 4, mask_zero=True)(x)
    outputs = [L.GRU(3, reset_after=False, return_sequences=True)(h),
               L.LSTM(3, use_bias=False, go_backwards=True, return_sequences=True)(h),
               L.LSTM(3, zero_output_for_mask=False)(h)]  # the last state is the same
    model = randomize(sj.Model(x, outputs, name="gru_variants"), rng)
    check_export(model, tmp_path, tokens(rng))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_any_mask_bidirectional(rng, tmp_path, merge_mode):
    x = sj.Input((STEPS,), dtype="int32", name="tokens")
    h = L.Embedding(VOCAB, 4, mask_zero=True)(x)
    outputs = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=merge_mode)(h)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    outputs += L.Bidirectional(L.GRU(2, return_state=True), merge_mode=merge_mode)(h)
    outputs += [L.Bidirectional(L.SimpleRNN(2))(h)]
    model = randomize(sj.Model(x, outputs, name="bidirectional"), rng)
    check_export(model, tmp_path, tokens(rng))


def test_any_mask_stacked(rng, tmp_path):
    # the mask passes on, unchanged, through every return_sequences layer (also go_backwards)
    model = randomize(sj.Sequential([
        L.Input((STEPS, FEATURES)), L.Masking(0.0),
        L.LSTM(4, return_sequences=True),
        L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"),
        L.Dropout(0.2),
        L.SimpleRNN(4, go_backwards=True, return_sequences=True),
        L.GRU(3, go_backwards=True, return_sequences=True),
        L.LSTM(2),
        L.Dense(2),
    ], name="stacked"), rng)
    check_export(model, tmp_path, zero_rows(rng))


def test_masked_outputs_are_the_recurrence_over_kept_steps(rng, tmp_path):
    """Independent of predict: a gapped row's outputs equal the same layer run unmasked over
    its kept steps alone, put back at their steps."""
    x = sj.Input((None, FEATURES), name="x")  # time unknown in the graph too
    rnn = L.LSTM(3, return_sequences=True, return_state=True)
    model = randomize(sj.Model(x, rnn(L.Masking(0.0)(x)), name="kept"), rng)
    model.export(tmp_path / "m.onnx", format="onnx")
    keep = masks(rng, 7)
    data = rng.standard_normal((7, STEPS, FEATURES)).astype(np.float32)
    data[~keep] = 0.0
    got, _ = run_onnx(tmp_path / "m.onnx", [data])
    plain = sj.Model(x, rnn(x))
    for i in range(7):
        kept = np.flatnonzero(keep[i])
        want = np.zeros((STEPS, 3), np.float32)
        last = [np.zeros(3, np.float32)] * 2
        if kept.size:
            seq, h, c = plain.predict(data[i:i + 1, kept], verbose=0)
            want[kept], last = seq[0], [h[0], c[0]]
        np.testing.assert_allclose(got[0][i], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[1][i], last[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got[2][i], last[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [["left"], ROWS])
def test_embedding_lstm_matches_keras(tmp_path, rows):
    """Left-padded (pad_sequences' default), then every kind of row."""
    from tests.keras_oracle import import_keras

    keras = import_keras()
    rng = np.random.default_rng(6)

    def build(lib, inp):
        x = inp((STEPS,), dtype="int32")
        h = lib.Embedding(VOCAB, 4, mask_zero=True)(x)
        seq = lib.LSTM(3, return_sequences=True, zero_output_for_mask=True)(h)
        back = lib.Bidirectional(lib.GRU(2, return_sequences=True))(seq)
        repeats = {"return_sequences": True, "zero_output_for_mask": False}
        return x, [seq, lib.LSTM(4)(back), lib.LSTM(2, go_backwards=True)(h),
                   lib.LSTM(2, **repeats)(h), lib.GRU(3, go_backwards=True, **repeats)(h)]

    theirs = keras.Model(*build(keras.layers, keras.Input))
    ours = sj.Model(*build(L, sj.Input))
    theirs.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32)
                        for w in theirs.weights])
    ours.set_weights(theirs.get_weights())
    t = rng.integers(1, VOCAB, (7, STEPS)).astype(np.int32)
    t[~masks(rng, 7, rows)] = 0
    t[3] = 0  # one empty sequence
    ours.export(tmp_path / "m.onnx", format="onnx")
    got, _ = run_onnx(tmp_path / "m.onnx", [t])
    want = theirs.predict(t, verbose=0)
    assert len(got) == len(want) == 5
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)
