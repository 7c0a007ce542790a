"""shenjing.losses against Keras 3 itself (torch backend): values, gradients through Keras's
own formulas by torch autograd, sample weights, reductions, get/serialize."""

import importlib
import os

import numpy as np
import pytest

import shenjing as sj
from shenjing import losses as L
from tests.helpers import check_numeric_grad

os.environ.setdefault("KERAS_BACKEND", "torch")
torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("these tests feed torch tensors to Keras: KERAS_BACKEND must be 'torch'",
                allow_module_level=True)
KerasWrapper = importlib.import_module("keras.src.losses.losses").LossFunctionWrapper

N, K, T, D = 6, 4, 3, 5
# Keras 3 computes parts of float64 losses in float32 (ops.mean over the last axis, the division
# of the mean reductions), so comparisons with it use float32-level tolerances; weighting or
# divisor mistakes are O(1). check_numeric_grad holds our gradients to float64 precision.
TOL = {"rtol": 1e-6, "atol": 1e-8}


def _probs(rng, shape):
    p = rng.uniform(0.05, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


def _onehot(rng, shape):
    return np.eye(shape[-1])[rng.integers(0, shape[-1], shape[:-1])]


# name, our class, Keras class, kwargs, y_true maker, y_pred maker (rng -> array)
CASES = [
    ("cce", "CategoricalCrossentropy", {}, lambda r: _onehot(r, (N, K)),
     lambda r: _probs(r, (N, K))),
    ("cce_logits", "CategoricalCrossentropy", {"from_logits": True},
     lambda r: _probs(r, (N, K)), lambda r: r.standard_normal((N, K)) * 3),
    ("cce_smooth", "CategoricalCrossentropy", {"label_smoothing": 0.2},
     lambda r: _onehot(r, (N, K)), lambda r: _probs(r, (N, K))),
    ("cce_smooth_logits", "CategoricalCrossentropy", {"label_smoothing": 0.3, "from_logits": True},
     lambda r: _onehot(r, (N, K)), lambda r: r.standard_normal((N, K))),
    ("cce_seq", "CategoricalCrossentropy", {}, lambda r: _onehot(r, (N, T, K)),
     lambda r: _probs(r, (N, T, K))),
    ("cce_axis1", "CategoricalCrossentropy", {"axis": 1, "from_logits": True},
     lambda r: np.moveaxis(_onehot(r, (N, T, K)), -1, 1), lambda r: r.standard_normal((N, K, T))),
    ("scce", "SparseCategoricalCrossentropy", {}, lambda r: r.integers(0, K, N),
     lambda r: _probs(r, (N, K))),
    ("scce_col", "SparseCategoricalCrossentropy", {"from_logits": True},
     lambda r: r.integers(0, K, (N, 1)), lambda r: r.standard_normal((N, K)) * 2),
    ("scce_seq", "SparseCategoricalCrossentropy", {"from_logits": True},
     lambda r: r.integers(0, K, (N, T)), lambda r: r.standard_normal((N, T, K))),
    ("scce_ignore", "SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 1},
     lambda r: r.integers(0, K, (N, T)), lambda r: r.standard_normal((N, T, K))),
    ("bce", "BinaryCrossentropy", {}, lambda r: r.integers(0, 2, (N, 1)).astype(float),
     lambda r: r.uniform(0.02, 0.98, (N, 1))),
    ("bce_flat_true", "BinaryCrossentropy", {"from_logits": True},
     lambda r: r.integers(0, 2, N).astype(float), lambda r: r.standard_normal((N, 1)) * 3),
    ("bce_multi_smooth", "BinaryCrossentropy", {"label_smoothing": 0.1},
     lambda r: r.integers(0, 2, (N, D)).astype(float), lambda r: r.uniform(0.02, 0.98, (N, D))),
    ("bce_logits_smooth", "BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.25},
     lambda r: r.uniform(0, 1, (N, D)), lambda r: r.standard_normal((N, D)) * 4),
    ("bce_axis1", "BinaryCrossentropy", {"axis": 1, "from_logits": True},
     lambda r: r.integers(0, 2, (N, D, 2)).astype(float), lambda r: r.standard_normal((N, D, 2))),
    ("mse", "MeanSquaredError", {}, lambda r: r.standard_normal((N, D)),
     lambda r: r.standard_normal((N, D))),
    ("mse_flat_true", "MeanSquaredError", {}, lambda r: r.standard_normal(N),
     lambda r: r.standard_normal((N, 1))),
    ("mae", "MeanAbsoluteError", {}, lambda r: r.standard_normal((N, D)),
     lambda r: r.standard_normal((N, D))),
    ("mae_seq", "MeanAbsoluteError", {}, lambda r: r.standard_normal((N, T, D)),
     lambda r: r.standard_normal((N, T, D))),
    ("huber", "Huber", {}, lambda r: r.standard_normal((N, D)),
     lambda r: r.standard_normal((N, D)) * 2),
    ("huber_delta", "Huber", {"delta": 0.4}, lambda r: r.standard_normal((N, 1)),
     lambda r: r.standard_normal((N, 1))),
]
IDS = [c[0] for c in CASES]


def _weights(rng, kind, loss_shape):
    if kind is None:
        return None
    shape = {"batch": loss_shape[:1], "column": loss_shape[:1] + (1,), "full": loss_shape}[kind]
    return rng.uniform(0.0, 2.0, shape)


def _keras_loss(cls_name, kwargs, reduction, dtype="float64"):
    return getattr(keras.losses, cls_name)(reduction=reduction, dtype=dtype, **kwargs)


def _run_keras(loss, y_true, y_pred, weight, upstream):
    y_pred_t = torch.tensor(y_pred, requires_grad=True)
    out = loss(torch.tensor(y_true), y_pred_t,
               sample_weight=None if weight is None else torch.tensor(weight))
    (out * torch.tensor(upstream, dtype=out.dtype)).sum().backward()
    return out.detach().numpy(), y_pred_t.grad.numpy()


def _run_ours(loss, y_true, y_pred, weight, upstream):
    y_pred_t = sj.Tensor(y_pred, requires_grad=True)
    out = loss(y_true, y_pred_t, sample_weight=weight)
    (out * upstream.astype(out.dtype)).sum().backward()
    return out, y_pred_t.grad


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "sum", "none",
                                       "mean_with_sample_weight"])
