import contextlib
import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import loss as L
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional

EPS = 1e-7  # keras.backend.epsilon()
REDUCTIONS = ["mean", "sum", "none"]


def _torch_reduce(per_sample, reduction):
    """Keras's reductions of a per-sample loss: mean (sum_over_batch_size), sum, none."""
    if reduction == "mean":
        return per_sample.mean()
    return per_sample.sum() if reduction == "sum" else per_sample


@contextlib.contextmanager
def _no_overflow():
    """Warnings as errors, and overflow, division by zero and NaN as exceptions."""
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        yield


def _soft_targets(rng, shape):
    t = rng.uniform(0.0, 1.0, shape)
    return t / t.sum(axis=-1, keepdims=True)


# ----- categorical crossentropy ------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 6)], ids=str)
def test_categorical_from_logits_matches_torch(shape, smoothing, reduction, rng):
    x, k = rng.standard_normal(shape) * 3, shape[-1]
    y = np.eye(k)[rng.integers(0, k, shape[:-1])]
    y[0] = _soft_targets(rng, k)  # soft targets as well as one-hot ones

    def ours(t, p):
        return L.categorical_crossentropy(t, p, from_logits=True, label_smoothing=smoothing,
                                          reduction=reduction)

    def theirs(t, p):
        smoothed = t * (1 - smoothing) + smoothing / k  # Keras's label smoothing, explicitly
        per = F.cross_entropy(p.movedim(-1, 1), smoothed.movedim(-1, 1), reduction="none")
        return _torch_reduce(per, reduction)

    check_against_torch(ours, theirs, y, x)
    check_numeric_grad(ours, y, x)


def test_categorical_class_axis_1(rng):
    x = rng.standard_normal((3, 5, 4))  # (N, K, T), the class axis is 1 as in torch
    y = np.moveaxis(np.eye(5)[rng.integers(0, 5, (3, 4))], -1, 1)
    check_against_torch(
        lambda t, p: L.categorical_crossentropy(t, p, from_logits=True, axis=1),
        lambda t, p: F.cross_entropy(p, t), y, x)
    check_against_torch(
        lambda t, p: L.categorical_crossentropy(t, p, axis=1, reduction="none"),
        lambda t, p: -(t * torch.log((p / p.sum(1, keepdim=True)).clamp(EPS, 1 - EPS))).sum(1),
        y, rng.uniform(0.1, 1.0, (3, 5, 4)))


def _keras_probability_cce(t, p, axis=-1):
    """Keras 3: p / sum(p), clipped to [eps, 1 - eps], then -sum(t * log)."""
    q = (p / p.sum(axis, keepdim=True)).clamp(EPS, 1 - EPS)
    return -(t * torch.log(q)).sum(axis)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_categorical_from_probabilities_keras_clipping(smoothing, reduction, rng):
    p = rng.uniform(0.05, 1.0, (6, 4))  # unnormalised rows: Keras divides by the row sum
    p[0] = [1e-12, 0.3, 0.3, 0.4]  # one entry clipped up to eps
    p[1] = [1.0, 1e-12, 1e-12, 1e-12]  # one clipped down to 1 - eps, three up to eps
    y = np.eye(4)[rng.integers(0, 4, 6)]
    y[0, 0] = y[1, 0] = 1.0

    def ours(t, q):
        return L.categorical_crossentropy(t, q, label_smoothing=smoothing, reduction=reduction)

    def theirs(t, q):
        smoothed = t * (1 - smoothing) + smoothing / 4
        return _torch_reduce(_keras_probability_cce(smoothed, q), reduction)

    check_against_torch(ours, theirs, y, p)
    check_numeric_grad(ours, y[2:], p[2:])  # the unclipped rows (the clip kinks are not smooth)


