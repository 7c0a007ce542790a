import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.group_norm import group_norm, layer_norm
from tests.helpers import check_against_torch, check_numeric_grad
from tests.ops.test_norm import _split

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _group_case(rng):
    rank = int(rng.integers(2, 5))
    groups = int(rng.integers(1, 4))
    C = groups * int(rng.integers(1, 4))
    spatial = tuple(int(n) for n in rng.integers(1, 5, size=rank - 2))
    shape = (int(rng.integers(2, 4)), *spatial, C)  # torch refuses batch 1 without space
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    return x, groups, rng.standard_normal(C), rng.standard_normal(C)


def _torch_group_norm(groups, eps, axis, has_gamma, has_beta):
    """torch's group_norm wants channels on axis 1: move them there and back."""

    def fn(x, *params):
        gamma, beta = _split(params, has_gamma, has_beta)
        # a missing gamma or beta as a constant 1 or 0 (torch's backward fails on None weight
        # with a bias)
        C = x.shape[axis]
        gamma = torch.ones(C, dtype=x.dtype) if gamma is None else gamma
        beta = torch.zeros(C, dtype=x.dtype) if beta is None else beta
        return F.group_norm(x.movedim(axis, 1), groups, gamma, beta, eps).movedim(1, axis)

    return fn


def test_group_norm_against_torch(rng):
    for i in range(40):
        x, groups, gamma, beta = _group_case(rng)
        has_gamma, has_beta = i % 4 != 1, i % 4 != 2
        eps = [1e-3, 1e-5][i % 2]
        params = [p for p, keep in ((gamma, has_gamma), (beta, has_beta)) if keep]

        def ours(x, *params, groups=groups, eps=eps, g=has_gamma, b=has_beta):
            gamma, beta = _split(params, g, b)
            return group_norm(x, gamma, beta, groups=groups, epsilon=eps)

        theirs = _torch_group_norm(groups, eps, -1, has_gamma, has_beta)
        check_against_torch(ours, theirs, x, *params)


@pytest.mark.parametrize("axis", [1, 2, -2])
def test_group_norm_other_axes_against_torch(axis, rng):
    x = rng.standard_normal((2, 6, 4, 3)) * 2 + 1
    C = x.shape[axis]
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    groups = 2 if C % 2 == 0 else 1

    def ours(x, g, b):
        return group_norm(x, g, b, groups=groups, axis=axis)

    check_against_torch(ours, _torch_group_norm(groups, 1e-3, axis, True, True), x, gamma, beta)


def test_group_norm_instance_norm_with_minus_one(rng):
    x = rng.standard_normal((2, 3, 4, 6))

    def theirs(x):
        return F.instance_norm(x.movedim(-1, 1), eps=1e-3).movedim(1, -1)

    check_against_torch(lambda x: group_norm(x, groups=-1), theirs, x)


@pytest.mark.parametrize("shape, groups", [((3, 8), 4), ((2, 5, 6), 3), ((2, 3, 4, 4), 2)])
def test_group_norm_numeric_grad(shape, groups, rng):
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    check_numeric_grad(lambda x, g, b: group_norm(x, g, b, groups=groups), x, gamma, beta)


def _layer_case(rng):
    rank = int(rng.integers(1, 5))
    shape = tuple(int(n) for n in rng.integers(1, 5, size=rank))
    shape = shape[:-1] + (shape[-1] + 1,)  # at least two values to normalize
    k = int(rng.integers(1, rank + 1))
    axes = sorted(int(a) for a in rng.choice(rank, size=k, replace=False))
    if rng.random() < 0.5:
        axes = list(range(rank - k, rank))  # trailing axes, torch's layer_norm case
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    normalized = tuple(shape[a] for a in axes)
    return x, axes, rng.standard_normal(normalized), rng.standard_normal(normalized)


def _torch_layer_norm(axes, eps, rms=False):
    """torch's layer_norm normalizes trailing axes: move ours there (in order) and back."""

    def fn(x, gamma=None, beta=None):
        rest = [a for a in range(x.ndim) if a not in axes]
        moved = x.permute(*rest, *axes)
        normalized = tuple(x.shape[a] for a in axes)
        if rms:  # Keras' rms_scaling: x / sqrt(var + eps), var centered and biased
            dims = tuple(range(len(rest), x.ndim))
            var = moved.var(dim=dims, keepdim=True, unbiased=False)
            y = moved * torch.rsqrt(var + eps) * gamma
        else:
            y = F.layer_norm(moved, normalized, gamma, beta, eps)
        return y.permute(*np.argsort([*rest, *axes]).tolist())

    return fn


def test_layer_norm_against_torch(rng):
    for i in range(40):
        x, axes, gamma, beta = _layer_case(rng)
        axis = axes[0] - x.ndim if len(axes) == 1 and i % 2 else axes

        def ours(x, g, b, axis=axis):
            return layer_norm(x, g, b, axis=axis)

        check_against_torch(ours, _torch_layer_norm(axes, 1e-3), x, gamma, beta)


