"""compile's multi-output forms (loss / metrics / loss_weights / weighted_metrics as lists and
dicts) against Keras 3 on the torch backend: same log names, values and weights after fit."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras

keras = import_keras()


def _pair(rng):
    """The same two-output model (softmax 'cls', linear 'reg') in Keras and in shenjing."""
    def build(lib):
        inp = lib.Input((4,), name="inp")
        hidden = lib.layers.Dense(3, activation="tanh", name="hid")(inp)
        return lib.Model(inp, [lib.layers.Dense(2, activation="softmax", name="cls")(hidden),
                               lib.layers.Dense(1, name="reg")(hidden)])
    theirs, ours = build(keras), build(sj)
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def _data(rng, n=12):
    x = rng.standard_normal((n, 4)).astype(np.float32)
    return x, rng.integers(0, 2, n), rng.standard_normal((n, 1)).astype(np.float32), \
        rng.uniform(0.5, 2.0, n).astype(np.float32)


FORMS = [
    {"loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
         "metrics": {"cls": "accuracy", "reg": ["mae", "mse"]}},
    {"loss": ["sparse_categorical_crossentropy", "mse"], "metrics": [["accuracy"], ["mae"]],
         "loss_weights": [1.0, 0.5]},
    {"loss": ["sparse_categorical_crossentropy", "mse"], "metrics": ["accuracy", "mae"],
         "loss_weights": {"cls": 2.0, "reg": 0.5}},
    {"loss": ["sparse_categorical_crossentropy", "mse"], "metrics": {"cls": "accuracy"},
         "weighted_metrics": {"cls": ["accuracy"], "reg": ["mae"]}},
    {"loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
         "loss_weights": {"reg": 3.0, "cls": 0.25}, "metrics": {"reg": "mae"}},
]


@pytest.mark.parametrize("form", FORMS, ids=range(len(FORMS)))
def test_multi_output_forms_log_and_train_as_keras(form, rng):
    theirs, ours = _pair(rng)
    x, y_cls, y_reg, weights = _data(rng)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), **form)
    ours.compile(optimizer=sj.optimizers.SGD(0.1), **form)
    kwargs = {"batch_size": 4, "epochs": 2, "shuffle": False, "verbose": 0,
              "sample_weight": weights}
    expected = theirs.fit(x, [y_cls, y_reg], **kwargs).history
    got = ours.fit(x, [y_cls, y_reg], **kwargs).history
    assert set(got) == set(expected)  # Keras 3's names: cls_loss, reg_mae, cls_weighted_...
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, keras_weight, rtol=1e-5, atol=1e-6)
    # evaluate's list follows Keras's order: loss, the per-output losses, then sorted names
    np.testing.assert_allclose(ours.evaluate(x, [y_cls, y_reg], verbose=0),
                               theirs.evaluate(x, [y_cls, y_reg], verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, {"reg": y_reg, "cls": y_cls}, verbose=0),
                               theirs.evaluate(x, [y_cls, y_reg], verbose=0), rtol=1e-5)


def test_single_output_metrics_and_weighted_metrics_names_as_keras(rng):
    x, y = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 1))
    w = rng.uniform(0.1, 3.0, 8).astype(np.float32)
    theirs = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    ours = sj.Sequential([layers.Input((3,)), layers.Dense(1)])
    ours.set_weights(theirs.get_weights())
    logs = []
    for model, opt in ((theirs, keras.optimizers.SGD(0.05)), (ours, sj.optimizers.SGD(0.05))):
        model.compile(optimizer=opt, loss="mse", metrics={"a": ["mae"], "b": "mae"},
                      weighted_metrics=["mae", "mse"])
        logs.append(model.fit(x, y.astype(np.float32), sample_weight=w, batch_size=4,
                              shuffle=False, verbose=0).history)
    assert set(logs[1]) == set(logs[0]) == {"loss", "mae", "mae_1", "weighted_mae", "mse"}
    for name in logs[0]:
        np.testing.assert_allclose(logs[1][name], logs[0][name], rtol=1e-5, err_msg=name)


def test_metrics_ignore_sample_weight_and_weighted_metrics_use_it(rng):
    model = sj.Sequential([layers.Input((2,)), layers.Dense(1, kernel_initializer="zeros")])
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae"])
    x, y = np.ones((2, 2), np.float32), np.array([[1.0], [3.0]], np.float32)
    logs = model.evaluate(x, y, sample_weight=np.array([1.0, 0.0]), return_dict=True, verbose=0)
    assert logs["mae"] == pytest.approx(2.0) and logs["weighted_mae"] == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"loss": "mse", "metrics": ["mae"]}, "Invalid `metrics`"),
    ({"loss": ["sparse_categorical_crossentropy", "mse"], "metrics": ["accuracy"]},
     "Invalid `metrics`"),
    ({"loss": ["sparse_categorical_crossentropy", "mse"], "metrics": {"cls": "acc", "zzz": "mae"}},
     "Invalid `metrics`"),
    ({"loss": {"cls": "sparse_categorical_crossentropy"}}, "Expected keys"),
    ({"loss": ["sparse_categorical_crossentropy", "mse"], "loss_weights": [1.0]},
     "`loss_weights` must match the number of losses, got 2 losses and 1 weights"),
    ({"loss": "mse", "metrics": "mae"}, "Expected `metrics` argument to be a list"),
    ({"loss": "mse", "weighted_metrics": "mae"}, "Expected `weighted_metrics` argument"),
])
def test_compile_mistakes_fail_as_in_keras(kwargs, message, rng):
    theirs, ours = _pair(rng)
    x, y_cls, y_reg, _ = _data(rng, 4)
    with pytest.raises(ValueError, match=message):  # Keras fails at compile or the first batch
        theirs.compile(optimizer="sgd", **kwargs)
        theirs.fit(x, [y_cls, y_reg], verbose=0)
    with pytest.raises(ValueError, match=message) as caught:  # ours fails at compile
        ours.compile(optimizer="sgd", **kwargs)
    assert isinstance(caught.value, ArgumentError)
    assert not ours.compiled


def test_accuracy_is_added_only_where_asked(rng):
    """metrics for one output of two: the regression output gets no accuracy."""
    _, ours = _pair(rng)
    x, y_cls, y_reg, _ = _data(rng, 6)
    ours.compile("sgd", ["sparse_categorical_crossentropy", "mse"], metrics={"cls": "accuracy"})
    logs = ours.evaluate(x, [y_cls, y_reg], return_dict=True, verbose=0)
    assert set(logs) == {"loss", "cls_loss", "reg_loss", "cls_accuracy"}
    assert logs["loss"] == pytest.approx(logs["cls_loss"] + logs["reg_loss"], rel=1e-5)
    assert ours.metrics_names == ["loss", "compile_metrics", "cls_loss", "reg_loss"]


def test_a_loss_of_none_leaves_an_output_untrained(rng):
    _, ours = _pair(rng)
    x, y_cls, y_reg, _ = _data(rng, 8)
    ours.compile(sj.optimizers.SGD(0.1), loss=[None, "mse"])
    before = ours.get_layer("cls").get_weights()
    with pytest.warns(UserWarning, match=r"Gradients do not exist for variables \['cls/kernel'"):
        history = ours.fit(x, [y_cls, y_reg], epochs=2, batch_size=4, verbose=0).history
    assert set(history) == {"loss"}  # one loss: no per-output entries, as Keras
    for old, new in zip(before, ours.get_layer("cls").get_weights()):
        np.testing.assert_array_equal(old, new)  # never updated: exactly the same values


@pytest.mark.parametrize("kwargs, error", [
    ({"jit_compile": True}, ArgumentError), ({"steps_per_execution": 4}, ArgumentError),
    ({"run_eagerly": "yes"}, ArgumentTypeError), ({"auto_scale_loss": None}, ArgumentTypeError),
])
def test_keras_only_compile_arguments(kwargs, error):
    model = sj.Sequential([layers.Input((2,)), layers.Dense(1)])
    model.compile("sgd", "mse", run_eagerly=True, jit_compile="auto", steps_per_execution=1,
                  auto_scale_loss=True)
    assert model.run_eagerly and model.compiled
    with pytest.raises(error, match=next(iter(kwargs))):
        model.compile("sgd", "mse", **kwargs)


def test_a_model_compiled_with_a_loss_dict_saves_and_loads(rng, tmp_path):
    _, ours = _pair(rng)
    x, y_cls, y_reg, _ = _data(rng, 8)
    ours.compile("adam", loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                 loss_weights={"cls": 1.0, "reg": 0.5}, metrics=["accuracy", "mae"])
    ours.fit(x, [y_cls, y_reg], verbose=0)
    ours.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_allclose(loaded.evaluate(x, [y_cls, y_reg], verbose=0),
                               ours.evaluate(x, [y_cls, y_reg], verbose=0), rtol=1e-6)
