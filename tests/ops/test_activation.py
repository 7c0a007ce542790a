import math
import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import activation as act
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional

# name -> (ours, torch reference, kinks: points where the derivative jumps)
CASES = {
    "relu": (act.relu, torch.relu, [0.0]),
    "relu6": (act.relu6, F.relu6, [0.0, 6.0]),
    "leaky_relu": (act.leaky_relu, lambda x: F.leaky_relu(x, negative_slope=0.2), [0.0]),
    "leaky_relu_0.01": (lambda x: act.leaky_relu(x, negative_slope=0.01),
                        lambda x: F.leaky_relu(x, negative_slope=0.01), [0.0]),
    "elu": (act.elu, F.elu, [0.0]),
    "elu_alpha_0.5": (lambda x: act.elu(x, alpha=0.5), lambda x: F.elu(x, alpha=0.5), [0.0]),
    "selu": (act.selu, F.selu, [0.0]),
    "gelu": (act.gelu, lambda x: F.gelu(x, approximate="none"), []),
    "gelu_tanh": (lambda x: act.gelu(x, approximate=True),
                  lambda x: F.gelu(x, approximate="tanh"), []),
    "sigmoid": (act.sigmoid, torch.sigmoid, []),
    "hard_sigmoid": (act.hard_sigmoid, F.hardsigmoid, [-3.0, 3.0]),
    "tanh": (act.tanh, torch.tanh, []),
    "softplus": (act.softplus, F.softplus, []),
    "softsign": (act.softsign, F.softsign, []),
    "silu": (act.silu, F.silu, []),
    "exponential": (act.exponential, torch.exp, []),
}
NAMES = sorted(CASES)
# values where overflow, NaN or 0 * inf would show; exp(1000) overflows by definition
EXTREME = np.array([-1000.0, -750.0, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 750.0, 1000.0])


def _away_from(x, kinks, margin=1e-3):
    for k in kinks:
        x = np.where(np.abs(x - k) < margin, x + 10 * margin, x)
    return x


@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_including_kinks(name, rng):
    ours, ref, _ = CASES[name]
    x = rng.uniform(-8, 8, (3, 4, 5))
    # the kinks themselves: the gradient convention there must be PyTorch's
    x.flat[:6] = [-3.0, 0.0, 3.0, 6.0, -6.0, 1e-300]
    check_against_torch(ours, ref, x)


@pytest.mark.parametrize("name", NAMES)
def test_numeric_grad(name, rng):
    ours, _, kinks = CASES[name]
    x = _away_from(rng.uniform(-5, 5, (4, 6)), kinks)
    check_numeric_grad(ours, x)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "exponential"])
def test_extreme_inputs_no_overflow_nan_or_warning(name):
    ours, ref, _ = CASES[name]
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        out = check_against_torch(ours, ref, EXTREME.copy())[0]
    assert np.all(np.isfinite(out.numpy()))


@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out(name, rng):
    ours, ref, kinks = CASES[name]
    x = _away_from(rng.uniform(-4, 4, (5, 7)), kinks).astype(np.float32)
    w = rng.standard_normal(x.shape).astype(np.float32)
    t = sj.Tensor(x, requires_grad=True)
    y = ours(t)
    y.backward(w)
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = ref(tx)
    ty.backward(torch.tensor(w.astype(np.float64)))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn_name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_axes(fn_name, axis, rng):
    ours, ref = getattr(act, fn_name), getattr(F, fn_name)
    x = rng.standard_normal((2, 3, 4)) * 3
    check_against_torch(lambda t: ours(t, axis=axis), lambda t: ref(t, dim=axis), x)
    check_numeric_grad(lambda t: ours(t, axis=axis), x)


@pytest.mark.parametrize("fn_name", ["softmax", "log_softmax"])
def test_softmax_float32(fn_name, rng):
    x = (rng.standard_normal((3, 6)) * 3).astype(np.float32)
    w = rng.standard_normal(x.shape).astype(np.float32)
    t = sj.Tensor(x, requires_grad=True)
    y = getattr(act, fn_name)(t, axis=0)
    y.backward(w)
    assert y.dtype == np.float32 and t.grad.dtype == np.float32
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = getattr(F, fn_name)(tx, dim=0)
    ty.backward(torch.tensor(w.astype(np.float64)))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fn_name", ["softmax", "log_softmax"])
def test_softmax_extreme_logits(fn_name, rng):
    ours, ref = getattr(act, fn_name), getattr(F, fn_name)
    x = rng.standard_normal((4, 5))
    x[3, 0] = 1000.0
    x[0] = [1000.0, -1000.0, 0.0, 999.0, -999.0]
    x[1] = 1000.0
    x[2] = -1000.0
    with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
        warnings.simplefilter("error")
        out = check_against_torch(ours, lambda t: ref(t, dim=-1), x)[0].numpy()
    assert np.all(np.isfinite(out))
    if fn_name == "softmax":
        np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-15)
        np.testing.assert_allclose(out[0, :4], [1 / (1 + math.exp(-1)), 0, 0,
                                                1 / (1 + math.exp(1))], rtol=1e-14)


