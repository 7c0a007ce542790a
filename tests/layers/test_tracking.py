"""Custom layers holding layers, as Keras 3's guide "Making new layers and models via
subclassing" writes them: weights, counts, training, freezing, add_loss and saving, each
against Keras 3 itself (torch backend) with the same weights."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


def guide_classes(lib, ops):
    """The guide's Linear, MLPBlock and ActivityRegularizationLayer, for shenjing or Keras."""

    class Linear(lib.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units),
                                     initializer="random_normal", trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal",
                                     trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class MLPBlock(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.linear_1 = Linear(32)
            self.linear_2 = Linear(32)
            self.linear_3 = Linear(1)

        def call(self, inputs):
            x = ops.relu(self.linear_1(inputs))
            x = ops.relu(self.linear_2(x))
            return self.linear_3(x)

    class ActivityRegularizationLayer(lib.layers.Layer):
        def __init__(self, rate=1e-2, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * ops.mean(inputs))
            return inputs

    return Linear, MLPBlock, ActivityRegularizationLayer


Linear, MLPBlock, ActivityRegularizationLayer = guide_classes(sj, sj.ops)
KLinear, KMLPBlock, KActivityRegularizationLayer = guide_classes(keras, keras.ops)


def _numpy(t):
    return np.asarray(t.detach().cpu().numpy()) if hasattr(t, "detach") else np.asarray(t)


def test_mlp_block_matches_keras(rng):
    x = rng.standard_normal((4, 16)).astype(np.float32)
    ours, theirs = MLPBlock(), KMLPBlock()
    expected = _numpy(theirs(x))
    ours(x)
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    assert ours.count_params() == theirs.count_params() == 16 * 32 + 32 + 32 * 32 + 32 + 33
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 6
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    for mine, their in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(mine, their)  # copies of the same arrays


def test_weight_order_is_keras_own_first_then_held_in_assignment_order(rng):
    def classes(lib):
        class Block(lib.layers.Layer):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.second = lib.layers.Dense(2)
                self.parts = [lib.layers.Dense(3), {"b": lib.layers.Dense(4),
                                                    "a": [lib.layers.BatchNormalization()]}]
                self.first = lib.layers.Dense(5)
                self.parts.append(lib.layers.Dense(6))  # appended after assignment
                self.again = self.second  # one layer held twice is counted once

            def build(self, input_shape):
                self.total = self.add_weight(shape=(7,), initializer="zeros", trainable=False)
                self.scale = self.add_weight(shape=(1,), initializer="ones")

            def call(self, x):
                y = self.second(x) + self.parts[0](x)[:, :2] + self.parts[1]["b"](x)[:, :2]
                y = y + self.parts[1]["a"][0](x)[:, :2] + self.first(x)[:, :2]
                return (y + self.parts[2](x)[:, :2]) * self.scale

        return Block

    x = rng.standard_normal((3, 8)).astype(np.float32)
    ours, theirs = classes(sj)(), classes(keras)()
    expected_first = theirs(x)
    ours(x)
    shapes = [tuple(w.shape) for w in theirs.weights]
    assert [w.shape for w in ours.weights] == shapes
    assert shapes[:2] == [(1,), (7,)]  # own: trainable first
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.non_trainable_weights] == [
        tuple(w.shape) for w in theirs.non_trainable_weights]
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x).numpy(), _numpy(expected_first), rtol=1e-5, atol=1e-5)


def test_sgd_step_matches_keras(rng):
    x = rng.standard_normal((8, 16)).astype(np.float32)
    y = rng.standard_normal((8, 1)).astype(np.float32)
    ours = sj.Sequential([sj.Input((16,)), MLPBlock()])
    theirs = keras.Sequential([keras.Input((16,)), KMLPBlock()])
    ours.set_weights(theirs.get_weights())
    assert ours.count_params() == theirs.count_params()
    ours.compile(sj.optimizers.SGD(0.05), "mse")
    theirs.compile(keras.optimizers.SGD(0.05), "mse")
    loss_ours = ours.train_on_batch(x, y)
    loss_theirs = float(theirs.train_on_batch(x, y))
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for mine, their in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6)