def test_loss_class_matches_keras_float64(case, reduction, rng):
    _, cls_name, kwargs, make_true, make_pred = case
    y_true, y_pred = make_true(rng), make_pred(rng)
    per_sample = _keras_loss(cls_name, kwargs, "none")(y_true, y_pred).numpy()
    # Keras 3 aligns (N,) weights with the last axis of (N, T) losses: only full weights there
    for kind in (None, "full") + (("batch", "column") if per_sample.ndim == 1 else ()):
        weight = _weights(rng, kind, per_sample.shape)
        upstream = rng.standard_normal(per_sample.shape if reduction == "none" else ())
        ours = getattr(L, cls_name)(reduction=reduction, **kwargs)
        value, grad = _run_ours(ours, y_true, y_pred, weight, upstream)
        ref_value, ref_grad = _run_keras(_keras_loss(cls_name, kwargs, reduction),
                                         y_true, y_pred, weight, upstream)
        assert value.dtype == np.float64 and value.shape == ref_value.shape
        np.testing.assert_allclose(value.numpy(), ref_value, **TOL, err_msg=kind)
        np.testing.assert_allclose(grad, ref_grad, **TOL, err_msg=kind)
        if reduction == "sum_over_batch_size":  # the exact formula on Keras's float64 sum
            ref_sum = _keras_loss(cls_name, kwargs, "sum")(
                y_true, y_pred, sample_weight=weight).numpy()
            count = per_sample.size  # with ignore_class: the mean over the kept entries
            if "ignore_class" in kwargs:
                count = np.count_nonzero(y_true != kwargs["ignore_class"])
            np.testing.assert_allclose(value.numpy(), ref_sum / count, **TOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_loss_class_float32_matches_keras(case, rng):
    _, cls_name, kwargs, make_true, make_pred = case
    y_true, y_pred = make_true(rng).astype(np.float32), make_pred(rng).astype(np.float32)
    per_sample = _keras_loss(cls_name, kwargs, "none", "float32")(y_true, y_pred).numpy()
    weight = _weights(rng, "full", per_sample.shape).astype(np.float32)
    upstream = np.ones(())
    value, grad = _run_ours(getattr(L, cls_name)(**kwargs), y_true, y_pred, weight, upstream)
    ref_value, ref_grad = _run_keras(_keras_loss(cls_name, kwargs, "sum_over_batch_size",
                                                 "float32"), y_true, y_pred, weight, upstream)
    assert value.dtype == np.float32 and grad.dtype == np.float32
    np.testing.assert_allclose(value.numpy(), ref_value, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_loss_class_numeric_gradient(case, rng):
    _, cls_name, kwargs, make_true, make_pred = case
    y_true, y_pred = make_true(rng), make_pred(rng)
    loss = getattr(L, cls_name)(**kwargs)
    weight = rng.uniform(0.0, 2.0, N)
    check_numeric_grad(lambda yp: loss(y_true, yp, sample_weight=weight), y_pred)


@pytest.mark.parametrize("name, kwargs, make_true, make_pred", [
    ("categorical_crossentropy", {"label_smoothing": 0.1}, CASES[2][3], CASES[2][4]),
    ("categorical_crossentropy", {"from_logits": True, "axis": 1}, CASES[5][3], CASES[5][4]),
    ("sparse_categorical_crossentropy", {"from_logits": True}, CASES[8][3], CASES[8][4]),
    ("sparse_categorical_crossentropy", {"ignore_class": 2}, CASES[7][3], CASES[6][4]),
    ("binary_crossentropy", {"label_smoothing": 0.2}, CASES[12][3], CASES[12][4]),
    ("binary_crossentropy", {"from_logits": True, "axis": 1}, CASES[14][3], CASES[14][4]),
    ("mean_squared_error", {}, CASES[15][3], CASES[15][4]),
    ("mean_absolute_error", {}, CASES[18][3], CASES[18][4]),
    ("huber", {"delta": 0.5}, CASES[19][3], CASES[19][4]),
])
def test_functions_return_keras_per_sample_values(name, kwargs, make_true, make_pred, rng):
    y_true, y_pred = make_true(rng), make_pred(rng)
    ours = getattr(L, name)(y_true, sj.Tensor(y_pred), **kwargs)
    ref = getattr(keras.losses, name)(torch.tensor(y_true), torch.tensor(y_pred), **kwargs)
    assert ours.shape == tuple(ref.shape)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), **TOL)