# ----- sparse categorical crossentropy -----------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["N", "N1", "NT", "axis1"])
def test_sparse_from_logits_matches_torch(case, reduction, rng):
    k = 5
    if case in ("N", "N1"):
        x, labels = rng.standard_normal((6, k)) * 3, rng.integers(0, k, 6)
        torch_x, axis = (lambda p: p), -1
    elif case == "NT":
        x, labels = rng.standard_normal((3, 4, k)) * 3, rng.integers(0, k, (3, 4))
        torch_x, axis = (lambda p: p.movedim(-1, 1)), -1
    else:
        x, labels = rng.standard_normal((3, k, 4)) * 3, rng.integers(0, k, (3, 4))
        torch_x, axis = (lambda p: p), 1
    ours_labels = labels[:, None] if case == "N1" else labels

    def ours(p):
        return L.sparse_categorical_crossentropy(ours_labels, p, from_logits=True, axis=axis,
                                                 reduction=reduction)

    def theirs(p):
        per = F.cross_entropy(torch_x(p), torch.from_numpy(labels), reduction="none")
        return _torch_reduce(per, reduction)

    check_against_torch(ours, theirs, x)
    check_numeric_grad(ours, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sparse_from_probabilities_keras_clipping(reduction, rng):
    p = rng.uniform(0.05, 1.0, (3, 4, 5))
    labels = rng.integers(0, 5, (3, 4))
    p[0, 0] = [1e-12, 0.2, 0.3, 0.3, 0.2]
    labels[0, 0] = 0  # the label's probability is clipped up to eps

    def ours(q):
        return L.sparse_categorical_crossentropy(labels, q, reduction=reduction)

    def theirs(q):
        clipped = (q / q.sum(-1, keepdim=True)).clamp(EPS, 1 - EPS)
        picked = torch.log(clipped).gather(-1, torch.from_numpy(labels)[..., None])[..., 0]
        return _torch_reduce(-picked, reduction)

    check_against_torch(ours, theirs, p)
    check_numeric_grad(lambda q: L.sparse_categorical_crossentropy(labels[1:], q,
                                                                   reduction=reduction), p[1:])


def test_sparse_equals_categorical_on_one_hot(rng):
    x, labels = rng.standard_normal((7, 4)), rng.integers(0, 4, 7)
    for from_logits in (True, False):
        p = x if from_logits else np.abs(x) + 0.1
        sparse = L.sparse_categorical_crossentropy(labels, p, from_logits=from_logits)
        dense = L.categorical_crossentropy(np.eye(4)[labels], p, from_logits=from_logits)
        np.testing.assert_allclose(sparse.numpy(), dense.numpy(), rtol=1e-14)
    # float labels holding whole numbers are accepted (Keras casts them to int)
    as_float = L.sparse_categorical_crossentropy(labels.astype(np.float32), x, from_logits=True)
    as_int = L.sparse_categorical_crossentropy(labels, x, from_logits=True)
    assert as_float.numpy() == as_int.numpy()


def test_sparse_label_errors(rng):
    x = rng.standard_normal((4, 5))
    name = "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match=rf"{name}: labels must be in \[0, 5\) for 5 classes, "
                                         r"got 5 at index \(2,\)"):
        L.sparse_categorical_crossentropy(np.array([0, 1, 5, 2]), x)
    with pytest.raises(ValueError, match=r"got -1 at index \(0,\)"):
        L.sparse_categorical_crossentropy(np.array([-1, 1, 4, 2]), x, from_logits=True)
    with pytest.raises(ValueError, match=rf"{name}: y_true must have y_pred's shape without the "
                                         r"class axis 1, i\.e\. \(4,\) \(or with a trailing "
                                         r"1\), got y_true \(3,\) and y_pred \(4, 5\)\."):
        L.sparse_categorical_crossentropy(np.array([0, 1, 2]), x)
    with pytest.raises(ValueError, match=r"got y_true \(4, 2\) and y_pred \(4, 5\)"):
        L.sparse_categorical_crossentropy(np.zeros((4, 2), dtype=int), x)
    with pytest.raises(ValueError, match=rf"{name}: y_true must hold integer class labels, got "
                                         r"non-integer values such as 1.5"):
        L.sparse_categorical_crossentropy(np.array([0, 1.5, 2, 3]), x)
    with pytest.raises(TypeError, match=rf"{name}: y_true must hold integer class labels, got "
                                        r"bool"):
        L.sparse_categorical_crossentropy(np.array([True, False, True, True]), x)


