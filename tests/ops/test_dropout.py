import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.dropout import dropout
from shenjing.utils import set_seed
from tests.helpers import check_numeric_grad

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_mask_statistics_and_exact_scale(rng, rate):
    x = rng.uniform(1.0, 2.0, (1000, 1000))  # no zeros: y == 0 exactly where dropped
    y = dropout(x, rate, training=True, rng=rng).numpy()
    kept = y != 0
    n, p = kept.size, 1.0 - rate
    assert abs(kept.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_array_equal(y[kept], x[kept] * (1.0 / (1.0 - rate)))


def test_scale_matches_torch(rng):
    for dtype, torch_dtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        ours = dropout(np.ones(10000, dtype), 0.3, training=True, rng=rng).numpy()
        theirs = torch.nn.functional.dropout(torch.ones(10000, dtype=torch_dtype), 0.3).numpy()
        assert ours.dtype == dtype
        np.testing.assert_array_equal(np.unique(ours), np.unique(theirs))  # {0, 1/(1-p)}


def test_gradient_is_mask_times_scale(rng):
    x = sj.Tensor(rng.uniform(1.0, 2.0, (40, 30)).astype(np.float32), requires_grad=True)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    y = dropout(x, 0.4, training=True, seed=3)
    y.backward(gy)
    kept = y.numpy() != 0
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, gy * kept * np.float32(1.0 / 0.6))


def test_numeric_grad(rng):
    check_numeric_grad(lambda x: dropout(x, 0.5, training=True, seed=11),
                       rng.standard_normal((6, 7)))
    check_numeric_grad(lambda x: dropout(x, 0.3, training=True, noise_shape=(None, 1, 4), seed=2),
                       rng.standard_normal((3, 5, 4)))


def test_identity_when_not_training_or_rate_zero(rng):
    x = sj.Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    assert dropout(x, 0.5) is x
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    array = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(dropout(array, 0.5).numpy(), array)


def test_reproducible_with_seed_and_set_seed(rng):
    x = rng.standard_normal((50, 50))
    a = dropout(x, 0.5, training=True, seed=7).numpy()
    b = dropout(x, 0.5, training=True, seed=7).numpy()
    c = dropout(x, 0.5, training=True, seed=8).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = dropout(x, 0.5, training=True, rng=np.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(a, d)  # seed=n draws like default_rng(n)
    set_seed(123)
    e = [dropout(x, 0.5, training=True).numpy() for _ in range(2)]
    set_seed(123)
    f = [dropout(x, 0.5, training=True).numpy() for _ in range(2)]
    np.testing.assert_array_equal(e[0], f[0])
    np.testing.assert_array_equal(e[1], f[1])
    assert not np.array_equal(e[0], e[1])  # the default generator advances


def test_noise_shape_broadcasts_mask(rng):
    x = rng.uniform(1.0, 2.0, (8, 5, 6))
    y = dropout(x, 0.5, training=True, noise_shape=(8, 1, None), rng=rng).numpy()
    ratio = y / x
    np.testing.assert_array_equal(ratio, np.broadcast_to(ratio[:, :1, :], x.shape))
    assert set(np.unique(ratio)) <= {0.0, 2.0}


def test_float32_stays_float32(rng):
    x = sj.Tensor(rng.standard_normal((10, 10)).astype(np.float32), requires_grad=True)
    y = dropout(x, 0.25, training=True, rng=rng)
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == x.grad.dtype == np.float32


@pytest.mark.parametrize("kwargs, error, match", [
    ({"rate": 1.0}, ValueError, r"rate must be a number in \[0, 1\), got 1.0"),
    ({"rate": -0.1}, ValueError, r"rate must be a number in \[0, 1\), got -0.1"),
    ({"rate": "0.5"}, ValueError, r"rate must be a number"),
    ({"noise_shape": (4,)}, ValueError, r"one entry per input axis \(2\), got \(4,\)"),
    ({"noise_shape": (4, 3)}, ValueError, r"each noise_shape entry must be 1 or the input's size"),
    ({"seed": 1, "rng": np.random.default_rng(1)}, ValueError, "seed or rng, not both"),
    ({"rng": np.random.RandomState(0)}, TypeError, "rng must be a np.random.Generator"),
])
def test_errors(kwargs, error, match):
    args = {"x": np.ones((4, 5)), "rate": 0.5, "training": True}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        dropout(**args)
