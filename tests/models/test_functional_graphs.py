"""Functional graphs as Keras 3's "The Functional API" guide writes them, against Keras 3 (torch
backend) with the same weights: symbolic call arguments, layer and model inputs/outputs,
sub-models sharing layers, nested models, models cut at an intermediate tensor."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras

keras = import_keras()
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _randomize(model, rng):
    """Keras's weights plus noise (so biases are not all zero), copied to both."""
    return [w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
            for w in model.get_weights()]


def _same_model(ours, theirs, rng, data):
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    weights = _randomize(theirs, rng)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = theirs.predict(data, verbose=0)
    got = ours.predict(data, verbose=0)
    for a, b in zip(got if isinstance(got, list) else [got],
                    expected if isinstance(expected, list) else [expected]):
        np.testing.assert_allclose(a, b, **TOL)


def _state_model(lib, kind, bidirectional=False):
    """An encoder's final states as another recurrent layer's symbolic initial_state."""
    rnn = getattr(lib.layers, kind)
    states = 2 if kind == "LSTM" else 1
    enc_in, dec_in = lib.Input((4, 3)), lib.Input((5, 2))
    if bidirectional:
        encoded = lib.layers.Bidirectional(rnn(3, return_state=True))(enc_in)
        decoder = lib.layers.Bidirectional(rnn(3, return_sequences=True))
    else:
        encoded = rnn(3, return_state=True)(enc_in)
        decoder = rnn(3, return_sequences=True)
    out = decoder(dec_in, initial_state=list(encoded[1:]))
    assert len(encoded[1:]) == states * (2 if bidirectional else 1)
    return lib.Model([enc_in, dec_in], lib.layers.Dense(2)(out))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU", "LSTM"])
def test_symbolic_initial_state_predicts_and_trains_as_keras(kind, bidirectional, rng):
    ours, theirs = _state_model(sj, kind, bidirectional), _state_model(keras, kind, bidirectional)
    assert [type(layer).__name__ for layer in ours.layers] == [
        type(layer).__name__ for layer in theirs.layers]
    data = [rng.standard_normal((3, 4, 3)).astype(np.float32),
            rng.standard_normal((3, 5, 2)).astype(np.float32)]
    _same_model(ours, theirs, rng, data)
    y = rng.standard_normal((3, 5, 2)).astype(np.float32)
    ours.compile(optimizer=sj.optimizers.SGD(0.1), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.train_on_batch(data, y)
    theirs.train_on_batch(data, y)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, expected, **TOL)


def test_symbolic_mask_argument_as_keras(rng):
    def build(lib):
        x, m = lib.Input((None, 3)), lib.Input((None,), dtype="bool")
        return lib.Model([x, m], lib.layers.LSTM(4)(x, mask=m))

    ours, theirs = build(sj), build(keras)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    data = [rng.standard_normal((2, 5, 3)).astype(np.float32), mask]
    _same_model(ours, theirs, rng, data)
    cut = ours.predict([data[0][:, :3], mask[:, :3]], verbose=0)
    np.testing.assert_allclose(ours.predict(data, verbose=0)[0], cut[0], **TOL)


def test_initial_state_of_the_wrong_size_or_count_names_the_layer():
    x, h, c = layers.Input((5, 3)), layers.Input((4,)), layers.Input((6,))
    with pytest.raises(ArgumentError, match=r"LSTM 'bad_count'.*2 initial states \(h, c\), got 1"):
        layers.LSTM(4, name="bad_count")(x, initial_state=[h])
    with pytest.raises(ArgumentError, match=r"LSTM 'bad_size'.*state c must have shape \(None, 4"):
        layers.LSTM(4, name="bad_size")(x, initial_state=[h, c])
    with pytest.raises(ArgumentError, match="given twice"):
        layers.LSTM(4)([x, h, h], initial_state=[h, h])
    with pytest.raises(ArgumentError, match=r"Bidirectional.*4 initial states"):
        layers.Bidirectional(layers.LSTM(4))(x, initial_state=[h, h])
    with pytest.raises(ArgumentError, match="symbolic"):
        layers.LSTM(4)(np.zeros((2, 5, 3), np.float32), initial_state=[h, h])


def test_layer_input_and_output_are_those_of_the_first_call():
    for lib in (sj, keras):
        dense, a, b = lib.layers.Dense(3), lib.Input((2,)), lib.Input((2,))
        first, second = dense(a), dense(b)
        assert dense.input is a and dense.output is first and second is not first
        lstm, x, h, c = lib.layers.LSTM(4), lib.Input((5, 3)), lib.Input((4,)), lib.Input((4,))
        out = lstm(x, initial_state=[h, c])
        assert lstm.input == [x, h, c] and lstm.output is out  # call arguments' tensors too
    with pytest.raises(AttributeError, match="never been called"):
        _ = layers.Dense(2).output