# ----- binary crossentropy -----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4)], ids=str)
def test_binary_from_logits_matches_torch(shape, smoothing, reduction, rng):
    x = rng.standard_normal(shape) * 4
    z = rng.integers(0, 2, shape).astype(float)
    z.flat[0] = 0.3  # soft targets too

    def ours(t, p):
        return L.binary_crossentropy(t, p, from_logits=True, label_smoothing=smoothing,
                                     reduction=reduction)

    def theirs(t, p):
        smoothed = t * (1 - smoothing) + 0.5 * smoothing
        per = F.binary_cross_entropy_with_logits(p, smoothed, reduction="none").mean(-1)
        return _torch_reduce(per, reduction)

    check_against_torch(ours, theirs, z, x)
    check_numeric_grad(ours, z, x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_binary_from_probabilities_keras_clipping(smoothing, reduction, rng):
    p = rng.uniform(0.02, 0.98, (5, 4))
    z = rng.integers(0, 2, (5, 4)).astype(float)
    p[0] = [0.0, 1.0, 1e-9, 1 - 1e-9]  # clipped to [eps, 1 - eps], as Keras does

    def ours(t, q):
        return L.binary_crossentropy(t, q, label_smoothing=smoothing, reduction=reduction)

    def theirs(t, q):
        smoothed = t * (1 - smoothing) + 0.5 * smoothing
        per = F.binary_cross_entropy(q.clamp(EPS, 1 - EPS), smoothed, reduction="none")
        return _torch_reduce(per.mean(-1), reduction)

    check_against_torch(ours, theirs, z, p)
    check_numeric_grad(ours, z[1:], p[1:])


# ----- regression losses -------------------------------------------------------------------------
REGRESSION = {
    "mse": (L.mean_squared_error, lambda p, t: F.mse_loss(p, t, reduction="none")),
    "mae": (L.mean_absolute_error, lambda p, t: F.l1_loss(p, t, reduction="none")),
    "huber": (L.huber, lambda p, t: F.huber_loss(p, t, reduction="none", delta=1.0)),
    "huber_delta_0.3": (lambda t, p, **kw: L.huber(t, p, delta=0.3, **kw),
                        lambda p, t: F.huber_loss(p, t, reduction="none", delta=0.3)),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4)], ids=str)
def test_regression_matches_torch(shape, name, reduction, rng):
    ours_fn, elementwise = REGRESSION[name]
    p, t = rng.standard_normal(shape) * 2, rng.standard_normal(shape)
    t.flat[0] = p.flat[0]  # a zero error: the slope there is 0, as in torch

    def ours(y_true, y_pred):
        return ours_fn(y_true, y_pred, reduction=reduction)

    def theirs(y_true, y_pred):
        return _torch_reduce(elementwise(y_pred, y_true).mean(-1), reduction)

    check_against_torch(ours, theirs, t, p)
    t.flat[0] += 0.5  # away from the kinks of mae and huber for the central differences
    check_numeric_grad(ours, t, p)


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_rank_alignment_like_keras(name, rng):
    ours_fn, elementwise = REGRESSION[name]
    t, p = rng.standard_normal(5), rng.standard_normal((5, 1))
    # (N,) against (N, 1): the 1-D side gains the axis, so there is one loss per sample
    for y_true, y_pred in ((t, p), (t[:, None], p[:, 0])):
        out = ours_fn(y_true, y_pred, reduction="none").numpy()
        ref = elementwise(torch.tensor(p[:, 0]), torch.tensor(t)).numpy()
        assert out.shape == (5,)
        np.testing.assert_allclose(out, ref, rtol=1e-14)
    # (N, T, 1) against (N, T): the trailing 1 is squeezed
    t3, p2 = rng.standard_normal((2, 3, 1)), rng.standard_normal((2, 3))
    check_against_torch(
        lambda a, b: ours_fn(a, b, reduction="none"),
        lambda a, b: elementwise(b, a[..., 0]).mean(-1), t3, p2)


