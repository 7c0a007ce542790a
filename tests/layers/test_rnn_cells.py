"""RNN(cell), the cells and StackedRNNCells against Keras 3 with Keras's weights copied."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()

CELLS = ["SimpleRNNCell", "LSTMCell", "GRUCell"]


def _numpy(out):
    if isinstance(out, (list, tuple)):
        return [_numpy(o) for o in out]
    if isinstance(out, sj.Tensor):
        return out.numpy()
    return out.detach().cpu().numpy() if hasattr(out, "detach") else np.asarray(out)


def _flat(values):
    if isinstance(values, (list, tuple)):
        return [leaf for v in values for leaf in _flat(v)]
    return [values]


def _assert_close(got, expected, rtol=1e-5, atol=1e-6):
    got, expected = _flat(_numpy(got)), _flat(_numpy(expected))
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def _pair(make, x, **call):
    """(ours, theirs) built on x, Keras's weights copied into ours, same weight shapes."""
    theirs, ours = make(keras), make(sj)
    theirs(x, **call)
    ours(x, **call)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _loop_only(layer):
    """Force the generic time loop (no fused op) on this layer."""
    layer._fused = lambda *args: None
    return layer


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cell_in_rnn_matches_keras_fused_and_loop(kind, return_sequences, go_backwards, rng):
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)

    def make(lib):
        return lib.layers.RNN(getattr(lib.layers, kind)(6), return_sequences=return_sequences,
                              return_state=True, go_backwards=go_backwards)

    ours, theirs = _pair(make, x)
    expected = theirs(x)
    _assert_close(ours(x), expected)
    _assert_close(_loop_only(ours)(x), expected)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_loop_path_with_other_activations_matches_keras(kind, rng):
    """Activations the fused op does not compute (softsign) run the step loop."""
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    ours, theirs = _pair(lambda lib: lib.layers.RNN(getattr(lib.layers, kind)(
        5, activation="softsign", recurrent_activation="relu"), return_sequences=True), x)
    assert ours._fused(ours._to_tensor(x), [None, None], None, False) is None
    _assert_close(ours(x), theirs(x))