def test_model_input_and_output_keep_the_given_structure():
    for lib in (sj, keras):
        a, b = lib.Input((2,)), lib.Input((3,))
        y = lib.layers.Dense(1)(a)
        one = lib.Model(a, y)
        assert one.input is a and one.output is y and one.inputs == [a] and one.outputs == [y]
        listed = lib.Model([a], [y])
        assert listed.input == [a] and listed.output == [y]
        two = lib.Model([a, b], [y, b])
        assert two.input == [a, b] and two.output == [y, b]
    seq = sj.Sequential([layers.Input((4,)), layers.Dense(2)])
    assert seq.input is seq.inputs[0] and seq.output is seq.layers[-1].output
    with pytest.raises(AttributeError, match="no inputs"):
        _ = sj.Sequential([layers.Dense(2)]).input


def _conv_base(lib):
    inputs = lib.Input((8, 8, 1))
    x = lib.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = lib.layers.MaxPooling2D(2)(x)
    x = lib.layers.Conv2D(3, 3, name="c2")(x)
    return lib.Model(inputs, lib.layers.Dense(2)(lib.layers.Flatten()(x)))


def test_feature_extraction_sub_models_share_the_base_weights(rng):
    ours, theirs = _conv_base(sj), _conv_base(keras)
    x = rng.standard_normal((2, 8, 8, 1)).astype(np.float32)
    _same_model(ours, theirs, rng, x)
    for lib, base in ((sj, ours), (keras, theirs)):
        base.c1 = lib.Model(base.inputs, base.get_layer("c1").output)
        base.all = lib.Model(base.inputs, [layer.output for layer in base.layers])
    np.testing.assert_allclose(ours.c1.predict(x, verbose=0), theirs.c1.predict(x, verbose=0),
                               **TOL)
    got, expected = ours.all.predict(x, verbose=0), theirs.all.predict(x, verbose=0)
    assert len(got) == len(expected) == len(ours.layers) == 6
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, **TOL)
    assert ours.c1.layers[1].kernel is ours.get_layer("c1").kernel  # shared, not copied
    assert ours.c1.count_params() == theirs.c1.count_params() == 40


def _ticket_model(lib):
    """The guide's multi-input, multi-output ticket classifier (sizes shrunk)."""
    title_input = lib.Input(shape=(None,), name="title")
    body_input = lib.Input(shape=(None,), name="body")
    tags_input = lib.Input(shape=(5,), name="tags")
    title_features = lib.layers.LSTM(6)(lib.layers.Embedding(20, 4)(title_input))
    body_features = lib.layers.LSTM(3)(lib.layers.Embedding(20, 4)(body_input))
    x = lib.layers.Concatenate()([title_features, body_features, tags_input])
    priority_pred = lib.layers.Dense(1, name="priority")(x)
    department_pred = lib.layers.Dense(3, name="department")(x)
    return lib.Model([title_input, body_input, tags_input], [priority_pred, department_pred])


def test_multi_input_multi_output_guide_model_trains_as_keras(rng):
    ours, theirs = _ticket_model(sj), _ticket_model(keras)
    assert [type(layer).__name__ for layer in ours.layers] == [
        type(layer).__name__ for layer in theirs.layers]  # so the weights line up
    assert [layer.name for layer in ours.layers][:2] == ["title", "body"]
    data = [rng.integers(0, 20, (4, 6)), rng.integers(0, 20, (4, 9)),
            rng.integers(0, 2, (4, 5)).astype(np.float32)]
    _same_model(ours, theirs, rng, data)
    targets = [rng.random((4, 1)).astype(np.float32),
               np.eye(3, dtype=np.float32)[rng.integers(0, 3, 4)]]
    ours.compile(optimizer=sj.optimizers.SGD(0.2),
                 loss=["mse", sj.losses.CategoricalCrossentropy(from_logits=True)],
                 loss_weights=[1.0, 0.2])
    theirs.compile(optimizer=keras.optimizers.SGD(0.2),
                   loss=["mse", keras.losses.CategoricalCrossentropy(from_logits=True)],
                   loss_weights=[1.0, 0.2])
    ours.train_on_batch(data, targets)
    theirs.train_on_batch(data, targets)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, expected, **TOL)


def _nested(lib):
    """The guide's encoder/decoder models called like layers, and an ensemble of one model."""
    encoder_input = lib.Input((6,))
    encoder = lib.Model(encoder_input, lib.layers.Dense(3, activation="relu")(encoder_input),
                        name="encoder")
    decoder_input = lib.Input((3,))
    decoder = lib.Model(decoder_input, lib.layers.Dense(6)(decoder_input), name="decoder")
    autoencoder_input = lib.Input((6,))
    decoded = decoder(encoder(autoencoder_input))
    again = decoder(encoder(decoded))  # the same sub-models a second time: shared weights
    merged = lib.layers.Add()([decoded, again])
    return lib.Model(autoencoder_input, [merged, encoder(autoencoder_input)])