# ----- shared behaviour --------------------------------------------------------------------------
def test_extreme_logits_no_overflow_nan_or_warning(rng):
    x = rng.standard_normal((4, 3))
    x[0] = [1000.0, -1000.0, 0.0]
    x[1] = [-1000.0, -1000.0, 1000.0]
    x[2] = [1000.0, 1000.0, 1000.0]
    y = np.eye(3)[[1, 1, 0, 2]]
    labels = np.array([1, 1, 0, 2])
    z = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.5, 0.2, 0.9]])
    with _no_overflow():
        out = [
            check_against_torch(
                lambda t, p: L.categorical_crossentropy(t, p, from_logits=True),
                lambda t, p: F.cross_entropy(p, t), y, x)[0],
            check_against_torch(
                lambda p: L.sparse_categorical_crossentropy(labels, p, from_logits=True),
                lambda p: F.cross_entropy(p, torch.from_numpy(labels)), x)[0],
            check_against_torch(
                lambda t, p: L.binary_crossentropy(t, p, from_logits=True),
                lambda t, p: F.binary_cross_entropy_with_logits(p, t), z, x)[0],
        ]
    assert all(np.isfinite(o.numpy()) for o in out)
    per_sample = L.sparse_categorical_crossentropy(labels, x, from_logits=True, reduction="none")
    # -log softmax of a logit 2000 below the max, and of three equal logits
    np.testing.assert_allclose(per_sample.numpy()[:3], [2000.0, 2000.0, np.log(3)], rtol=1e-15)