def test_layer_norm_without_gamma_beta_against_torch(rng):
    x = rng.standard_normal((3, 4, 5))
    check_against_torch(lambda x: layer_norm(x, epsilon=1e-5), _torch_layer_norm([2], 1e-5), x)


def test_layer_norm_rms_scaling_against_torch(rng):
    for axes in ([1], [1, 2], [0, 2]):
        x = rng.standard_normal((3, 4, 5)) * 2 + 1
        gamma = rng.standard_normal(tuple(x.shape[a] for a in axes))

        def ours(x, g, axes=axes):
            return layer_norm(x, g, axis=axes, rms_scaling=True)

        check_against_torch(ours, _torch_layer_norm(axes, 1e-3, rms=True), x, gamma)
        check_numeric_grad(ours, x, gamma)


@pytest.mark.parametrize("shape, axis", [((4, 7), -1), ((2, 3, 4), [1, 2]), ((3, 4, 2), 1)])
def test_layer_norm_numeric_grad(shape, axis, rng):
    x = rng.standard_normal(shape) * 2 + 1
    axes = axis if isinstance(axis, list) else [axis]
    normalized = tuple(shape[a] for a in axes)
    gamma, beta = rng.standard_normal(normalized), rng.standard_normal(normalized)
    check_numeric_grad(lambda x, g, b: layer_norm(x, g, b, axis=axis), x, gamma, beta)


def test_statistics_per_group_formula(rng):
    """Independent check: each (sample, group) slab has mean 0 and variance var / (var + eps)."""
    x = rng.standard_normal((3, 4, 5, 6)) * 3 + 2
    y = group_norm(x, groups=3, epsilon=1e-3).numpy().reshape(3, 20, 3, 2)
    slabs = x.reshape(3, 20, 3, 2)
    var = slabs.var(axis=(1, 3))
    np.testing.assert_allclose(y.mean(axis=(1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(1, 3)), var / (var + 1e-3), rtol=1e-10)


@pytest.mark.parametrize("fn", [
    lambda x, g, b: group_norm(x, g, b, groups=2),
    lambda x, g, b: layer_norm(x, g, b),
], ids=["group_norm", "layer_norm"])
def test_float32_stays_float32(fn, rng):
    x = sj.Tensor(rng.standard_normal((4, 3, 3, 6)).astype(np.float32), requires_grad=True)
    gamma = sj.Tensor(rng.standard_normal(6).astype(np.float32), requires_grad=True)
    beta = sj.Tensor(rng.standard_normal(6).astype(np.float32), requires_grad=True)
    y = fn(x, gamma, beta)
    assert y.dtype == np.float32
    y.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert x.grad.dtype == gamma.grad.dtype == beta.grad.dtype == np.float32
    # and the float32 result agrees with float64 arithmetic
    exact = fn(x.numpy().astype(np.float64), gamma.numpy().astype(np.float64),
               beta.numpy().astype(np.float64)).numpy()
    np.testing.assert_allclose(y.numpy(), exact, rtol=1e-4, atol=1e-5)


def test_group_norm_errors(rng):
    x = rng.standard_normal((2, 4, 6))
    with pytest.raises(ValueError, match=r"group_norm: expected an input of rank >= 2 .*got "
                                         r"shape \(6,\)"):
        group_norm(x[0, 0], groups=1)
    with pytest.raises(ValueError, match=r"groups must divide the 6 channels on axis 2 .*got "
                                         r"groups=4"):
        group_norm(x, groups=4)
    with pytest.raises(ValueError, match="groups=8"):
        group_norm(x, groups=8)
    with pytest.raises(TypeError, match="group_norm: groups must be an int, got 2.0"):
        group_norm(x, groups=2.0)
    with pytest.raises(ValueError, match="axis 0 is the batch axis"):
        group_norm(x, groups=1, axis=0)
    with pytest.raises(ValueError, match="axis 3 is out of range for an input of rank 3"):
        group_norm(x, groups=1, axis=3)
    with pytest.raises(ValueError, match=r"expected gamma of shape \(6,\).*got shape \(4,\)"):
        group_norm(x, np.ones(4), groups=2)
    with pytest.raises(ValueError, match="epsilon must be a number > 0, got 0"):
        group_norm(x, groups=2, epsilon=0)


def test_layer_norm_errors(rng):
    x = rng.standard_normal((2, 4, 6))
    with pytest.raises(ValueError, match=r"layer_norm: expected beta of shape \(4, 6\) .*got "
                                         r"shape \(6,\)"):
        layer_norm(x, None, np.ones(6), axis=[1, 2])
    with pytest.raises(ValueError, match="axis 5 is out of range"):
        layer_norm(x, axis=5)
    with pytest.raises(ValueError, match="names an axis twice"):
        layer_norm(x, axis=[2, -1])
    with pytest.raises(TypeError, match="axis must be an int, got 'last'"):
        layer_norm(x, axis="last")
    with pytest.raises(ValueError, match="rms_scaling=True takes no beta"):
        layer_norm(x, np.ones(6), np.zeros(6), rms_scaling=True)
    with pytest.raises(TypeError, match="expected a floating-point array"):
        layer_norm(x.astype(np.int32))
