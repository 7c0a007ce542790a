"""Recurrent layers, Embedding, Masking and the wrappers against Keras 3, plus masks and state."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()

RNN_CASES = [
    ("SimpleRNN", dict(units=4)),
    ("SimpleRNN", dict(units=3, return_sequences=True, activation="relu")),
    ("LSTM", dict(units=4)),
    ("LSTM", dict(units=5, return_sequences=True, go_backwards=True)),
    ("LSTM", dict(units=3, use_bias=False, unit_forget_bias=False)),
    ("GRU", dict(units=4)),
    ("GRU", dict(units=4, reset_after=False, return_sequences=True)),
    ("GRU", dict(units=2, go_backwards=True)),
]


def _run_keras(layer, x, **kwargs):
    out = layer(x, **kwargs)
    return [o.detach().numpy() for o in out] if isinstance(out, (list, tuple)) else \
        out.detach().numpy()


@pytest.mark.parametrize("kind, config", RNN_CASES, ids=range(len(RNN_CASES)))
def test_outputs_and_counts_match_keras(kind, config, rng):
    x = rng.standard_normal((3, 7, 6)).astype(np.float32)
    theirs = getattr(keras.layers, kind)(**config, return_state=True)
    ours = getattr(layers, kind)(**config, return_state=True)
    expected = _run_keras(theirs, x)
    ours(x)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())
    got = ours(x)
    assert len(got) == len(expected)  # [output, h] or [output, h, c]
    for mine, ref in zip(got, expected):
        np.testing.assert_allclose(mine.numpy(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("units, d", [(150, 100), (7, 3), (1, 1)])
def test_parameter_formulas(units, d):
    x = layers.Input((5, d))
    assert layers.LSTM(units)(x) is not None
    counts = {
        "SimpleRNN": (units + d + 1) * units,
        "LSTM": 4 * (units + d + 1) * units,
        "GRU": 3 * (units * (units + d) + 2 * units),
    }
    for kind, expected in counts.items():
        model = sj.Sequential([layers.Input((5, d)), getattr(layers, kind)(units)])
        assert model.count_params() == expected
    gru = sj.Sequential([layers.Input((5, d)), layers.GRU(units, reset_after=False)])
    assert gru.count_params() == 3 * (units * (units + d) + units)
    if (units, d) == (150, 100):
        assert counts["LSTM"] == 150600  # the notes' example


def test_lstm_forget_bias_starts_at_one():
    lstm = layers.LSTM(3)
    lstm(np.zeros((1, 2, 4), np.float32))
    np.testing.assert_array_equal(lstm.bias.numpy(), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_weights_and_gradients_are_c_contiguous(kind, rng):
    """The orthogonal recurrent kernel of a wide layer comes from a transpose; stored and
    updated as such, Adam's in-place passes over it ran ~20x slower (mixed memory orders)."""
    model = sj.Sequential([layers.Input((5, 3)), getattr(layers, kind)(8), layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(rng.standard_normal((4, 5, 3)).astype("float32"), np.zeros((4, 2)))
    for w in model.trainable_weights:
        assert w.data.flags.c_contiguous, w.name
        assert w.grad.flags.c_contiguous, w.name


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_masked_batch_equals_each_sequence_alone(kind, rng):
    lengths = [7, 3, 5, 1]
    x = np.zeros((4, 7, 3), np.float32)
    for i, n in enumerate(lengths):
        x[i, :n] = rng.standard_normal((n, 3))
    model_layer = getattr(layers, kind)(4, return_sequences=True, return_state=True)
    inputs = layers.Input((7, 3))
    masked = layers.Masking()(inputs)
    model = sj.Model(inputs, model_layer(masked))
    outputs = model.predict(x, verbose=0)
    for i, n in enumerate(lengths):
        alone = model_layer(x[i:i + 1, :n])
        np.testing.assert_allclose(outputs[0][i, :n], alone[0].numpy()[0], rtol=1e-5, atol=1e-6)
        assert np.all(outputs[0][i, n:] == 0)  # zero output at masked steps
        for state, alone_state in zip(outputs[1:], alone[1:]):  # state carried over padding
            np.testing.assert_allclose(state[i], alone_state.numpy()[0], rtol=1e-5, atol=1e-6)


def test_embedding_mask_zero_matches_keras_lstm(rng):
    ids = rng.integers(1, 10, (3, 6))
    ids[0, 4:] = 0
    ids[2, 2:] = 0

    def build(lib):
        inputs = lib.layers.Input((6,), dtype="int32")
        h = lib.layers.Embedding(10, 4, mask_zero=True)(inputs)
        h = lib.layers.Bidirectional(lib.layers.LSTM(3))(h)
        return lib.Model(inputs, lib.layers.Dense(2)(h))

    theirs, ours = build(keras), build(sj)
    ours.set_weights(theirs.get_weights())
    expected = theirs.predict(ids, verbose=0)
    np.testing.assert_allclose(ours.predict(ids, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_matches_keras(merge_mode, rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    theirs = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True),
                                        merge_mode=merge_mode)
    ours = layers.Bidirectional(layers.GRU(4, return_sequences=True), merge_mode=merge_mode)
    expected = _run_keras(theirs, x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    assert ours.count_params() == theirs.count_params()
    got = ours(x)
    got = [g.numpy() for g in got] if isinstance(got, list) else got.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_time_distributed_dense_matches_keras(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    theirs = keras.layers.TimeDistributed(keras.layers.Dense(5))
    ours = layers.TimeDistributed(layers.Dense(5))
    expected = _run_keras(theirs, x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_stateful_layer_carries_state_between_batches(rng):
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    whole = layers.LSTM(4, return_sequences=True)
    expected = whole(x).numpy()
    stateful = layers.LSTM(4, return_sequences=True, stateful=True)
    stateful(x[:, :3])
    stateful.set_weights(whole.get_weights())
    stateful.reset_states()
    first, second = stateful(x[:, :3]).numpy(), stateful(x[:, 3:]).numpy()
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), expected, rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ValueError, match="holds states for batch size 2, got a batch of 3"):
        stateful(np.zeros((3, 2, 3), np.float32))
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :3]).numpy(), first, rtol=1e-6)


def test_initial_state_is_used_and_differentiable(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    h0 = sj.Tensor(rng.standard_normal((2, 5)).astype(np.float32), requires_grad=True)
    c0 = sj.Tensor(rng.standard_normal((2, 5)).astype(np.float32), requires_grad=True)
    lstm = layers.LSTM(5)
    with_state = lstm(x, initial_state=[h0, c0])
    assert not np.allclose(with_state.numpy(), lstm(x).numpy())
    with_state.sum().backward()
    assert h0.grad is not None and np.abs(h0.grad).sum() > 0 and c0.grad is not None


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_recurrent_dropout_path_equals_the_fused_op_without_dropout(kind, rng):
    """The unrolled step loop (used for recurrent_dropout) computes the same recurrence."""
    x = sj.Tensor(rng.standard_normal((3, 5, 4)), requires_grad=True)
    layer = getattr(layers, kind)(3, return_sequences=True, dtype="float64")
    fused = layer(x)
    layer.recurrent_dropout = 0.0
    states = layer._initial_states(3, None)
    unrolled = layer._unrolled(x, states, None)[0]
    np.testing.assert_allclose(unrolled.numpy(), fused.numpy(), rtol=1e-12)
    grads = []
    for out in (fused, unrolled):
        x.grad = None
        for w in layer.weights:
            w.grad = None
        (out * out).sum().backward()
        grads.append([x.grad.copy()] + [w.grad.copy() for w in layer.weights])
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dropout_options_train_and_change_outputs_only_in_training(rng):
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    layer = layers.LSTM(5, dropout=0.3, recurrent_dropout=0.3)
    inference = layer(x).numpy()
    np.testing.assert_array_equal(layer(x).numpy(), inference)
    assert not np.allclose(layer(x, training=True).numpy(), inference)


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"LSTM 'l': expected input of rank 3 \(batch, time, "
                                         r"features\), got shape \(None, 8\)"):
        layers.LSTM(3, name="l")(layers.Input((8,)))
    with pytest.raises(ValueError, match="GRU 'g': units must be a positive integer"):
        layers.GRU(0, name="g")
    with pytest.raises(ValueError, match="Embedding 'e': ids must be in \\[0, 5\\), got 7"):
        layers.Embedding(5, 2, name="e")(np.array([[1, 7]]))
    with pytest.raises(ValueError, match="Bidirectional 'b': merge_mode must be"):
        layers.Bidirectional(layers.LSTM(2), merge_mode="max", name="b")
