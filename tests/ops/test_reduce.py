"""Reductions against PyTorch (float64) and central differences."""

import numpy as np
import pytest

from shenjing import ops
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")

AXES = [None, 0, -1, (0, 2), (1,)]


def _torch_dims(axis):
    return tuple(range(3)) if axis is None else axis


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_mean(axis, keepdims, rng):
    x = rng.standard_normal((2, 3, 4))
    for ours, theirs in ((ops.sum, torch.sum), (ops.mean, torch.mean)):
        fn = lambda t, f=ours: f(t, axis=axis, keepdims=keepdims)  # noqa: E731
        ref = lambda t, f=theirs: f(t, dim=_torch_dims(axis), keepdim=keepdims)  # noqa: E731
        check_against_torch(fn, ref, x)
        check_numeric_grad(fn, x)


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_max_min(axis, keepdims, rng):
    x = rng.standard_normal((2, 3, 4))
    for ours, theirs in ((ops.max, torch.amax), (ops.min, torch.amin)):
        fn = lambda t, f=ours: f(t, axis=axis, keepdims=keepdims)  # noqa: E731
        ref = lambda t, f=theirs: f(t, dim=_torch_dims(axis), keepdim=keepdims)  # noqa: E731
        check_against_torch(fn, ref, x)
        check_numeric_grad(fn, x)


def test_max_ties_share_the_gradient_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    check_against_torch(lambda t: ops.max(t, axis=1), lambda t: torch.amax(t, dim=1), x)


@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("ddof", [0, 1])
def test_var(axis, ddof, rng):
    x = rng.standard_normal((2, 3, 4)) * 3 + 5
    fn = lambda t: ops.var(t, axis=axis, ddof=ddof)  # noqa: E731
    ref = lambda t: torch.var(t, dim=_torch_dims(axis), correction=ddof)  # noqa: E731
    check_against_torch(fn, ref, x)
    check_numeric_grad(fn, x)


def test_var_without_degrees_of_freedom_is_refused():
    with pytest.raises(ValueError, match="var: 1 values with ddof=1"):
        ops.var(np.ones((1, 3)), axis=0, ddof=1)


def test_tensor_methods_delegate(rng):
    x = rng.standard_normal((3, 4))
    check_against_torch(
        lambda t: t.sum(0) + t.mean(axis=1).sum() + t.max() - t.min(axis=0, keepdims=True).sum()
        + t.var(axis=1).sum(),
        lambda t: t.sum(0) + t.mean(dim=1).sum() + t.amax() - t.amin(dim=0, keepdim=True).sum()
        + t.var(dim=1, correction=0).sum(),
        x,
    )
