"""Keras's guide "Customizing what happens in fit()" (torch backend), ported: the same code
runs on Keras 3 and on shenjing (our autograd in place of torch) from the same weights, and
gives the same weights and logs after a few steps."""

import contextlib
import warnings

import numpy as np
import pytest

import shenjing as sj
from tests.keras_oracle import import_keras

keras = import_keras()
torch = pytest.importorskip("torch")


def _no_grad(lib):
    return torch.no_grad() if lib is keras else contextlib.nullcontext()


def _guide_model(lib, sample_weights=False):
    """The guide's first CustomModel: compute_loss, loss.backward(), optimizer.apply, and
    each metric of self.metrics updated by hand."""

    class CustomModel(lib.Model):
        def train_step(self, data):
            if sample_weights and len(data) == 3:
                x, y, sample_weight = data
            else:
                (x, y), sample_weight = data, None
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with _no_grad(lib):
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel


def _build(cls, lib, units=4):
    inputs = lib.Input((5,))
    return cls(inputs, lib.layers.Dense(1)(lib.layers.Dense(units, activation="tanh")(inputs)))


def _pair(theirs_cls, ours_cls):
    theirs, ours = _build(theirs_cls, keras), _build(ours_cls, sj)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def _assert_same(theirs, ours, expected, got, rtol=1e-5):
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=rtol, err_msg=name)
    for mine, their_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, their_weight, rtol=rtol, atol=1e-6)


@pytest.fixture
def data(rng):
    return (rng.standard_normal((24, 5)).astype(np.float32),
            rng.standard_normal((24, 1)).astype(np.float32),
            rng.uniform(0.1, 1.0, (24, 1)).astype(np.float32))


def test_custom_train_step_with_compute_loss(data):
    x, y, _ = data
    theirs, ours = _pair(_guide_model(keras), _guide_model(sj))
    theirs.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    ours.compile(optimizer=sj.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    kwargs = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
    expected, got = theirs.fit(x, y, **kwargs).history, ours.fit(x, y, **kwargs).history
    assert set(got) == {"loss", "mae"}  # compile_metrics's dict flattened into the logs
    _assert_same(theirs, ours, expected, got)


def test_custom_train_step_with_sample_weights(data):
    x, y, weights = data
    theirs, ours = _pair(_guide_model(keras, True), _guide_model(sj, True))
    theirs.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    ours.compile(optimizer=sj.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    kwargs = {"epochs": 2, "batch_size": 8, "shuffle": False, "verbose": 0,
              "sample_weight": weights[:, 0]}
    _assert_same(theirs, ours, theirs.fit(x, y, **kwargs).history,
                 ours.fit(x, y, **kwargs).history)


def _test_step_model(lib):
    class CustomModel(lib.Model):
        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}
    return CustomModel


def test_custom_test_step(data):
    x, y, _ = data
    theirs, ours = _pair(_test_step_model(keras), _test_step_model(sj))
    theirs.compile(loss="mse", metrics=["mae"])
    ours.compile(loss="mse", metrics=["mae"])
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=8, verbose=0),
                               theirs.evaluate(x, y, batch_size=8, verbose=0), rtol=1e-5)
    assert set(ours.evaluate(x, y, verbose=0, return_dict=True)) == {"loss", "mae"}


def _lower_level_model(lib):
    """The guide's "going lower-level": no compiled loss, own trackers, metrics overridden."""

    class CustomModel(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = lib.metrics.Mean(name="loss")
            self.mae_metric = lib.metrics.MeanAbsoluteError(name="mae")
            self.loss_fn = lib.losses.MeanSquaredError()

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with _no_grad(lib):
                self.optimizer.apply(gradients, trainable_weights)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]  # reset at each epoch's start

    return CustomModel


