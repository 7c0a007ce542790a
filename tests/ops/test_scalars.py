"""0-d tensors and Python scalars through every elementwise op: values and gradients against
PyTorch float64, and results that stay 0-d ndarrays (never NumPy scalars)."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import ops
from tests.helpers import check_against_torch

torch = pytest.importorskip("torch")
F = torch.nn.functional

UNARY = {
    "relu": (ops.relu, torch.relu),
    "relu6": (ops.relu6, F.relu6),
    "leaky_relu": (ops.leaky_relu, lambda x: F.leaky_relu(x, 0.2)),
    "elu": (ops.elu, F.elu),
    "selu": (ops.selu, F.selu),
    "gelu": (ops.gelu, F.gelu),
    "gelu_tanh": (lambda x: ops.gelu(x, approximate=True), lambda x: F.gelu(x, approximate="tanh")),
    "sigmoid": (ops.sigmoid, torch.sigmoid),
    "hard_sigmoid": (ops.hard_sigmoid, F.hardsigmoid),
    "tanh": (ops.tanh, torch.tanh),
    "softplus": (ops.softplus, F.softplus),
    "softsign": (ops.softsign, F.softsign),
    "silu": (ops.silu, F.silu),
    "swish": (ops.swish, F.silu),
    "exp": (ops.exp, torch.exp),
    "log": (ops.log, torch.log),
    "sqrt": (ops.sqrt, torch.sqrt),
    "abs": (ops.abs, torch.abs),
    "neg": (ops.neg, torch.neg),
    "clip": (lambda x: ops.clip(x, 0.5, 2.0), lambda x: torch.clamp(x, 0.5, 2.0)),
    "cast": (lambda x: ops.cast(x, "float64"), lambda x: x.to(torch.float64)),
}
BINARY = {
    "add": (ops.add, torch.add),
    "sub": (ops.sub, torch.sub),
    "mul": (ops.mul, torch.mul),
    "div": (ops.div, torch.div),
    "pow": (ops.pow, torch.pow),
    "where": (lambda a, b: ops.where(np.array(True), a, b),
              lambda a, b: torch.where(torch.tensor(True), a, b)),
}
POSITIVE = ("log", "sqrt", "pow")  # defined for positive inputs only


def _values(name):
    return (0.7, 1.6) if name in POSITIVE else (0.7, -1.3, 2.6)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_on_0d_tensor_matches_torch(name):
    ours, theirs = UNARY[name]
    for value in _values(name):
        (out,) = check_against_torch(ours, theirs, np.array(value))
        assert type(out.data) is np.ndarray and out.shape == ()


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("scalar", [0.7, np.float64(0.7), np.float32(0.7)])
def test_unary_op_takes_python_and_numpy_scalars(name, scalar):
    ours, theirs = UNARY[name]
    out = ours(scalar)
    assert type(out.data) is np.ndarray and out.shape == ()
    expected = theirs(torch.tensor(float(scalar), dtype=torch.float64)).item()
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_on_0d_tensors_matches_torch(name):
    ours, theirs = BINARY[name]
    check_against_torch(ours, theirs, np.array(0.7), np.array(1.6))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_broadcasts_0d_against_array(name):
    # the 0-d input's gradient is the sum over the array's entries, shaped ()
    ours, theirs = BINARY[name]
    rng = np.random.default_rng(0)
    array = rng.uniform(0.5, 2.0, (2, 3))
    check_against_torch(ours, theirs, np.array(1.3), array)
    check_against_torch(ours, theirs, array, np.array(1.3))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_with_python_scalar(name):
    ours, theirs = BINARY[name]
    x = sj.Tensor(np.array(1.3), requires_grad=True)
    out = ours(x, 0.8)
    ref_x = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    ref = theirs(ref_x, torch.tensor(0.8, dtype=torch.float64))
    np.testing.assert_allclose(out.numpy(), ref.item(), rtol=1e-12)
    out.backward()
    ref.backward()
    assert x.grad.shape == ()
    np.testing.assert_allclose(x.grad, ref_x.grad.item(), rtol=1e-12)
    both = ours(0.9, 0.8)  # two Python floats: a 0-d result
    assert type(both.data) is np.ndarray and both.shape == ()


def test_where_with_scalar_condition_and_branches():
    out = ops.where(True, 0.3, 0.5)
    assert out.shape == () and float(out.numpy()) == 0.3


def test_0d_float32_keeps_its_dtype():
    x = sj.Tensor(np.array(0.7, np.float32), requires_grad=True)
    for name, (ours, _) in UNARY.items():
        if name == "cast":
            continue
        out = ours(x)
        assert out.dtype == np.float32 and out.shape == (), name
        out.backward()
        assert x.grad.dtype == np.float32 and x.grad.shape == (), name
        x.grad = None