def test_fit_trains_inner_layers_and_frozen_outer_freezes_them(rng):
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = x @ rng.standard_normal((4, 1)).astype(np.float32)
    block = MLPBlock()
    model = sj.Sequential([sj.Input((4,)), block])
    model.compile(sj.optimizers.SGD(0.05), "mse")
    before = model.get_weights()
    history = model.fit(x, y, epochs=5, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(np.any(a != b) for a, b in zip(before, model.get_weights()))
    block.trainable = False
    assert block.linear_1.trainable is False and model.trainable_weights == []
    assert len(model.non_trainable_weights) == 6
    frozen = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(frozen, model.get_weights()):
        np.testing.assert_array_equal(a, b)  # nothing moved
    block.trainable = True
    assert block.linear_3.trainable and len(model.trainable_weights) == 6


def test_inner_layer_frozen_alone(rng):
    block = MLPBlock()
    block(np.zeros((1, 3), np.float32))
    block.linear_2.trainable = False
    assert [w.name for w in block.non_trainable_weights] == [w.name for w in
                                                             block.linear_2.weights]
    assert len(block.trainable_weights) == 4


def test_add_loss_resets_per_outer_call_as_in_the_guide():
    class OuterLayer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    layer = OuterLayer()
    assert len(layer.losses) == 0
    layer(np.zeros((1, 1), np.float32))
    assert len(layer.losses) == 1
    layer(np.ones((1, 1), np.float32))
    assert len(layer.losses) == 1  # reset at the start of each outer call
    np.testing.assert_allclose(float(layer.losses[0].data), 1e-2)

    class WithKernelRegularizer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(32, kernel_regularizer=sj.regularizers.L2(1e-3))

        def call(self, inputs):
            return self.dense(inputs)

    layer = WithKernelRegularizer()
    layer(np.zeros((1, 1), np.float32))
    kernel = layer.dense.kernel.data
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0].data), 1e-3 * np.sum(kernel ** 2),
                               rtol=1e-5)


def test_add_loss_joins_the_training_loss_as_keras(rng):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    y = rng.standard_normal((6, 3)).astype(np.float32)

    def build(lib, reg):
        inputs = lib.Input((5,))
        return lib.Model(inputs, lib.layers.Dense(3)(reg(0.1)(inputs)))

    ours = build(sj, ActivityRegularizationLayer)
    theirs = build(keras, KActivityRegularizationLayer)
    ours.set_weights(theirs.get_weights())
    ours.compile(sj.optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    np.testing.assert_allclose(ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y)),
                               rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                               float(theirs.evaluate(x, y, verbose=0)), rtol=1e-5)


def test_symbolic_call_infers_the_output_shape_from_call(rng):
    inputs = sj.Input((16,))
    outputs = MLPBlock()(inputs)
    assert outputs.shape == (None, 1)
    model = sj.Model(inputs, outputs)
    assert model.count_params() == 16 * 32 + 32 + 32 * 32 + 32 + 33  # built by the shape run
    assert model.predict(rng.standard_normal((5, 16)), verbose=0).shape == (5, 1)
    seq = sj.Input((None, 3))  # an unknown time axis stays unknown

    class Last(layers.Layer):
        def call(self, x):
            return sj.ops.concatenate([x, x], axis=1)

    assert Last()(seq).shape == (None, None, 3)


def test_training_flag_follows_keras_rules():
    seen = []

    class Probe(layers.Layer):
        def call(self, x, training=None):
            seen.append(training)
            return x

    class Outer(layers.Layer):
        def __init__(self):
            super().__init__()
            self.probe = Probe()

        def call(self, x, training=None):
            seen.append(training)
            return self.probe(x)  # not passed: the outer call's value

    x = np.zeros((2, 2), np.float32)
    Outer()(x)
    Outer()(x, training=True)
    assert seen == [False, False, True, True]


def test_add_weight_forms():
    class Mixed(layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight((2,))  # name generated, glorot_uniform
            self.b = self.add_weight(shape=(3,), dtype="int32", trainable=False)
            self.c = self.add_weight("named", (4,), "ones")  # the older form, a name first
            self.d = self.add_weight(shape=(), initializer="ones", name="scalar")

        def call(self, x):
            return x

    layer = Mixed(name="mixed")
    layer(np.zeros((1, 2), np.float32))
    assert [w.name for w in layer.weights] == ["mixed/variable", "mixed/named", "mixed/scalar",
                                               "mixed/variable_1"]
    np.testing.assert_array_equal(layer.b.data, np.zeros(3, np.int32))
    assert layer.b.dtype == np.int32 and layer.d.shape == ()
    with pytest.raises(TypeError, match="unexpected argument 'initialiser'"):
        layer.add_weight(shape=(1,), initialiser="ones")
    with pytest.raises(ValueError, match="constraints are not supported"):
        layer.add_weight(shape=(1,), constraint="non_neg")


def test_get_config_round_trip_and_saving_in_a_functional_model(tmp_path, rng):
    sj.saving.register_keras_serializable(package="Tracking")(Linear)
    layer = Linear(7, name="lin")
    clone = Linear.from_config(layer.get_config())
    assert clone.units == 7 and clone.name == "lin"

    @sj.saving.register_keras_serializable(package="Tracking")
    class Block(layers.Layer):
        def __init__(self, units=4, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.inner = [Linear(units), layers.Dense(units)]

        def call(self, x):
            return self.inner[1](self.inner[0](x))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    inputs = sj.Input((3,))
    model = sj.Model(inputs, layers.Dense(2, name="head")(Block(5, name="block")(inputs)))
    x = rng.standard_normal((4, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.shenjing")
    Linear(3)(x)  # other layers made meanwhile: automatic names move on
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)  # same weights
    model.save_weights(tmp_path / "w.safetensors")
    again = sj.Model.from_config(model.get_config())
    again.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