def test_keras_documented_values():
    # the examples in the Keras 3 docstrings
    y_true, y_pred = [[0, 1, 0], [0, 0, 1]], np.array([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    cce = L.categorical_crossentropy(y_true, y_pred, reduction="none").numpy()
    np.testing.assert_allclose(cce, [0.0513, 2.303], rtol=1e-3)
    scce = L.sparse_categorical_crossentropy([1, 2], y_pred, reduction="none").numpy()
    np.testing.assert_allclose(scce, [0.0513, 2.303], rtol=1e-3)
    y_true, y_pred = [[0, 1], [0, 0]], np.array([[0.6, 0.4], [0.4, 0.6]])
    bce = L.binary_crossentropy(y_true, y_pred, reduction="none").numpy()
    np.testing.assert_allclose(bce, [0.916, 0.714], rtol=1e-3)
    np.testing.assert_allclose(L.huber(y_true, y_pred).numpy(), 0.155, rtol=1e-12)
    # one sample by hand: -log(0.95) with y_pred normalised first
    np.testing.assert_allclose(cce[0], -np.log(0.95), rtol=1e-15)


LOSS_CALLS = {
    "categorical_crossentropy": lambda t, p: L.categorical_crossentropy(t, p, from_logits=True),
    "categorical_probabilities": lambda t, p: L.categorical_crossentropy(t, np.abs(p) + 0.1),
    "binary_crossentropy": lambda t, p: L.binary_crossentropy(t, p, from_logits=True),
    "binary_probabilities": lambda t, p: L.binary_crossentropy(t, 1 / (1 + np.exp(-p))),
    "mse": L.mean_squared_error,
    "mae": L.mean_absolute_error,
    "huber": L.huber,
}


@pytest.mark.parametrize("name", sorted(LOSS_CALLS))
def test_float32_in_float32_out(name, rng):
    p = rng.standard_normal((4, 3)).astype(np.float32)
    t = np.eye(3)[rng.integers(0, 3, 4)]  # float64 targets are cast to y_pred's float32
    if "probabilities" in name:
        pred = sj.Tensor((np.abs(p) + 0.1) if "categorical" in name else 1 / (1 + np.exp(-p)),
                         requires_grad=True)
        fn = {"categorical_probabilities": L.categorical_crossentropy,
              "binary_probabilities": L.binary_crossentropy}[name]
    else:
        pred, fn = sj.Tensor(p, requires_grad=True), LOSS_CALLS[name]
    out = fn(t, pred)
    out.backward()
    assert out.dtype == np.float32 and pred.grad.dtype == np.float32
    reference = fn(t, pred.data.astype(np.float64)).numpy()
    np.testing.assert_allclose(out.numpy(), reference, rtol=1e-5)
    sparse_pred = sj.Tensor(p, requires_grad=True)
    sparse = L.sparse_categorical_crossentropy(t.argmax(-1), sparse_pred, from_logits=True)
    sparse.backward()
    assert sparse.dtype == np.float32 and sparse_pred.grad.dtype == np.float32


def test_integer_targets_are_cast(rng):
    x = rng.standard_normal((4, 3))
    y = np.eye(3, dtype=np.int64)[[0, 1, 2, 1]]
    a = L.categorical_crossentropy(y, x, from_logits=True).numpy()
    b = L.categorical_crossentropy(y.astype(float), x, from_logits=True).numpy()
    assert a == b


def test_shape_and_argument_errors(rng):
    p = rng.standard_normal((4, 2))
    for name in ["mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy",
                 "categorical_crossentropy"]:
        with pytest.raises(ValueError, match=rf"{name}: y_true and y_pred must have the same "
                                             r"shape, got y_true \(4, 3\) and y_pred \(4, 2\)"):
            getattr(L, name)(np.zeros((4, 3)), p)
    with pytest.raises(ValueError, match=r"mean_squared_error: reduction must be one of 'mean' "
                                         r"\(or 'sum_over_batch_size'\), 'sum', 'none', got 'avg'"):
        L.mean_squared_error(p, p, reduction="avg")
    with pytest.raises(ValueError, match=r"binary_crossentropy: label_smoothing must be in "
                                         r"\[0, 1\], got 1.5"):
        L.binary_crossentropy(p, p, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"huber: delta must be a finite number > 0, got 0"):
        L.huber(p, p, delta=0)
    with pytest.raises(ValueError, match=r"categorical_crossentropy: axis 2 is out of range for "
                                         r"y_pred of rank 2 \(shape \(4, 2\)\)"):
        L.categorical_crossentropy(p, p, axis=2)
    with pytest.raises(TypeError, match=r"mean_squared_error: expected a floating-point y_pred "
                                        r"\(float32 or float64\), got dtype int64"):
        L.mean_squared_error(p, np.zeros((4, 2), dtype=np.int64))
    # 'sum_over_batch_size' is Keras's name for the default 'mean'; None means 'none'
    np.testing.assert_allclose(L.mean_squared_error(p, p + 2, reduction=None).numpy(), [4] * 4,
                               rtol=1e-14)
    a = L.mean_squared_error(p, p + 1.5, reduction="sum_over_batch_size").numpy()
    assert a == L.mean_squared_error(p, p + 1.5).numpy()
    np.testing.assert_allclose(a, 2.25, rtol=1e-14)


def test_get_names():
    assert L.get("categorical_crossentropy") is L.categorical_crossentropy
    assert L.get("sparse_categorical_crossentropy") is L.sparse_categorical_crossentropy
    assert L.get("binary_crossentropy") is L.binary_crossentropy
    assert L.get("mse") is L.get("mean_squared_error") is L.get("MSE") is L.mean_squared_error
    assert L.get("mae") is L.get("mean_absolute_error") is L.mean_absolute_error
    assert L.get("huber") is L.huber
    assert L.get(L.huber) is L.huber
    with pytest.raises(ValueError, match=r"loss: unknown loss 'crossentropy'; known names: "
                                         r"binary_crossentropy, categorical_crossentropy, huber"):
        L.get("crossentropy")
