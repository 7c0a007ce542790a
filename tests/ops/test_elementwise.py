"""Broadcasting elementwise ops against PyTorch (float64) and central differences."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import ops
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")

# pairs of broadcast-compatible shapes, including size-1 stretching and added leading axes
SHAPE_PAIRS = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((2, 1, 4), (3, 1)), ((), (2, 3))]
BINARY = [
    (ops.add, torch.add),
    (ops.sub, torch.sub),
    (ops.mul, torch.mul),
    (ops.div, torch.div),
]


@pytest.mark.parametrize("ours, theirs", BINARY, ids=lambda f: getattr(f, "__name__", ""))
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
def test_binary_ops_broadcast_like_torch(ours, theirs, shapes, rng):
    a = rng.standard_normal(shapes[0])
    b = rng.uniform(0.5, 2.0, shapes[1]) * rng.choice([-1, 1], shapes[1])  # away from 0 for div
    check_against_torch(ours, theirs, a, b)
    check_numeric_grad(ours, a, b)


def test_operators_and_scalars(rng):
    a, b = rng.standard_normal((3, 4)), rng.uniform(0.5, 2, (4,))

    def expression(x, y):
        return (2.0 - x) * y / 3.0 + 1.0 / y - (-x) + x**2 + 2.0**y

    check_against_torch(expression, expression, a, b)
    check_numeric_grad(expression, a, b)


def test_pow_with_tensor_exponent(rng):
    base, exponent = rng.uniform(0.5, 2.0, (3, 4)), rng.standard_normal((4,))
    check_against_torch(ops.pow, torch.pow, base, exponent)
    check_numeric_grad(ops.pow, base, exponent)


@pytest.mark.parametrize(
    "ours, theirs, low",
    [(ops.exp, torch.exp, -3), (ops.log, torch.log, 0.1), (ops.sqrt, torch.sqrt, 0.1),
     (ops.neg, torch.neg, -3), (ops.abs, torch.abs, -3)],
    ids=lambda f: getattr(f, "__name__", str(f)),
)
def test_unary_ops(ours, theirs, low, rng):
    x = rng.uniform(low, 3.0, (2, 3, 4))
    check_against_torch(ours, theirs, x)
    check_numeric_grad(ours, x)


def test_clip_matches_torch_clamp_including_bounds():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])  # -1 and 1 sit exactly on the bounds
    check_against_torch(lambda t: ops.clip(t, -1.0, 1.0), lambda t: torch.clamp(t, -1.0, 1.0), x)
    check_against_torch(lambda t: t.clip(min=0.0), lambda t: torch.clamp(t, min=0.0), x)
    with pytest.raises(ValueError, match="clip: give at least one of min and max"):
        ops.clip(x)


def test_where_routes_gradients(rng):
    cond = rng.random((3, 4)) > 0.5
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    check_against_torch(
        lambda x, y: ops.where(cond, x, y), lambda x, y: torch.where(torch.tensor(cond), x, y), a, b
    )
    check_numeric_grad(lambda x, y: ops.where(cond, x, y), a, b)


def test_cast_round_trip_gradient_dtype(rng):
    x = sj.Tensor(rng.standard_normal(5).astype(np.float32), requires_grad=True)
    y = x.astype(np.float64)
    assert y.dtype == np.float64
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2.0)


def test_non_floating_input_is_refused():
    with pytest.raises(TypeError, match=r"Exp: expected a floating-point array .* got dtype int64"):
        ops.exp(np.arange(3))