def test_per_sample_weights_repeat_over_time_steps(rng):
    # Keras 3 cannot weight (N, T) losses by (N,) weights; ours equal its (N, T) repetition
    y_true, y_pred = rng.integers(0, K, (N, T)), rng.standard_normal((N, T, K))
    weight = rng.random(N)
    ours = L.SparseCategoricalCrossentropy(from_logits=True)(y_true, y_pred, sample_weight=weight)
    ref = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64",
                                                     reduction="sum")
    ref = ref(y_true, y_pred, sample_weight=np.repeat(weight[:, None], T, axis=1)).numpy()
    np.testing.assert_allclose(ours.numpy(), ref / (N * T), **TOL)


def test_wrapped_callable_matches_keras_wrapper(rng):
    y_true, y_pred = rng.standard_normal((N, D)), rng.standard_normal((N, D))
    weight = rng.random(N)

    def cubic(y_true, y_pred):  # works on shenjing and torch tensors alike
        d = y_pred - y_true
        return (d * d * d).sum(axis=-1) if isinstance(d, sj.Tensor) else (d ** 3).sum(dim=-1)

    ours = L.get(cubic)
    assert isinstance(ours, L.LossFunctionWrapper) and ours.name == "cubic"
    value, grad = _run_ours(ours, y_true, y_pred, weight, np.ones(()))
    ref_value, ref_grad = _run_keras(KerasWrapper(cubic, dtype="float64", reduction="sum"),
                                     y_true, y_pred, weight, np.ones(()))
    np.testing.assert_allclose(value.numpy(), ref_value / N, **TOL)
    np.testing.assert_allclose(grad, ref_grad / N, **TOL)


@pytest.mark.parametrize("name", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy", "mse", "mean_squared_error", "mae",
                                  "mean_absolute_error", "huber", "bce", "MSE", "MAE",
                                  "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
                                  "BinaryCrossentropy", "MeanSquaredError", "Huber"])