def test_keras_formulas_by_hand():
    # hard_sigmoid: Keras 3 defines clip(x / 6 + 0.5, 0, 1) = relu6(x + 3) / 6
    x = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_array_equal(act.hard_sigmoid(x).numpy(), [0, 0, 0.25, 0.5, 0.75, 1, 1])
    grid = np.linspace(-5, 5, 101)
    keras_formula = np.clip(grid / 6 + 0.5, 0, 1)
    torch_formula = F.hardsigmoid(torch.tensor(grid)).numpy()
    np.testing.assert_allclose(torch_formula, keras_formula, rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(F.relu6(torch.tensor(grid) + 3).numpy() / 6, keras_formula,
                               rtol=1e-15, atol=1e-16)
    # selu constants (Klambauer et al.) and its limits
    assert act.SELU_ALPHA == 1.6732632423543772848170429916717
    assert act.SELU_SCALE == 1.0507009873554804934193349852946
    y = act.selu(np.array([1.0, -1.0, -50.0])).numpy()
    expected = [1.0507009873554805, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1),
                -1.0507009873554805 * 1.6732632423543772]
    np.testing.assert_allclose(y, expected, rtol=1e-15)
    # leaky_relu's default slope is Keras 3's 0.2 (PyTorch's is 0.01)
    np.testing.assert_allclose(act.leaky_relu(np.array([-1.0, 2.0])).numpy(), [-0.2, 2.0])
    # gelu exact: x Phi(x); approximate: the tanh form
    g = act.gelu(np.array([1.0, -2.0])).numpy()
    np.testing.assert_allclose(g, [0.5 * (1 + math.erf(1 / math.sqrt(2))),
                                   -2 * 0.5 * math.erfc(2 / math.sqrt(2))], rtol=1e-15)
    a = act.gelu(np.array([1.0]), approximate=True).numpy()
    k = math.sqrt(2 / math.pi)
    np.testing.assert_allclose(a, [0.5 * (1 + math.tanh(k * (1 + 0.044715)))], rtol=1e-15)


def test_gradients_at_kinks_follow_pytorch():
    x = sj.Tensor(np.array([0.0, 0.0, 0.0, 0.0]), requires_grad=True)
    for fn, expected in [(act.relu, 0.0), (lambda t: act.leaky_relu(t, 0.3), 0.3),
                         (lambda t: act.elu(t, alpha=2.0), 2.0), (act.relu6, 0.0)]:
        x.zero_grad()
        fn(x).sum().backward()
        np.testing.assert_array_equal(x.grad, expected)


def test_erfc_matches_math_erfc(rng):
    boundaries = [0.0, 0.25, 0.84375, 1.25, 1 / 0.35, 6.0, 26.0, 27.9, 28.0, 1e-300, 1e-9]
    # more than one 64K block, so the blocking is covered too
    x = np.concatenate([rng.uniform(-6, 6, 66000), rng.uniform(-28, 28, 4000),
                        boundaries, np.negative(boundaries),
                        np.nextafter(boundaries, 0), np.nextafter(boundaries, 100)])
    expected = np.array([math.erfc(v) for v in x])
    got = act.erfc(x)
    # within a few ulp wherever the value is a normal float
    normal = expected > 1e-300
    np.testing.assert_allclose(got[normal], expected[normal], rtol=1e-15, atol=0)
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-300)
    # erf = 1 - erfc, against math.erf, absolute error at the float64 rounding level
    np.testing.assert_allclose(1 - got, [math.erf(v) for v in x], rtol=0, atol=3e-16)
    special = act.erfc(np.array([np.inf, -np.inf, np.nan, 30.0, -30.0]))
    np.testing.assert_array_equal(special, [0.0, 2.0, np.nan, 0.0, 2.0])


def test_get_names():
    for name in ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid",
                 "hard_sigmoid", "tanh", "softmax", "log_softmax", "softplus", "softsign",
                 "silu", "exponential"]:
        assert act.get(name) is getattr(act, name)
    assert act.get("swish") is act.silu
    x = np.array([[-1.0, 2.0]])
    for identity in (act.get(None), act.get("linear")):
        np.testing.assert_array_equal(identity(x).numpy(), x)
    assert act.get(np.tanh) is np.tanh
    with pytest.raises(ValueError, match=r"activation: unknown activation 'reluu'; known names: "
                                         r"elu, exponential, .*relu.*softmax"):
        act.get("reluu")
    with pytest.raises(ValueError, match="unknown activation 3"):
        act.get(3)


def test_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"softmax: axis 2 is out of range for an input of rank 2"
                                         r" \(shape \(2, 3\)\)"):
        act.softmax(x, axis=2)
    with pytest.raises(ValueError, match=r"log_softmax: axis -3 is out of range"):
        act.log_softmax(x, axis=-3)
    with pytest.raises(TypeError, match=r"softmax: axis must be an int, got 1.0"):
        act.softmax(x, axis=1.0)
    with pytest.raises(ValueError, match=r"leaky_relu: negative_slope must be a finite number "
                                         r">= 0.0, got -0.1"):
        act.leaky_relu(x, negative_slope=-0.1)
    with pytest.raises(TypeError, match=r"elu: alpha must be a real number, got 'a'"):
        act.elu(x, alpha="a")
    with pytest.raises(TypeError, match=r"relu: expected a floating-point array"):
        act.relu(np.array([1, 2]))