def test_gru_cell_reset_before_matches_keras(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    ours, theirs = _pair(lambda lib: lib.layers.RNN(lib.layers.GRUCell(
        5, reset_after=False), return_sequences=True), x)
    assert ours.cell.bias.shape == (15,)
    _assert_close(ours(x), theirs(x))
    _assert_close(_loop_only(ours)(x), theirs(x))


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_masks_match_keras(kind, zero_output_for_mask, rng):
    ids = rng.integers(1, 9, (4, 6))
    ids[0, 3:] = 0
    ids[2, :2] = 0  # left padding too
    ids[3, 1:] = 0

    def make(lib):
        inputs = lib.layers.Input((6,), dtype="int32")
        h = lib.layers.Embedding(9, 3, mask_zero=True)(inputs)
        h = lib.layers.RNN(getattr(lib.layers, kind)(4), return_sequences=True,
                           zero_output_for_mask=zero_output_for_mask)(h)
        last = lib.layers.RNN(getattr(lib.layers, kind)(2), return_state=True,
                              go_backwards=True)(h)
        return lib.Model(inputs, last)

    theirs, ours = make(keras), make(sj)
    ours.set_weights(theirs.get_weights())
    expected = theirs.predict(ids, verbose=0)
    _assert_close(ours.predict(ids, verbose=0), expected)
    for layer in ours.layers:
        if isinstance(layer, layers.RNN):
            _loop_only(layer)
    _assert_close(ours.predict(ids, verbose=0), expected)


@pytest.mark.parametrize("kind", CELLS)
def test_initial_state_matches_keras(kind, rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    count = 2 if kind == "LSTMCell" else 1
    states = [rng.standard_normal((2, 5)).astype(np.float32) for _ in range(count)]
    ours, theirs = _pair(lambda lib: lib.layers.RNN(getattr(lib.layers, kind)(5),
                                                     return_state=True), x)
    expected = theirs(x, initial_state=states)
    _assert_close(ours(x, initial_state=states), expected)
    _assert_close(_loop_only(ours)(x, initial_state=states), expected)


def test_stacked_cells_match_keras(rng):
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)

    def make(lib):
        cells = [lib.layers.LSTMCell(6), lib.layers.GRUCell(5), lib.layers.SimpleRNNCell(3)]
        return lib.layers.RNN(cells, return_sequences=True, return_state=True)

    ours, theirs = _pair(make, x)
    assert isinstance(ours.cell, layers.StackedRNNCells)
    got, expected = ours(x), theirs(x)
    assert len(got) == len(expected) == 4  # output, [h, c], h, h
    _assert_close(got, expected)
    # the same stack written as StackedRNNCells, with explicit nested initial states
    states = [[np.ones((3, 6), np.float32), np.zeros((3, 6), np.float32)],
              np.ones((3, 5), np.float32), np.zeros((3, 3), np.float32)]
    _assert_close(ours(x, initial_state=states), theirs(x, initial_state=states))


def test_rnn_lstm_cell_equals_our_lstm_layer_values_and_gradients(rng):
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    fused, loop = layers.RNN(layers.LSTMCell(5), return_sequences=True), None
    lstm = layers.LSTM(5, return_sequences=True)
    fused(x)
    lstm(x)
    lstm.set_weights(fused.get_weights())
    loop = _loop_only(layers.RNN(layers.LSTMCell(5), return_sequences=True))
    loop(x)
    loop.set_weights(fused.get_weights())
    upstream = rng.standard_normal((3, 6, 5)).astype(np.float32)
    grads = []
    for layer in (fused, loop, lstm):
        xt = sj.Tensor(x, requires_grad=True)
        y = layer(xt)
        y.backward(upstream)
        grads.append([xt.grad] + [w.grad.copy() for w in layer.weights])
        for w in layer.weights:
            w.grad = None
        np.testing.assert_allclose(y.numpy(), lstm(x).numpy(), rtol=1e-5, atol=1e-6)
    for other in grads[1:]:
        for g, ref in zip(other, grads[0]):
            np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", CELLS + ["stacked"])
def test_one_sgd_step_matches_keras(kind, rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)

    def make(lib):
        cell = ([lib.layers.LSTMCell(4), lib.layers.GRUCell(3)] if kind == "stacked"
                else getattr(lib.layers, kind)(4))
        model = lib.Sequential([lib.layers.Input((5, 3)), lib.layers.RNN(cell),
                                lib.layers.Dense(2)])
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        return model

    theirs, ours = make(keras), make(sj)
    ours.set_weights(theirs.get_weights())
    loss_theirs = float(theirs.train_on_batch(x, y))
    loss_ours = float(ours.train_on_batch(x, y))
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# ----- user-written cells (the guide's patterns) -----------------------------------------------
def minimal_rnn_cell(lib):
    """The guide's MinimalRNNCell, written against lib (keras or shenjing)."""

    class MinimalRNNCell(lib.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer="glorot_uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="orthogonal",
                                                    name="recurrent_kernel")

        def call(self, inputs, states):
            prev_output = states[0]
            h = lib.ops.matmul(inputs, self.kernel)
            output = h + lib.ops.matmul(prev_output, self.recurrent_kernel)
            return output, [output]

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    return MinimalRNNCell


def test_guide_minimal_cell_single_and_stacked_matches_keras(rng):
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    for stacked in (False, True):
        def make(lib, stacked=stacked):
            cell_class = minimal_rnn_cell(lib)
            cell = [cell_class(6), cell_class(3)] if stacked else cell_class(6)
            return lib.layers.RNN(cell, return_sequences=True)

        ours, theirs = _pair(make, x)
        _assert_close(ours(x), theirs(x))


def nested_state_cell(lib):
    """A cell with states [s1 (u1,), [s2 (u2,), s3 (u3,)]] and its own get_initial_state."""

    class NestedStateCell(lib.layers.Layer):
        def __init__(self, u1, u2, u3, **kwargs):
            super().__init__(**kwargs)
            self.u1, self.u2, self.u3 = u1, u2, u3
            self.state_size = [u1, [u2, u3]]
            self.output_size = u1

        def build(self, input_shape):
            self.k1 = self.add_weight(shape=(input_shape[-1], self.u1), name="k1",
                                      initializer="glorot_uniform")
            self.k2 = self.add_weight(shape=(self.u1, self.u2), name="k2",
                                      initializer="glorot_uniform")
            self.k3 = self.add_weight(shape=(self.u2, self.u3), name="k3",
                                      initializer="glorot_uniform")

        def get_initial_state(self, batch_size=None):
            zeros = np.zeros
            return [zeros((batch_size, self.u1), "float32"),
                    [zeros((batch_size, self.u2), "float32"),
                     zeros((batch_size, self.u3), "float32")]]

        def call(self, inputs, states):
            s1, (s2, s3) = states
            s1 = lib.ops.tanh(lib.ops.matmul(inputs, self.k1) + s1)
            s2 = s2 + lib.ops.matmul(s1, self.k2)
            s3 = s3 * 0.5 + lib.ops.matmul(s2, self.k3)
            return s1, [s1, [s2, s3]]

    return NestedStateCell


def test_nested_state_cell_matches_a_numpy_loop(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    rnn = layers.RNN(nested_state_cell(sj)(5, 4, 2), return_sequences=True, return_state=True)
    output, s1, (s2, s3) = rnn(x)
    k1, k2, k3 = (w.astype(np.float64) for w in rnn.get_weights())
    r1, r2, r3, outputs = np.zeros((2, 5)), np.zeros((2, 4)), np.zeros((2, 2)), []
    for t in range(4):
        r1 = np.tanh(x[:, t] @ k1 + r1)
        r2 = r2 + r1 @ k2
        r3 = r3 * 0.5 + r2 @ k3
        outputs.append(r1)
    for got, want in ((output, np.stack(outputs, 1)), (s1, r1), (s2, r2), (s3, r3)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    # nested initial states: flat or nested lists are both accepted
    start = [np.ones((2, 5), np.float32), [np.ones((2, 4), np.float32),
                                           np.ones((2, 2), np.float32)]]
    nested = rnn(x, initial_state=start)
    flat = rnn(x, initial_state=[start[0], *start[1]])
    _assert_close(nested, flat, rtol=0, atol=0)  # the same computation


# ----- configs, saving, errors ----------------------------------------------------------------
def test_config_round_trip_and_save_load(tmp_path, rng):
    cell_class = minimal_rnn_cell(sj)
    inputs = layers.Input((5, 3))
    h = layers.RNN([layers.LSTMCell(4, unit_forget_bias=False), layers.GRUCell(
        3, reset_after=False)], return_sequences=True, go_backwards=True)(inputs)
    h = layers.RNN(layers.SimpleRNNCell(3, activation="relu"), return_sequences=True)(h)
    h = layers.RNN(cell_class(2), zero_output_for_mask=True)(h)
    model = sj.Model(inputs, layers.Dense(1)(h))
    for layer in model.layers[1:-1]:
        clone = layers.RNN.from_config(layer.get_config()) if not isinstance(
            layer.cell, cell_class) else None
        if clone is not None:
            config, again = layer.get_config(), clone.get_config()
            assert again["cell"]["class_name"] == config["cell"]["class_name"]
            assert {k: v for k, v in again.items() if k not in ("cell", "name")} == {
                k: v for k, v in config.items() if k not in ("cell", "name")}
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    with pytest.raises(ValueError, match="MinimalRNNCell"):
        sj.load_model(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing",
                           custom_objects={"MinimalRNNCell": cell_class})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [w.name for w in loaded.weights] == [w.name for w in model.weights]


def test_cell_weights_are_named_under_the_rnn_and_two_rnns_save_apart(tmp_path, rng):
    model = sj.Sequential([layers.Input((4, 3)),
                           layers.RNN(layers.GRUCell(3, name="cell"), return_sequences=True),
                           layers.RNN(layers.GRUCell(2, name="cell"))])
    names = [w.name for w in model.weights]
    assert len(set(names)) == len(names) == 6
    assert names[0].endswith("/cell/kernel")
    model.save(tmp_path / "m.shenjing")
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.shenjing").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_dropout_in_training_only_and_trains(rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    plain = layers.RNN(layers.LSTMCell(4))
    dropped = layers.RNN(layers.LSTMCell(4, dropout=0.5, recurrent_dropout=0.5, seed=1))
    plain(x)
    dropped(x)
    dropped.set_weights(plain.get_weights())
    np.testing.assert_allclose(dropped(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(dropped(x, training=True).numpy(), plain(x).numpy())
    model = sj.Sequential([layers.Input((5, 3)), dropped, layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    before = [w.copy() for w in dropped.get_weights()]
    model.train_on_batch(x, np.ones((4, 1), np.float32))
    assert all(not np.array_equal(a, b) for a, b in zip(before, dropped.get_weights()))


def test_stateful_carries_states_between_calls(rng):
    x = rng.standard_normal((2, 6, 3)).astype(np.float32)
    whole = layers.RNN(layers.GRUCell(4), return_sequences=True)
    halves = layers.RNN(layers.GRUCell(4), return_sequences=True, stateful=True)
    whole(x)
    halves(x[:, :3])
    halves.reset_states()
    halves.set_weights(whole.get_weights())
    got = np.concatenate([halves(x[:, :3]).numpy(), halves(x[:, 3:]).numpy()], axis=1)
    np.testing.assert_allclose(got, whole(x).numpy(), rtol=1e-5, atol=1e-6)
    halves.reset_states()
    np.testing.assert_allclose(halves(x[:, :3]).numpy(), whole(x[:, :3]).numpy(), rtol=1e-5)


def test_functional_graph_and_summary(rng):
    inputs = layers.Input((None, 3))
    rnn = layers.RNN(layers.LSTMCell(4), return_state=True)
    assert len(rnn.state_names) == 2  # what Bidirectional counts
    output, h, c = rnn(inputs)
    model = sj.Model(inputs, [output, h, c])
    assert model.count_params() == 4 * (3 + 4 + 1) * 4
    got = model.predict(rng.standard_normal((2, 5, 3)).astype(np.float32), verbose=0)
    np.testing.assert_array_equal(got[0], got[1])


def test_errors():
    with pytest.raises(TypeError, match=r"cell must be an RNN cell with a state_size"):
        layers.RNN(layers.Dense(3))
    with pytest.raises(TypeError, match=r"cells\[1\] must be an RNN cell"):
        layers.RNN([layers.LSTMCell(3), object()])
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        layers.LSTMCell(0)
    with pytest.raises(ValueError, match="dropout"):
        layers.GRUCell(3, dropout=1.5)
    rnn = layers.RNN(layers.LSTMCell(3), name="seq")
    with pytest.raises(ValueError, match=r"RNN 'seq': expected input of rank 3 or more"):
        rnn(np.zeros((2, 3), np.float32))
    x = np.zeros((2, 4, 5), np.float32)
    with pytest.raises(ValueError, match=r"RNN 'seq': expected 2 initial state tensors"):
        rnn(x, initial_state=[np.zeros((2, 3), np.float32)])
    with pytest.raises(ValueError, match=r"initial state of shape \(2, 4\) where the cell"):
        rnn(x, initial_state=[np.zeros((2, 4), np.float32)] * 2)
    with pytest.raises(ValueError, match="last input dim was 5 when built, got 2"):
        rnn(np.zeros((2, 4, 2), np.float32))
    with pytest.raises(ValueError, match="reset_states"):
        rnn.reset_states()
    stacked = layers.RNN([layers.LSTMCell(2), layers.LSTMCell(2)], return_state=True)
    with pytest.raises(ValueError, match="nested states"):
        stacked(layers.Input((3, 2)))


def test_a_cell_steps_on_its_own(rng):
    """Called without states, a cell starts from zeros (as torch's cells); with states it
    takes one step of its RNN."""
    x = rng.standard_normal((3, 4)).astype(np.float32)
    for cell in (layers.LSTMCell(2), layers.GRUCell(2), layers.SimpleRNNCell(2),
                 layers.StackedRNNCells([layers.LSTMCell(3), layers.GRUCell(2)])):
        rnn = layers.RNN(cell)
        expected = rnn(x[:, None, :]).numpy()
        output, _ = cell(x)
        np.testing.assert_allclose(output.numpy(), expected, rtol=1e-5, atol=1e-6)
        output_again, _ = cell(x, cell.get_initial_state(3))
        np.testing.assert_allclose(output_again.numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected 2 state tensor\(s\), got 1"):
        layers.LSTMCell(2)(x, [np.zeros((3, 2), np.float32)])