def test_lower_level_train_step_with_own_metrics(data):
    x, y, _ = data
    theirs, ours = _pair(_lower_level_model(keras), _lower_level_model(sj))
    theirs.compile(optimizer=keras.optimizers.Adam(0.01))
    ours.compile(optimizer=sj.optimizers.Adam(0.01))
    kwargs = {"epochs": 3, "batch_size": 8, "shuffle": False, "verbose": 0}
    _assert_same(theirs, ours, theirs.fit(x, y, **kwargs).history,
                 ours.fit(x, y, **kwargs).history)


def _two_optimizers_model(lib):
    """As the guide's GAN: compile overridden (super().compile() with no arguments), two
    optimizers, apply_gradients(zip(grads, variables)), trackers as attributes."""

    class TwoOptimizers(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.first_tracker = lib.metrics.Mean(name="first_loss")

        def compile(self, first_optimizer, second_optimizer, loss_fn):
            super().compile()
            self.first_optimizer, self.second_optimizer = first_optimizer, second_optimizer
            self.loss_fn = loss_fn

        @property
        def metrics(self):
            return [self.first_tracker]

        def train_step(self, data):
            x, y = data
            first, second = self.layers[1].trainable_weights, self.layers[2].trainable_weights
            self.zero_grad()
            loss = self.loss_fn(y, self(x, training=True))
            loss.backward()
            with _no_grad(lib):
                self.first_optimizer.apply_gradients(zip([v.value.grad for v in first], first))
                self.second_optimizer.apply_gradients(
                    zip([v.value.grad for v in second], second))
            self.first_tracker.update_state(loss)
            return {"first_loss": self.first_tracker.result()}

    return TwoOptimizers


def test_overridden_compile_with_two_optimizers(data):
    x, y, _ = data
    theirs, ours = _pair(_two_optimizers_model(keras), _two_optimizers_model(sj))
    theirs.compile(keras.optimizers.SGD(0.1), keras.optimizers.Adam(0.01),
                   keras.losses.MeanSquaredError())
    ours.compile(sj.optimizers.SGD(0.1), sj.optimizers.Adam(0.01), sj.losses.MeanSquaredError())
    kwargs = {"epochs": 2, "batch_size": 6, "shuffle": False, "verbose": 0}
    _assert_same(theirs, ours, theirs.fit(x, y, **kwargs).history,
                 ours.fit(x, y, **kwargs).history)
    assert ours.first_optimizer.iterations == ours.second_optimizer.iterations == 8


def test_predict_step_override(data):
    x, _, _ = data

    class Doubled(sj.Model):
        def predict_step(self, data):
            (x,) = data
            return self(x, training=False) * 2.0

    model = _build(Doubled, sj)
    plain = sj.Model(model.inputs, model.outputs)
    np.testing.assert_allclose(model.predict(x, batch_size=7, verbose=0),
                               2.0 * plain.predict(x, verbose=0), rtol=1e-6)


def test_default_steps_match_the_guide_building_blocks(data):
    """zero_grad clears .grad; Variable.value is the variable; reset_metrics clears them."""
    x, y, _ = data
    model = _build(sj.Model, sj)
    model.compile(sj.optimizers.SGD(0.1), "mse", metrics=["mae"])
    model.fit(x, y, verbose=0, epochs=1)
    variable = model.trainable_weights[0]
    assert variable.value is variable and variable.grad is not None
    model.zero_grad()
    assert all(v.grad is None for v in model.trainable_weights)
    assert [m.name for m in model.metrics] == ["loss", "compile_metrics"]
    model.reset_metrics()
    assert model.get_metrics_result() == {"loss": 0.0, "mae": 0.0}


def test_unreached_weights_warned_once_per_fit(data):
    x, y, _ = data
    inputs = sj.Input((5,))
    unused = sj.layers.Dense(3, name="unused")(inputs)
    model = sj.Model(inputs, [sj.layers.Dense(1, name="used")(inputs), unused])
    model.compile(sj.optimizers.SGD(0.1), loss=["mse", None])
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(x, [y, np.zeros((24, 3), np.float32)], batch_size=4, epochs=2, verbose=0)
        messages = [str(w.message) for w in caught if "Gradients do not exist" in str(w.message)]
        assert len(messages) == 1 and "unused/kernel" in messages[0]
