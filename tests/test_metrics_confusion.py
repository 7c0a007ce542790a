"""Precision, Recall, AUC, F1Score, FBetaScore, RootMeanSquaredError against Keras 3 on the same
batches (stateful over batches, sample weights, reset), by name in get(), in fit, and saved."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, metrics, optimizers
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras

keras = import_keras()
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")


def _batches(seed, n=3, size=16, classes=1, logits=False, edges=False):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        shape = (size, classes)
        y_pred = (rng.standard_normal(shape) * 2 if logits else rng.uniform(0, 1, shape))
        if edges:  # exactly on AUC's bucket edges (k / 199), and the ends 0 and 1
            y_pred = (rng.integers(0, 200, shape) / 199)
        y_pred = y_pred.astype(np.float32)
        y_true = (rng.uniform(0, 1, shape) < 0.4).astype(np.float32)
        weight = rng.uniform(0, 2, size).astype(np.float32)
        out.append((y_true, y_pred, weight))
    return out


def _compare(ours, theirs, batches, weighted, rtol=1e-5, atol=1e-6):
    for y_true, y_pred, weight in batches:
        w = weight if weighted else None
        ours.update_state(y_true, y_pred, sample_weight=w)
        theirs.update_state(y_true, y_pred, sample_weight=w)
        expected = keras.ops.convert_to_numpy(theirs.result())
        np.testing.assert_allclose(ours.result(), expected, rtol=rtol, atol=atol)
    ours.reset_state()
    theirs.reset_state()
    y_true, y_pred, _ = batches[0]
    ours.update_state(y_true, y_pred)
    theirs.update_state(y_true, y_pred)
    np.testing.assert_allclose(ours.result(), keras.ops.convert_to_numpy(theirs.result()),
                               rtol=rtol, atol=atol)


PR_CASES = [
    ({}, 1), ({"thresholds": [0.3, 0.7]}, 1), ({"thresholds": [0.0, 0.5, 1.0]}, 1),
    ({"thresholds": 0.2}, 3), ({"top_k": 2}, 4), ({"class_id": 1}, 3),
    ({"top_k": 1, "class_id": 2}, 4), ({"thresholds": [0.1, 0.4, 0.9], "class_id": 0}, 3),
]


@pytest.mark.parametrize("name", ["Precision", "Recall"])
@pytest.mark.parametrize("kwargs, classes", PR_CASES, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_precision_recall_like_keras(name, kwargs, classes, weighted):
    batches = _batches(0, classes=classes)
    _compare(getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs), batches,
             weighted)


AUC_CASES = [
    {}, {"curve": "PR"}, {"curve": "PR", "summation_method": "minoring"},
    {"curve": "PR", "summation_method": "majoring"}, {"summation_method": "minoring"},
    {"summation_method": "majoring"}, {"curve": "PRGAIN"}, {"num_thresholds": 7},
    {"thresholds": [0.1, 0.35, 0.4, 0.8]}, {"thresholds": [0.25, 0.5, 0.75], "curve": "PR"},
]


@pytest.mark.parametrize("kwargs", AUC_CASES, ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_auc_like_keras(kwargs, weighted):
    _compare(metrics.AUC(**kwargs), keras.metrics.AUC(**kwargs), _batches(1), weighted)


def test_auc_on_bucket_edges_like_keras():
    for kwargs in ({}, {"curve": "PR"}):
        _compare(metrics.AUC(**kwargs), keras.metrics.AUC(**kwargs), _batches(2, edges=True),
                 weighted=False)


@pytest.mark.parametrize("kwargs", [
    {"multi_label": True}, {"multi_label": True, "num_labels": 3, "curve": "PR"},
    {"multi_label": True, "label_weights": [0.2, 1.0, 0.5]}, {"label_weights": [0.2, 1.0, 0.5]},
    {"from_logits": True}, {"multi_label": True, "from_logits": True, "curve": "PR"},
], ids=str)
def test_auc_multi_label_and_logits_like_keras(kwargs):
    batches = _batches(3, classes=3, logits=kwargs.get("from_logits", False))
    _compare(metrics.AUC(**kwargs), keras.metrics.AUC(**kwargs), batches, weighted=True)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("kwargs", [{}, {"threshold": 0.5}, {"beta": 2.0}, {"beta": 0.5,
                                                                           "threshold": 0.3}],
                         ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_fbeta_like_keras(average, kwargs, weighted):
    batches = _batches(4, classes=4)
    _compare(metrics.FBetaScore(average, **kwargs), keras.metrics.FBetaScore(average, **kwargs),
             batches, weighted)
    if "beta" not in kwargs:
        _compare(metrics.F1Score(average, **kwargs), keras.metrics.F1Score(average, **kwargs),
                 batches, weighted)


@pytest.mark.parametrize("weighted", [False, True])
def test_root_mean_squared_error_like_keras(weighted):
    _compare(metrics.RootMeanSquaredError(), keras.metrics.RootMeanSquaredError(),
             _batches(5, classes=3), weighted)


def test_top_k_categorical_accuracy_like_keras():
    _compare(metrics.TopKCategoricalAccuracy(k=2), keras.metrics.TopKCategoricalAccuracy(k=2),
             _batches(6, classes=5), weighted=True)


@pytest.mark.parametrize("name, cls", [
    ("auc", metrics.AUC), ("AUC", metrics.AUC), ("precision", metrics.Precision),
    ("recall", metrics.Recall), ("f1_score", metrics.F1Score),
    ("f_beta_score", metrics.FBetaScore), ("root_mean_squared_error", metrics.RootMeanSquaredError),
    ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
])
def test_get_by_keras_name(name, cls):
    metric = metrics.get(name)
    assert type(metric) is cls and metric.name == name
    assert type(keras.metrics.get(name)).__name__ == cls.__name__  # Keras reads it so too
    assert type(metrics.get("fbeta_score")) is metrics.FBetaScore  # its default name, too


@pytest.mark.parametrize("metric", [
    metrics.AUC(curve="PR", thresholds=[0.2, 0.6], multi_label=True, label_weights=[1, 2]),
    metrics.Precision(thresholds=[0.2, 0.6], class_id=1), metrics.Recall(top_k=3),
    metrics.F1Score("macro", threshold=0.4), metrics.FBetaScore("weighted", beta=2.0),
    metrics.RootMeanSquaredError(name="rmse"),
], ids=lambda m: type(m).__name__)
def test_config_round_trip_and_keras_config(metric):
    config = metrics.serialize(metric)
    again = metrics.get(config)
    assert type(again) is type(metric) and again.get_config() == metric.get_config()
    theirs = getattr(keras.metrics, type(metric).__name__).from_config(metric.get_config())
    assert {k: v for k, v in theirs.get_config().items() if k in metric.get_config()
            and k not in ("dtype", "label_weights")} == {
        k: v for k, v in metric.get_config().items() if k in theirs.get_config()
        and k not in ("dtype", "label_weights")}


@pytest.mark.parametrize("make, match", [
    (lambda: metrics.AUC(num_thresholds=1), "num_thresholds"),
    (lambda: metrics.AUC(curve="XY"), "curve"),
    (lambda: metrics.AUC(summation_method="trapezoid"), "summation_method"),
    (lambda: metrics.AUC(num_labels=3), "num_labels"),
    (lambda: metrics.Precision(thresholds=[0.5, 1.5]), "thresholds"),
    (lambda: metrics.Recall(top_k=0), "top_k"),
    (lambda: metrics.F1Score(average="samples"), "average"),
    (lambda: metrics.FBetaScore(beta=0.0), "beta"),
    (lambda: metrics.F1Score(threshold=0.0), "threshold"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises((ArgumentError, TypeError), match=match):
        make()


def test_mismatched_shapes_are_refused():
    with pytest.raises(ArgumentError, match="precision"):
        metrics.Precision().update_state(np.ones((4, 2)), np.ones((4, 3)))
    with pytest.raises(ArgumentError, match="f1_score"):
        metrics.F1Score().update_state(np.ones(4), np.ones(4))


def _binary_model():
    sj.utils.set_seed(0)
    model = sj.Sequential([layers.Input((3,)), layers.Dense(4, activation="tanh"),
                           layers.Dense(1, activation="sigmoid")])
    return model


def test_in_fit_per_epoch_equal_keras_on_the_same_predictions(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x[:, :1] + 0.5 * rng.standard_normal((40, 1)) > 0).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, 40).astype(np.float32)
    model = _binary_model()
    auc = metrics.AUC()
    # a learning rate of 0: every batch sees the same model, so an epoch's metrics are those of
    # model.predict(x) over the same batches; two epochs check that each epoch starts afresh
    model.compile(optimizer=optimizers.SGD(0.0), loss="binary_crossentropy",
                  metrics=[auc, "precision", metrics.Recall(thresholds=0.3),
                           metrics.AUC(curve="PR", name="pr_auc"), "root_mean_squared_error"])
    history = model.fit(x, y, batch_size=16, epochs=2, sample_weight=weight, verbose=0,
                        validation_data=(x[:24], y[:24]))
    y_pred = model.predict(x, verbose=0)
    theirs = {"auc": keras.metrics.AUC(), "precision": keras.metrics.Precision(),
              "recall": keras.metrics.Recall(thresholds=0.3),
              "pr_auc": keras.metrics.AUC(curve="PR"),
              "root_mean_squared_error": keras.metrics.RootMeanSquaredError()}
    for name, metric in theirs.items():
        for start in range(0, 40, 16):
            s = slice(start, start + 16)
            # compile's metrics are unweighted in Keras 3 (weighted_metrics take sample_weight)
            metric.update_state(y[s], y_pred[s])
        expected = float(keras.ops.convert_to_numpy(metric.result()))
        assert history.history[name] == pytest.approx([expected] * 2, rel=1e-5, abs=1e-6), name
        metric.reset_state()
        metric.update_state(y[:24], y_pred[:24])
        expected = float(keras.ops.convert_to_numpy(metric.result()))
        assert history.history["val_" + name][-1] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the metric was reset before the validation pass: it holds the 24 validation samples only
    assert auc.true_positives[0] + auc.false_negatives[0] == y[:24].sum()
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    result = loaded.evaluate(x[:24], y[:24], verbose=0, return_dict=True)
    assert result["auc"] == pytest.approx(history.history["val_auc"][-1], rel=1e-6)
