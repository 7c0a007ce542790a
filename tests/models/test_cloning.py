"""clone_model (Keras 3's semantics: new layers, fresh weights) and to_json/model_from_json
(shenjing's own config format), written from the user's side."""

import json

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.models import clone_model, model_from_json
from tests.keras_oracle import import_keras

keras = import_keras()


def _sequential(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(5, activation="relu"),
                           lib.layers.Dense(2)])


def _seq2seq(lib):
    enc, dec = lib.Input((None, 3)), lib.Input((None, 2))
    _, h, c = lib.layers.LSTM(4, return_state=True)(enc)
    out = lib.layers.LSTM(4, return_sequences=True)(dec, initial_state=[h, c])
    return lib.Model([enc, dec], lib.layers.Dense(2)(out))


def _data(rng):
    return [rng.standard_normal((2, 6, 3)).astype(np.float32),
            rng.standard_normal((2, 5, 2)).astype(np.float32)]


@pytest.mark.parametrize("build", [_sequential, _seq2seq], ids=["sequential", "functional"])
def test_clone_has_new_layers_with_fresh_weights_like_keras(build):
    for lib in (sj, keras):
        model = build(lib)
        clone = (clone_model if lib is sj else keras.models.clone_model)(model)
        assert type(clone) is type(model) and clone.name == model.name
        # the layers keep their names (Keras names a functional clone's Inputs after their
        # tensors, 'keras_tensor_5'; shenjing keeps the Input layers' names)
        names = [[layer.name for layer in m.layers if "Input" not in type(layer).__name__]
                 for m in (clone, model)]
        assert names[0] == names[1]
        assert clone.count_params() == model.count_params()
        assert not any(a is b for a, b in zip(clone.layers, model.layers))
        assert all(a is not b for a, b in zip(clone.weights, model.weights))
        kernels = [w for w in zip(clone.get_weights(), model.get_weights()) if w[0].ndim == 2]
        assert any(not np.allclose(a, b) for a, b in kernels)  # initialized again


def test_cloned_functional_model_computes_the_same_and_trains_apart(rng):
    model = _seq2seq(sj)
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    data = _data(rng)
    expected = model.predict(data, verbose=0)
    np.testing.assert_array_equal(clone.predict(data, verbose=0), expected)  # same ops
    clone.compile(optimizer="sgd", loss="mse")
    clone.train_on_batch(data, np.zeros((2, 5, 2), np.float32))
    np.testing.assert_array_equal(model.predict(data, verbose=0), expected)  # untouched


def test_clone_on_given_input_tensors():
    new_input = layers.Input((4,), name="mine")
    clone = clone_model(_sequential(sj), input_tensors=new_input)
    assert clone.layers[0].input is new_input and clone.input is new_input
    a, b = layers.Input((None, 3)), layers.Input((None, 2))
    functional = clone_model(_seq2seq(sj), input_tensors=[a, b])
    assert functional.input == [a, b]
    with pytest.raises(ArgumentError, match="input_tensors must be 2 symbolic tensors"):
        clone_model(_seq2seq(sj), input_tensors=[a])


def test_clone_function_and_call_function_as_keras_documents():
    model = _seq2seq(sj)
    shared = clone_model(model, clone_function=lambda layer: layer)  # reuse every layer
    assert all(a is b for a, b in zip(shared.layers[2:], model.layers[2:]))

    def call_function(layer, *args, **kwargs):  # keras's example: a Dropout after each Dense
        out = layer(*args, **kwargs)
        return layers.Dropout(0.5)(out) if isinstance(layer, layers.Dense) else out

    with_dropout = clone_model(model, clone_function=lambda layer: layer,
                               call_function=call_function)
    assert type(with_dropout.layers[-1]).__name__ == "Dropout"
    with pytest.raises(ArgumentError, match="functional models only"):
        clone_model(_sequential(sj), call_function=call_function)
    with pytest.raises(ArgumentTypeError, match="clone_function must be callable"):
        clone_model(model, clone_function=3)
    with pytest.raises(ArgumentTypeError, match="Sequential or functional Model"):
        clone_model(layers.Dense(2))


def test_shared_layers_stay_shared_and_nested_models_clone():
    inner = _sequential(sj)
    x, y = layers.Input((4,)), layers.Input((4,))
    dense = layers.Dense(4)
    model = sj.Model([x, y], layers.Add()([inner(dense(x)), inner(dense(y))]))
    clone = clone_model(model)
    assert clone.count_params() == model.count_params()
    assert len(clone.weights) == len(model.weights)  # each shared layer cloned once
    nested = next(layer for layer in clone.layers if isinstance(layer, sj.Sequential))
    assert nested is not inner and nested.layers[0] is not inner.layers[0]
    recursive = clone_model(model, clone_function=lambda layer: layer, recursive=True)
    nested = next(layer for layer in recursive.layers if isinstance(layer, sj.Sequential))
    assert nested is not inner and nested.layers[0] is inner.layers[0]


@pytest.mark.parametrize("build", [_sequential, _seq2seq], ids=["sequential", "functional"])
def test_to_json_round_trip_rebuilds_the_architecture(build, rng):
    model = build(sj)
    text = model.to_json(indent=1)
    assert json.loads(text)["format"] == "shenjing"
    rebuilt = model_from_json(text)
    assert type(rebuilt) is type(model)
    assert [layer.name for layer in rebuilt.layers] == [layer.name for layer in model.layers]
    rebuilt.set_weights(model.get_weights())
    data = _data(rng) if build is _seq2seq else rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt.predict(data, verbose=0),  # same ops
                                  model.predict(data, verbose=0))


def test_model_from_json_refuses_what_it_cannot_read():
    with pytest.raises(ArgumentError, match="Keras's JSON"):
        model_from_json(_sequential(keras).to_json())
    with pytest.raises(ArgumentError, match="not valid JSON"):
        model_from_json("{")
    with pytest.raises(ArgumentError, match="model class"):
        model_from_json(json.dumps({"format": "shenjing", "class_name": "Dense",
                                    "config": {"units": 2}}))
    spec = json.loads(_sequential(sj).to_json())
    spec["config"]["layers"][1]["class_name"] = "os.system"
    with pytest.raises(ArgumentError, match="not registered"):
        model_from_json(json.dumps(spec))
    with pytest.raises(ArgumentTypeError, match="JSON string"):
        model_from_json({"format": "shenjing"})


def test_model_from_json_takes_custom_objects():
    class Twice(layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    x = layers.Input((3,))
    text = sj.Model(x, Twice(name="twice")(x)).to_json()
    with pytest.raises(ArgumentError, match="'Twice' that is not registered"):
        model_from_json(text)
    model = model_from_json(text, custom_objects={"Twice": Twice})
    np.testing.assert_array_equal(model.predict(np.ones((1, 3), np.float32), verbose=0),
                                  [[2.0, 2.0, 2.0]])