def test_get_by_name_matches_keras(name, rng):
    ours, theirs = L.get(name), keras.losses.get(name)
    if not isinstance(theirs, keras.losses.Loss):  # Keras returns functions for snake names
        theirs = KerasWrapper(theirs, dtype="float64", reduction="sum")
    else:
        theirs = type(theirs)(dtype="float64", reduction="sum")
    assert isinstance(ours, L.Loss)
    y_true, y_pred = _onehot(rng, (N, K)), _probs(rng, (N, K))
    if "sparse" in name.lower():
        y_true = rng.integers(0, K, N)
    ref = theirs(torch.tensor(y_true), torch.tensor(y_pred)).numpy()
    np.testing.assert_allclose(ours(y_true, y_pred).numpy(), ref / N, **TOL)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_config_round_trip_and_keras_configs(case, rng):
    _, cls_name, kwargs, make_true, make_pred = case
    y_true, y_pred = make_true(rng), make_pred(rng)
    loss = getattr(L, cls_name)(name="custom", reduction="sum", **kwargs)
    theirs = getattr(keras.losses, cls_name)(name="custom", reduction="sum", **kwargs)
    config = loss.get_config()
    for key, value in theirs.get_config().items():  # Keras's keys and values, ours may add
        assert config[key] == value, key
    again = L.get(L.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == config
    np.testing.assert_allclose(again(y_true, y_pred).numpy(), loss(y_true, y_pred).numpy())
    # a config saved by Keras builds the same loss here
    from_keras = L.get({"class_name": cls_name, "config": theirs.get_config()})
    assert type(from_keras) is type(loss) and from_keras.reduction == "sum"


def test_get_passes_through_and_builds():
    huber = L.Huber(delta=2.0)
    assert L.get(huber) is huber and L.get(None) is None
    assert isinstance(L.get(L.MeanAbsoluteError), L.MeanAbsoluteError)
    assert L.get(L.binary_crossentropy).fn is L.binary_crossentropy
    assert L.serialize(L.mean_squared_error) == {
        "class_name": "LossFunctionWrapper", "config": {
            "name": "mean_squared_error", "reduction": "sum_over_batch_size",
            "fn": "mean_squared_error"}}
    assert L.get(L.serialize(L.huber)).fn is L.huber

    class Scaled(L.MeanSquaredError):
        pass

    custom = L.get({"class_name": "Scaled", "config": {"name": "s"}}, {"Scaled": Scaled})
    assert type(custom) is Scaled and custom.name == "s"


def test_get_and_serialize_errors():
    with pytest.raises(ValueError, match=r"loss: unknown loss 'cross_entropy'; known: .*mse"):
        L.get("cross_entropy")
    with pytest.raises(ValueError, match=r"unknown loss class 'os.system'"):
        L.get({"class_name": "os.system", "config": {}})
    with pytest.raises(TypeError, match="config must be a dict"):
        L.get({"class_name": "Huber", "config": "delta=2"})
    with pytest.raises(ValueError, match="could not interpret loss identifier 3"):
        L.get(3)
    with pytest.raises(ValueError, match="unknown loss function 'print'"):
        L.get({"class_name": "LossFunctionWrapper", "config": {"fn": "print"}})
    with pytest.raises(ValueError, match="expected a Loss or a built-in loss function"):
        L.serialize(lambda y_true, y_pred: y_pred)
    with pytest.raises(ValueError, match="only built-in loss functions can be serialized"):
        L.serialize(L.LossFunctionWrapper(lambda y_true, y_pred: y_pred, name="f"))


def test_constructor_and_call_errors(rng):
    with pytest.raises(ValueError, match="MeanSquaredError: reduction must be one of .*'batch'"):
        L.MeanSquaredError(reduction="batch")
    with pytest.raises(ValueError, match=r"CategoricalCrossentropy: label_smoothing must be in "
                                         r"\[0, 1\], got 1.5"):
        L.CategoricalCrossentropy(label_smoothing=1.5)
    with pytest.raises(ValueError, match="Huber: delta must be a finite number > 0, got -1"):
        L.Huber(delta=-1)
    with pytest.raises(TypeError, match="BinaryCrossentropy: axis must be an int, got 'x'"):
        L.BinaryCrossentropy(axis="x")
    with pytest.raises(TypeError, match="ignore_class must be an int or None, got 1.5"):
        L.SparseCategoricalCrossentropy(ignore_class=1.5)
    with pytest.raises(TypeError, match="Huber: dtype must be floating"):
        L.Huber(dtype="int32")
    with pytest.raises(TypeError, match="fn must be callable"):
        L.LossFunctionWrapper(3)
    y = rng.standard_normal((N, D))
    with pytest.raises(ValueError, match=r"mean_squared_error: sample_weight of shape \(4,\) "
                                         r"does not match the per-sample losses of shape \(6,\)"):
        L.MeanSquaredError()(y, y, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="axis 2 is out of range for y_pred of rank 2"):
        L.binary_crossentropy(y, y, axis=2)


def test_dtype_argument_casts_and_empty_mask(rng):
    y_true, y_pred = rng.standard_normal((N, D)), rng.standard_normal((N, D))
    ours = L.MeanSquaredError(dtype="float32")(y_true, y_pred)
    assert ours.dtype == np.float32
    ref = keras.losses.MeanSquaredError()(y_true, y_pred).numpy()
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)
    # every label ignored: Keras's divide_no_nan gives 0
    labels = np.full(N, 3)
    loss = L.SparseCategoricalCrossentropy(ignore_class=3)(labels, _probs(rng, (N, K)))
    ref = keras.losses.SparseCategoricalCrossentropy(ignore_class=3)(labels, _probs(rng, (N, K)))
    assert loss.item() == 0.0 == float(ref)


@pytest.mark.parametrize("loss", [L.sparse_categorical_crossentropy,
                                  L.SparseCategoricalCrossentropy(),
                                  L.categorical_crossentropy])
def test_zero_classes_are_refused_naming_y_pred(loss):
    """A (N, 0) prediction has no class to score: refused naming y_pred's shape, not read as
    out-of-range labels or reduced to a NaN."""
    y_true = np.zeros((4, 0)) if loss is L.categorical_crossentropy else np.zeros(4)
    with pytest.raises(sj.errors.ArgumentError, match=r"y_pred has 0 classes .*\(4, 0\)"):
        loss(y_true, np.zeros((4, 0)))