def test_nested_models_called_like_layers_as_keras(rng, tmp_path):
    ours, theirs = _nested(sj), _nested(keras)
    assert [layer.name for layer in ours.layers][1:3] == [
        layer.name for layer in theirs.layers][1:3] == ["encoder", "decoder"]
    x = rng.standard_normal((3, 6)).astype(np.float32)
    _same_model(ours, theirs, rng, x)
    ours.save(tmp_path / "nested.shenjing")
    loaded = sj.load_model(tmp_path / "nested.shenjing")
    for a, b in zip(loaded.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, **TOL)


def test_shared_embedding_on_two_inputs_as_keras(rng):
    def build(lib):
        shared = lib.layers.Embedding(12, 4)
        a, b = lib.Input((None,)), lib.Input((None,))
        merged = lib.layers.Concatenate()([lib.layers.LSTM(3)(shared(a)),
                                           lib.layers.LSTM(3)(shared(b))])
        return lib.Model([a, b], merged)

    ours, theirs = build(sj), build(keras)
    assert ours.count_params() == 12 * 4 + 2 * 4 * (4 + 3 + 1) * 3
    _same_model(ours, theirs, rng, [rng.integers(0, 12, (2, 5)), rng.integers(0, 12, (2, 3))])


def test_model_from_an_intermediate_tensor_starts_there_as_keras(rng):
    results = {}
    for lib in (sj, keras):
        inputs = lib.Input((4,))
        hidden = lib.layers.Dense(5, name="first")(inputs)
        out = lib.layers.Dense(2, name="second")(hidden)
        full, head = lib.Model(inputs, out), lib.Model(hidden, out)
        assert [type(layer).__name__ for layer in head.layers] == ["InputLayer", "Dense"]
        assert head.input is not hidden and head.input.shape == (None, 5)
        assert head.layers[1] is full.layers[2]  # the same layer, not a copy
        results[lib] = (full, head)
    (ours, ours_head), (theirs, theirs_head) = results[sj], results[keras]
    h = rng.standard_normal((3, 5)).astype(np.float32)
    _same_model(ours, theirs, rng, rng.standard_normal((3, 4)).astype(np.float32))
    np.testing.assert_allclose(ours_head.predict(h, verbose=0), theirs_head.predict(h, verbose=0),
                               **TOL)
    assert ours_head.count_params() == theirs_head.count_params() == 12


def test_graph_needing_an_input_not_given_is_refused():
    a, b = layers.Input((2,), name="given"), layers.Input((2,), name="missing")
    with pytest.raises(ArgumentError, match="needs input 'missing'"):
        sj.Model(a, layers.Add()([a, b]))


def test_dict_inputs_or_outputs_say_to_pass_a_list():
    a = layers.Input((2,), name="title")
    with pytest.raises(TypeError, match=r"outputs as a dict are not supported; pass a list"):
        sj.Model(a, {"priority": layers.Dense(1)(a)})


def test_config_round_trip_and_saving_keep_call_argument_tensors(rng, tmp_path):
    model = _state_model(sj, "LSTM")
    data = [rng.standard_normal((2, 4, 3)).astype(np.float32),
            rng.standard_normal((2, 5, 2)).astype(np.float32)]
    expected = model.predict(data, verbose=0)
    config = model.get_config()
    assert any("initial_state" in node.get("kwargs", {}) for node in config["nodes"])
    rebuilt = sj.Model.from_config(config)
    assert rebuilt.count_params() == model.count_params()
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_array_equal(rebuilt.predict(data, verbose=0), expected)  # same ops
    model.save(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.shenjing").predict(
        data, verbose=0), expected)


def _kwargs_node(config):
    return next(node for node in config["nodes"] if node.get("kwargs"))


@pytest.mark.parametrize("change, message", [
    (lambda kw: kw["initial_state"][0].update({"__tensor__": ["dense", 0, 0]}),
     "names layer 'dense'"),
    (lambda kw: kw["initial_state"][0]["__tensor__"].__setitem__(1, 99), "nodes before it"),
    (lambda kw: kw["initial_state"][0]["__tensor__"].__setitem__(2, 7), "takes output 7"),
    (lambda kw: kw.update({"os_system": 1}), "takes no call argument 'os_system'"),
    (lambda kw: kw.update({"initial_state": [{"__tensor__": "x"}]}), "a reference must be"),
], ids=["name", "later-node", "output-index", "unknown-argument", "malformed"])
def test_bad_call_argument_references_in_a_config_are_refused(change, message):
    config = _state_model(sj, "LSTM").get_config()
    change(_kwargs_node(config)["kwargs"])
    with pytest.raises(ArgumentError, match=message):
        sj.Model.from_config(config)


def test_a_call_argument_a_config_cannot_hold_is_refused_when_saving(tmp_path):
    x = layers.Input((5, 3))
    model = sj.Model(x, layers.LSTM(2)(x, initial_state=None, mask=None))
    assert sj.Model.from_config(model.get_config()).count_params() == model.count_params()
    model._nodes[-1].kwargs["mask"] = object()  # as if a layer had been called with one
    with pytest.raises(TypeError, match="called with mask=<object"):
        model.get_config()
