"""shenjing.metrics against keras.metrics (Keras 3): running results over several weighted
batches, shape rules, tie-breaking, get() resolution and configs."""

import importlib
import os

import numpy as np
import pytest

import shenjing as sj
from shenjing import losses as L
from shenjing import metrics as M
from shenjing.errors import ArgumentError, ArgumentTypeError

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
get_metric = importlib.import_module("keras.src.trainers.compile_utils").get_metric

K, T, D = 5, 3, 4
TOL = {"rtol": 1e-6, "atol": 1e-7}  # Keras keeps its state in float32


def _ties(r, shape):  # small integer scores: many ties, so tie-breaking is exercised
    return r.integers(0, 3, shape).astype(float)


def _onehot(r, shape):
    return np.eye(shape[-1])[r.integers(0, shape[-1], shape[:-1])]


# id, class name, kwargs, batch maker (rng, n) -> (y_true, y_pred), weight shapes (n -> shape)
CASES = [
    ("accuracy", "Accuracy", {}, lambda r, n: (_ties(r, (n, 1)), _ties(r, (n, 1))),
     [lambda n: (n,), lambda n: (n, 1)]),
    ("binary", "BinaryAccuracy", {}, lambda r, n: (r.integers(0, 2, (n, 1)), r.random((n, 1))),
     [lambda n: (n,), lambda n: (n, 1)]),
    ("binary_flat_true", "BinaryAccuracy", {"threshold": 0.7},
     lambda r, n: (r.integers(0, 2, n), r.random((n, 1))), [lambda n: (n,)]),
    ("binary_multi", "BinaryAccuracy", {"threshold": 0.3},
     lambda r, n: (r.integers(0, 2, (n, D)), r.random((n, D))),
     [lambda n: (n,), lambda n: (n, D)]),
    ("categorical", "CategoricalAccuracy", {},
     lambda r, n: (_onehot(r, (n, K)), _ties(r, (n, K))), [lambda n: (n,), lambda n: (n, 1)]),
    ("categorical_seq", "CategoricalAccuracy", {},
     lambda r, n: (_onehot(r, (n, T, K)), _ties(r, (n, T, K))),
     [lambda n: (n,), lambda n: (n, T)]),
    ("sparse", "SparseCategoricalAccuracy", {},
     lambda r, n: (r.integers(0, K, n), _ties(r, (n, K))), [lambda n: (n,), lambda n: (n, 1)]),
    ("sparse_col", "SparseCategoricalAccuracy", {},
     lambda r, n: (r.integers(0, K, (n, 1)).astype(float), _ties(r, (n, K))), [lambda n: (n,)]),
    ("sparse_seq", "SparseCategoricalAccuracy", {},
     lambda r, n: (r.integers(0, K, (n, T)), _ties(r, (n, T, K))),
     [lambda n: (n,), lambda n: (n, T)]),
    ("top_k", "TopKCategoricalAccuracy", {"k": 2},
     lambda r, n: (_onehot(r, (n, K)), _ties(r, (n, K))), [lambda n: (n,)]),
    ("top_k_seq", "TopKCategoricalAccuracy", {"k": 3},
     lambda r, n: (_onehot(r, (n, T, K)), _ties(r, (n, T, K))), [lambda n: (n, T)]),
    ("sparse_top_k", "SparseTopKCategoricalAccuracy", {"k": 1},
     lambda r, n: (r.integers(0, K, n), _ties(r, (n, K))), [lambda n: (n,)]),
    ("sparse_top_k_col", "SparseTopKCategoricalAccuracy", {"k": 2},
     lambda r, n: (r.integers(0, K, (n, 1)), _ties(r, (n, K))), [lambda n: (n,)]),
    ("sparse_top_k_seq", "SparseTopKCategoricalAccuracy", {},
     lambda r, n: (r.integers(0, 7, (n, T)), r.standard_normal((n, T, 7))),
     [lambda n: (n,), lambda n: (n, T)]),
    ("mse", "MeanSquaredError", {}, lambda r, n: (r.random((n, D)), r.random((n, D))),
     [lambda n: (n,), lambda n: (n, 1)]),
    ("mse_col", "MeanSquaredError", {}, lambda r, n: (r.random(n), r.random((n, 1))),
     [lambda n: (n,)]),
    ("mae_seq", "MeanAbsoluteError", {}, lambda r, n: (r.random((n, T, D)), r.random((n, T, D))),
     [lambda n: (n,), lambda n: (n, T)]),
]
IDS = [c[0] for c in CASES]
BATCHES = (7, 4, 9)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_metric_matches_keras_over_weighted_batches(case, dtype, rng):
    _, cls_name, kwargs, make, weight_shapes = case
    for weight_shape in [None, *weight_shapes]:
        ours, theirs = getattr(M, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
        for n in BATCHES:
            y_true, y_pred = make(rng, n)
            y_pred = y_pred.astype(dtype)
            weight = None if weight_shape is None else rng.uniform(0, 2, weight_shape(n))
            ours.update_state(y_true, y_pred, sample_weight=weight)
            theirs.update_state(y_true, y_pred, sample_weight=weight)
            assert isinstance(ours.result(), float)
            np.testing.assert_allclose(ours.result(), float(theirs.result()), **TOL)
        ours.reset_state()
        theirs.reset_state()
        assert ours.result() == 0.0 == float(theirs.result())
        y_true, y_pred = make(rng, 6)
        np.testing.assert_allclose(ours(y_true, sj.Tensor(y_pred)), float(theirs(y_true, y_pred)),
                                   **TOL)


@pytest.mark.parametrize("values, weights", [
    ([1.5, 0.25, 3.0], [8, 3, 5]),  # the loss tracker: scalar loss per batch, weight batch size
    ([np.arange(4.0), np.arange(3.0) - 2, np.ones(5)], [None, None, None]),
    ([np.arange(4.0), np.arange(3.0) - 2], [np.array([1, 0, 2, 1.0]), np.array([0.5, 0.5, 3])]),
    ([np.arange(6.0).reshape(2, 3), np.ones((3, 3))], [np.array([1.0, 2]), np.ones((3, 3))]),
    ([np.arange(3.0), np.arange(4.0)], [2.0, 0.5]),  # a scalar weight counts as that many samples
])
def test_mean_matches_keras(values, weights):
    ours, theirs = M.Mean(), keras.metrics.Mean()
    for v, w in zip(values, weights):
        ours.update_state(v, sample_weight=w)
        theirs.update_state(v, sample_weight=w)
        np.testing.assert_allclose(ours.result(), float(theirs.result()), **TOL)


def test_wrapped_loss_function_matches_keras_metric(rng):
    ours = M.get(L.binary_crossentropy)
    assert isinstance(ours, M.MeanMetricWrapper) and ours.name == "binary_crossentropy"
    theirs = keras.metrics.BinaryCrossentropy()
    for n in BATCHES:
        y_true, y_pred = rng.integers(0, 2, (n, D)), rng.uniform(0.05, 0.95, (n, D))
        weight = rng.random(n)
        ours.update_state(y_true, sj.Tensor(y_pred, requires_grad=True), sample_weight=weight)
        theirs.update_state(y_true, y_pred, sample_weight=weight)
    np.testing.assert_allclose(ours.result(), float(theirs.result()), **TOL)


NAMES = ["sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy",
         "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mse", "mae", "MSE",
         "mean_squared_error", "mean_absolute_error", "SparseCategoricalAccuracy", "Accuracy",
         "accuracy", "acc", "ACC", "BinaryAccuracy", "TopKCategoricalAccuracy", "mean"]
SHAPES = [((8,), (8, 1)), ((8, 1), (8, 1)), ((8,), (8, K)), ((8, 1), (8, K)), ((8, K), (8, K)),
          ((8, T), (8, T, K)), ((8, T, K), (8, T, K)), ((8, D), (8, D)), ((8, 1), (8, T, K))]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("true_shape, pred_shape", SHAPES)
def test_get_by_name_matches_keras_compile(name, true_shape, pred_shape):
    y_true, y_pred = np.zeros(true_shape), np.zeros(pred_shape)
    ours, theirs = M.get(name, y_true=y_true, y_pred=y_pred), get_metric(name, y_true, y_pred)
    assert type(ours).__name__ == type(theirs).__name__
    assert ours.name == theirs.name == name  # fit logs show the name as given


@pytest.mark.parametrize("loss, expected", [
    ("sparse_categorical_crossentropy", M.SparseCategoricalAccuracy),
    ("categorical_crossentropy", M.CategoricalAccuracy), ("bce", M.BinaryAccuracy),
    (L.SparseCategoricalCrossentropy(from_logits=True), M.SparseCategoricalAccuracy),
    (L.BinaryCrossentropy, M.BinaryAccuracy), (L.categorical_crossentropy, M.CategoricalAccuracy),
    ({"class_name": "BinaryCrossentropy", "config": {}}, M.BinaryAccuracy),
])
def test_accuracy_resolved_from_loss(loss, expected):
    metric = M.get("acc", loss=loss)
    assert type(metric) is expected and metric.name == "acc"


def test_get_passes_through_and_builds():
    top = M.TopKCategoricalAccuracy(k=3, name="top3")
    assert M.get(top) is top
    assert type(M.get(M.MeanAbsoluteError)) is M.MeanAbsoluteError
    again = M.get(M.serialize(top))
    assert type(again) is M.TopKCategoricalAccuracy and again.get_config() == top.get_config()

    def error_rate(y_true, y_pred):
        return 1.0 - M.binary_accuracy(y_true, y_pred)

    wrapped = M.get(error_rate)
    assert wrapped.name == "error_rate"
    assert wrapped(np.array([[1], [0], [1], [1]]), np.array([[0.9], [0.8], [0.2], [0.7]])) == 0.5


@pytest.mark.parametrize("cls_name, kwargs", [
    ("Mean", {}), ("Accuracy", {}), ("BinaryAccuracy", {"threshold": 0.3}),
    ("CategoricalAccuracy", {}), ("SparseCategoricalAccuracy", {}),
    ("TopKCategoricalAccuracy", {"k": 3}), ("SparseTopKCategoricalAccuracy", {"k": 2}),
    ("MeanSquaredError", {}), ("MeanAbsoluteError", {}),
])
def test_configs_match_keras(cls_name, kwargs):
    ours, theirs = getattr(M, cls_name)(**kwargs), getattr(keras.metrics, cls_name)(**kwargs)
    assert ours.name == theirs.name
    assert ours.get_config() == theirs.get_config()
    rebuilt = getattr(M, cls_name).from_config(theirs.get_config())
    assert rebuilt.get_config() == ours.get_config()


def test_errors():
    with pytest.raises(ValueError, match=r"metric: unknown metric 'accuracy_score'; known: .*mse"):
        M.get("accuracy_score")
    with pytest.raises(ValueError, match=r"metric 'accuracy': cannot tell binary, categorical "
                                         r"and sparse categorical accuracy apart from loss 'mse'"):
        M.get("accuracy", loss="mse")
    with pytest.raises(ValueError, match="cannot tell .* from loss None; pass y_true and y_pred"):
        M.get("acc")
    with pytest.raises(ValueError, match="unknown metric class 'eval'"):
        M.get({"class_name": "eval", "config": {}})
    with pytest.raises(ArgumentTypeError, match="could not interpret metric identifier 7"):
        M.get(7)
    with pytest.raises(ValueError, match="expected a built-in Metric"):
        M.serialize(M.MeanMetricWrapper(len))
    with pytest.raises(ArgumentError, match="TopKCategoricalAccuracy: k must be a positive int"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ArgumentTypeError, match="BinaryAccuracy: threshold must be a finite "
                                                "number, got 'x'"):
        M.BinaryAccuracy(threshold="x")
    with pytest.raises(TypeError, match="MeanMetricWrapper: fn must be callable"):
        M.MeanMetricWrapper(3)
    with pytest.raises(ValueError, match=r"mean: sample_weight of shape \(3,\) does not match "
                                         r"the per-sample values of shape \(4,\)"):
        M.Mean().update_state(np.ones(4), sample_weight=np.ones(3))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\), got values in \[0, 5\]"):
        M.SparseTopKCategoricalAccuracy().update_state(np.array([0, 5]), np.ones((2, K)))


@pytest.mark.parametrize("make, error, argument", [
    (lambda: M.SparseTopKCategoricalAccuracy(k=0), ArgumentError, "k"),
    (lambda: M.TopKCategoricalAccuracy(k=2.5), ArgumentTypeError, "k"),
    (lambda: M.TopKCategoricalAccuracy(k=True), ArgumentTypeError, "k"),
    (lambda: M.BinaryAccuracy(threshold=float("nan")), ArgumentError, "threshold"),
    (lambda: M.Mean(name=5), ArgumentTypeError, "name"),
    (lambda: M.Accuracy(dtype="int32"), ArgumentError, "dtype"),
    (lambda: M.Accuracy(dtype="nope"), ArgumentTypeError, "dtype"),
])
def test_metric_constructor_arguments_are_refused_naming_them(make, error, argument):
    with pytest.raises(error) as caught:
        make()
    assert f"{argument}" in str(caught.value) and ": " in str(caught.value)
