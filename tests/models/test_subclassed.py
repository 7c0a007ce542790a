"""Subclassed models (``class M(Model)``, layers in ``__init__``, own ``call``) against Keras 3:
the same parameters, outputs and SGD step; fit trains them; summary counts them; weights and
whole models save and load."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


def model_class(lib):
    class Classifier(lib.Model):
        def __init__(self, rate=0.5, units=8, **kwargs):
            super().__init__(**kwargs)
            self.rate, self.units = rate, units
            self.d1 = lib.layers.Dense(units, activation="relu")
            self.drop = lib.layers.Dropout(rate)
            self.bn = lib.layers.BatchNormalization()
            self.d2 = lib.layers.Dense(3)

        def call(self, inputs, training=None):
            x = self.drop(self.d1(inputs), training=training)
            return self.d2(self.bn(x, training=training))

        def get_config(self):
            return {**super().get_config(), "rate": self.rate, "units": self.units}

    return Classifier


Classifier = model_class(sj)
KClassifier = model_class(keras)


def test_counts_shapes_and_outputs_match_keras(rng):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    ours, theirs = Classifier(), KClassifier()
    expected = theirs.predict(x, verbose=0)
    ours(x)
    assert ours.count_params() == theirs.count_params() == 5 * 8 + 8 + 4 * 8 + 8 * 3 + 3
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 6
    assert len(ours.non_trainable_weights) == len(theirs.non_trainable_weights) == 2
    assert [layer.name for layer in ours.layers] == [ours.d1.name, ours.drop.name, ours.bn.name,
                                                     ours.d2.name]
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_one_sgd_step_matches_keras(rng):
    x = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.standard_normal((8, 3)).astype(np.float32)
    ours, theirs = Classifier(rate=0.0), KClassifier(rate=0.0)  # no random mask to compare
    theirs(x)
    ours(x)
    ours.set_weights(theirs.get_weights())
    ours.compile(sj.optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    np.testing.assert_allclose(ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y)),
                               rtol=1e-5)
    for mine, their in zip(ours.get_weights(), theirs.get_weights()):  # moving stats too
        np.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6)


def test_fit_on_an_unbuilt_model_trains_from_the_first_batch(rng):
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x @ rng.standard_normal((5, 3))).astype(np.float32)
    model = Classifier(rate=0.1)
    model.compile(sj.optimizers.SGD(0.05), "mse")
    model.train_on_batch(x[:8], y[:8])  # builds the model, and already steps
    first = model.get_weights()
    assert model.count_params() == 107 and len(model.trainable_weights) == 6
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(np.any(a != b) for a, b in zip(first, model.get_weights()))
    assert model.evaluate(x, y, verbose=0) < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (64, 3)


def test_training_flag_inside_fit_and_predict(rng):
    seen = []

    class Probe(sj.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = layers.Dense(1)

        def call(self, inputs, training=None):
            seen.append(training)
            return self.dense(inputs)

    model = Probe()
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 1), np.float32)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert seen[-1] is True
    model.predict(x, verbose=0)
    assert seen[-1] is False


def test_build_summary_and_nested_layers(rng):
    class Block(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.parts = {"inner": layers.Dense(4), "norm": [layers.LayerNormalization()]}

        def call(self, x):
            return self.parts["norm"][0](self.parts["inner"](x))

    class Net(sj.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.blocks = [Block(name="block_a")]
            self.blocks.append(Block(name="block_b"))  # appended after assignment
            self.head = layers.Dense(2, name="head")

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    model = Net(name="net")
    model.build((None, 3))
    assert model.built and model.output_shape == (None, 2)
    expected = (3 * 4 + 4 + 8) + (4 * 4 + 4 + 8) + (4 * 2 + 2)
    assert model.count_params() == expected
    lines = []
    model.summary(print_fn=lines.append)
    text = lines[0]
    assert f"Total params: {expected}" in text and "block_a (Block)" in text
    assert "dense" not in text  # the held layers' own layers only with expand_nested
    model.summary(print_fn=lines.append, expand_nested=True)
    nested = lines[1]
    assert "  dense" in nested and "  layer_normalization" in nested
    assert f"Total params: {expected}" in nested


def test_save_weights_load_weights_round_trip(tmp_path, rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    model = Classifier()
    model(x)
    model.save_weights(tmp_path / "w.safetensors")
    other = Classifier()  # other automatic layer names: weights are keyed by attribute
    other.build((None, 5))
    other.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    wrong = Classifier(units=6)
    wrong.build((None, 5))
    with pytest.raises(ValueError, match="shape"):
        wrong.load_weights(tmp_path / "w.safetensors")


def test_save_and_load_model_of_a_registered_class(tmp_path, rng):
    registered = sj.saving.register_keras_serializable(package="Tests")(model_class(sj))
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = rng.standard_normal((16, 3)).astype(np.float32)
    model = registered(rate=0.2, units=6, name="clf")
    model.compile(sj.optimizers.SGD(0.05), "mse")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    assert type(loaded) is registered and loaded.units == 6 and loaded.rate == 0.2
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    loaded.fit(x, y, epochs=1, batch_size=8, verbose=0)  # compiled again: training goes on
    assert sj.saving.get_registered_name(registered) == "Tests>Classifier"
    assert sj.saving.get_registered_object("Tests>Classifier") is registered


def test_unregistered_or_unrebuildable_models_are_refused(tmp_path, rng):
    x = rng.standard_normal((2, 5)).astype(np.float32)
    model = Classifier()
    model(x)
    model.save(tmp_path / "m.shenjing")
    with pytest.raises(ValueError, match="'Classifier' that is not registered.*"
                                         "register_keras_serializable"):
        sj.load_model(tmp_path / "m.shenjing")
    assert type(sj.load_model(tmp_path / "m.shenjing",
                              custom_objects={"Classifier": Classifier})) is Classifier

    class NoConfig(sj.Model):
        def __init__(self, units):  # get_config not overridden: units is not saved
            super().__init__()
            self.dense = layers.Dense(units)

        def call(self, inputs):
            return self.dense(inputs)

    model = NoConfig(2)
    model(x)
    model.save(tmp_path / "n.shenjing")
    with pytest.raises(ValueError, match="get_config"):
        sj.load_model(tmp_path / "n.shenjing", custom_objects={"NoConfig": NoConfig})


def test_functional_subclass_keeps_working(tmp_path, rng):
    @sj.saving.register_keras_serializable(package="Tests")
    class Functional(sj.Model):
        pass

    inputs = sj.Input((4,))
    outputs = layers.Dense(2)(layers.Dense(3, activation="tanh")(inputs))
    model = Functional(inputs, outputs, name="functional_sub")
    assert not model._subclassed and len(model.layers) == 3 and model.count_params() == 23
    x = rng.standard_normal((5, 4)).astype(np.float32)
    model.compile("sgd", "mse")
    model.fit(x, np.zeros((5, 2), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "f.shenjing")
    loaded = sj.load_model(tmp_path / "f.shenjing")
    assert type(loaded) is Functional
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_subclassed_model_inside_a_functional_model(rng):
    inner = Classifier(rate=0.0)
    inputs = sj.Input((5,))
    outer = sj.Model(inputs, layers.Dense(1)(inner(inputs)))
    assert outer.count_params() == 107 + 4
    assert [w.name for w in outer.weights[:2]] == [inner.d1.kernel.name, inner.d1.bias.name]
    x = rng.standard_normal((3, 5)).astype(np.float32)
    assert outer.predict(x, verbose=0).shape == (3, 1)


def test_a_file_too_small_for_the_rebuilt_model_is_refused(tmp_path, rng):
    model = Classifier()
    model(rng.standard_normal((2, 5)).astype(np.float32))
    model.save(tmp_path / "m.shenjing")

    class Huge(Classifier):
        def __init__(self, **kwargs):
            super().__init__(**{**kwargs, "units": 50_000})

    with pytest.raises(ValueError, match="more values than the file holds"):
        sj.load_model(tmp_path / "m.shenjing", custom_objects={"Classifier": Huge})

    class Wider(Classifier):
        def __init__(self, **kwargs):
            super().__init__(**{**kwargs, "units": 7})

    with pytest.raises(ValueError, match="'d1/kernel' has shape"):
        sj.load_model(tmp_path / "m.shenjing", custom_objects={"Classifier": Wider})
