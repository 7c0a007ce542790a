"""matmul and dense against PyTorch (float64) and central differences."""

import numpy as np
import pytest

from shenjing import ops
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2)),
     ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,))],
    ids=str,
)
def test_matmul_like_torch(shapes, rng):
    a, b = rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])
    check_against_torch(ops.matmul, torch.matmul, a, b)
    check_numeric_grad(ops.matmul, a, b)


@pytest.mark.parametrize("x_shape", [(5, 3), (2, 4, 3), (3,)], ids=str)
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_like_torch_linear(x_shape, use_bias, rng):
    x, kernel, bias = rng.standard_normal(x_shape), rng.standard_normal((3, 6)), rng.standard_normal(6)
    if use_bias:
        check_against_torch(ops.dense, lambda x, k, b: torch.nn.functional.linear(x, k.T, b), x, kernel, bias)
        check_numeric_grad(ops.dense, x, kernel, bias)
    else:
        check_against_torch(ops.dense, lambda x, k: x @ k, x, kernel)
        check_numeric_grad(ops.dense, x, kernel)


def test_dense_float32_stays_float32(rng):
    import shenjing as sj

    x = sj.Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    k = sj.Tensor(rng.standard_normal((3, 2)).astype(np.float32), requires_grad=True)
    b = sj.Tensor(np.zeros(2, np.float32), requires_grad=True)
    y = ops.dense(x, k, b)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == k.grad.dtype == b.grad.dtype == np.float32


def test_dense_errors():
    with pytest.raises(ValueError, match=r"dense: input has 4 features \(shape \(2, 4\)\) but the kernel expects 3"):
        ops.dense(np.ones((2, 4)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="dense: bias has 3 entries, the kernel has 2 outputs"):
        ops.dense(np.ones((2, 3)), np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"dense: expected a 2-D kernel, got shape \(3,\)"):
        ops.dense(np.ones((2, 3)), np.ones(3))
