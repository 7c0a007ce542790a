"""Activation functions, elementwise (relu ... silu) and along an axis (softmax, log_softmax).

Values and gradients follow PyTorch, kinks included (relu'(0) = 0, elu'(0) = alpha); defaults
follow Keras 3 (leaky_relu's negative_slope is 0.2). ``get`` maps Keras names to functions.
"""

import math

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, Tensor, as_tensor
from . import parallel
from .elementwise import _nd, exp
from .shape import check_axis
from .special import erfc  # NumPy has no erf


def _normal_cdf(x):
    """Phi(x) = erfc(-x / sqrt(2)) / 2, computed in float64 and returned in x's dtype."""
    return (0.5 * erfc(x.astype(np.float64) * -math.sqrt(0.5))).astype(x.dtype, copy=False)


def _stable_sigmoid(x):
    """1 / (1 + e^-x) without overflow: e = e^-|x| <= 1, y = 1/(1+e) or e/(1+e)."""
    negative = x < 0
    e = np.exp(-np.abs(x), out=np.empty_like(x))  # an array even for 0-d x (out=)
    r = np.add(e, 1, out=np.empty_like(e))
    np.reciprocal(r, out=r)
    # NOTE: y = r * (e if x < 0 else 1), blended exactly with masks: np.where costs ~10x more
    e *= negative
    e += ~negative
    r *= e
    return r


# ----- elementwise activations ------------------------------------------------------------------
class ReLU(Op):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0 (0 at x = 0, as in PyTorch)."""

    name = "relu"

    def forward(self, x):
        # x (...) -> y (...)
        self.y = parallel.ufunc(np.maximum, x, x.dtype.type(0), out=np.empty_like(x))
        return _nd(self.y)

    def backward(self, gy):
        # gy (...) -> gx (...)
        def masked(g, y, out):
            np.multiply(g, y > 0, out=out)

        gx = np.empty_like(gy)
        parallel.ufunc(masked, gy, self.y, out=gx)  # returns None for 0-d gy
        return gx


def relu(x):
    return ReLU()(x)


class ReLU6(Op):
    """y = min(max(x, 0), 6); the gradient is 1 strictly inside (0, 6), as in PyTorch."""

    name = "relu6"

    def forward(self, x):
        # x (...) -> y (...)
        self.x = x
        return _nd(np.clip(x, 0, 6))

    def backward(self, gy):
        return _nd(gy * ((self.x > 0) & (self.x < 6)))


def relu6(x):
    return ReLU6()(x)


class LeakyReLU(Op):
    """y = x if x > 0 else negative_slope * x; the slope at 0 is negative_slope (PyTorch)."""

    name = "leaky_relu"

    def __init__(self, negative_slope):
        self.negative_slope = negative_slope

    def forward(self, x):
        # x (...) -> y (...)
        self.positive = x > 0
        return _nd(np.maximum(x, 0) + self.negative_slope * np.minimum(x, 0))

    def backward(self, gy):
        # exact blend of gy (x > 0) and slope * gy (x <= 0); np.where is ~10x slower
        gx = gy * self.positive
        gx += (gy * self.negative_slope) * ~self.positive
        return _nd(gx)


def leaky_relu(x, negative_slope=0.2):
    """Leaky ReLU. The default slope 0.2 is Keras 3's; PyTorch's F.leaky_relu uses 0.01."""
    _check_number("leaky_relu", "negative_slope", negative_slope, low=0.0)
    return LeakyReLU(float(negative_slope))(x)


class ELU(Op):
    """y = scale * (x if x > 0 else alpha * (e^x - 1)); ELU has scale 1, SELU fixed constants."""

    name = "elu"

    def __init__(self, alpha, scale=1.0):
        self.alpha, self.scale = alpha, scale

    def forward(self, x):
        # x (...) -> y (...)
        self.positive = x > 0
        # NOTE: expm1 of min(x, 0), which is 0 for x > 0: no overflow, and y is an exact sum
        self.neg = self.alpha * np.expm1(np.minimum(x, 0))
        y = np.maximum(x, 0) + self.neg
        return _nd(y * self.scale if self.scale != 1.0 else y)

    def backward(self, gy):
        # d/dx alpha (e^x - 1) = neg + alpha; at x = 0 this gives alpha, as PyTorch does
        slope = (self.neg + self.alpha) * ~self.positive
        slope += self.positive
        return _nd(gy * slope * self.scale if self.scale != 1.0 else gy * slope)


def elu(x, alpha=1.0):
    _check_number("elu", "alpha", alpha)
    return ELU(float(alpha))(x)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """Scaled ELU: SELU_SCALE * elu(x, SELU_ALPHA) (Klambauer et al., 2017)."""
    op = ELU(SELU_ALPHA, SELU_SCALE)
    op.name = "selu"
    return op(x)


class GELU(Op):
    """y = x * Phi(x), Phi the standard normal CDF (exact, via erfc); approximate=True uses
    Phi(x) ~ (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""

    name = "gelu"
    K = math.sqrt(2.0 / math.pi)

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, x):
        # x (...) -> y (...)
        self.x = x
        if self.approximate:
            self.t = np.tanh(self.K * (x + 0.044715 * x * x * x))
            return _nd(0.5 * x * (1 + self.t))
        self.cdf = _normal_cdf(x)
        return _nd(x * self.cdf)

    def backward(self, gy):
        x = self.x
        if self.approximate:
            t = self.t
            inner = self.K * (1 + 3 * 0.044715 * x * x)
            return _nd(gy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * inner))
        pdf = np.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return _nd(gy * (self.cdf + x * pdf))


def gelu(x, approximate=False):
    return GELU(bool(approximate))(x)


class Sigmoid(Op):
    """y = 1 / (1 + e^-x), computed without overflow; dy/dx = y (1 - y)."""

    name = "sigmoid"

    def forward(self, x):
        # x (...) -> y (...)
        self.y = _stable_sigmoid(x)
        return _nd(self.y)

    def backward(self, gy):
        return _nd(gy * self.y * (1 - self.y))


def sigmoid(x):
    return Sigmoid()(x)


class HardSigmoid(Op):
    """y = relu6(x + 3) / 6 = clip(x / 6 + 1/2, 0, 1) (Keras 3 and PyTorch agree); the
    gradient is 1/6 strictly inside (-3, 3)."""

    name = "hard_sigmoid"

    def forward(self, x):
        # x (...) -> y (...)
        self.x = x
        return _nd(np.clip(x / 6 + 0.5, 0, 1))

    def backward(self, gy):
        return _nd(gy * ((self.x > -3) & (self.x < 3)) / 6)


def hard_sigmoid(x):
    return HardSigmoid()(x)


class Tanh(Op):
    """y = tanh(x); dy/dx = 1 - y^2."""

    name = "tanh"

    def forward(self, x):
        # x (...) -> y (...)
        self.y = np.tanh(x)
        return _nd(self.y)

    def backward(self, gy):
        return _nd(gy * (1 - self.y * self.y))


def tanh(x):
    return Tanh()(x)


class Softplus(Op):
    """y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|) (no overflow); dy/dx = sigmoid(x)."""

    name = "softplus"

    def forward(self, x):
        # x (...) -> y (...)
        self.x = x
        return _nd(np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))

    def backward(self, gy):
        return _nd(gy * _stable_sigmoid(self.x))


def softplus(x):
    return Softplus()(x)


class Softsign(Op):
    """y = x / (1 + |x|); dy/dx = 1 / (1 + |x|)^2."""

    name = "softsign"

    def forward(self, x):
        # x (...) -> y (...)
        self.d = 1 + np.abs(x)
        return _nd(x / self.d)

    def backward(self, gy):
        return _nd(gy / (self.d * self.d))


def softsign(x):
    return Softsign()(x)


class SiLU(Op):
    """y = x * sigmoid(x) (also called swish); dy/dx = s (1 + x (1 - s)), s = sigmoid(x)."""

    name = "silu"

    def forward(self, x):
        # x (...) -> y (...)
        self.x, self.s = x, _stable_sigmoid(x)
        return _nd(x * self.s)

    def backward(self, gy):
        s = self.s
        return _nd(gy * s * (1 + self.x * (1 - s)))


def silu(x):
    return SiLU()(x)


swish = silu


def exponential(x):
    """y = e^x (Keras's 'exponential' activation)."""
    return exp(x)


def linear(x):
    """y = x, the identity (Keras's 'linear', also what activation=None means)."""
    return as_tensor(x)


# ----- along an axis ----------------------------------------------------------------------------
class Softmax(Op):
    """y = e^(x - max) / sum(e^(x - max)) along axis; gx = y * (gy - sum(gy * y))."""

    name = "softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        # x (..., K, ...) -> y (..., K, ...), normalised along self.axis
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        e /= e.sum(axis=self.axis, keepdims=True)
        self.y = e
        return e

    def backward(self, gy):
        # gy (..., K, ...) -> gx (..., K, ...)
        y = self.y
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


def softmax(x, axis=-1):
    return Softmax(_check_axis("softmax", x, axis))(x)


class LogSoftmax(Op):
    """y = x - max - log(sum(e^(x - max))) along axis; gx = gy - softmax(x) * sum(gy)."""

    name = "log_softmax"

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        # x (..., K, ...) -> y (..., K, ...)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        shifted -= np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.y = shifted
        return shifted

    def backward(self, gy):
        # gy (..., K, ...) -> gx (..., K, ...)
        return gy - np.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=-1):
    return LogSoftmax(_check_axis("log_softmax", x, axis))(x)


# ----- validation and lookup --------------------------------------------------------------------
def _check_number(op, label, value, low=None):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{op}: {label} must be a real number, got {value!r}.")
    if not math.isfinite(value) or (low is not None and value < low):
        bound = f"a finite number >= {low}" if low is not None else "a finite number"
        raise ArgumentError(f"{op}: {label} must be {bound}, got {value}.")


def _check_axis(op, x, axis):
    """axis as a non-negative int for x, or an error naming op, axis and shape."""
    return check_axis(op, axis, np.shape(x.data if isinstance(x, Tensor) else x))


_ACTIVATIONS = {
    "elu": elu, "exponential": exponential, "gelu": gelu, "hard_sigmoid": hard_sigmoid,
    "leaky_relu": leaky_relu, "linear": linear, "log_softmax": log_softmax, "relu": relu,
    "relu6": relu6, "selu": selu, "sigmoid": sigmoid, "silu": silu, "softmax": softmax,
    "softplus": softplus, "softsign": softsign, "swish": silu, "tanh": tanh,
}


def get(identifier):
    """The activation function for a Keras name ('relu', 'softmax', ...); None and 'linear'
    give the identity, and a callable is returned unchanged."""
    if identifier is None:
        return linear
    if callable(identifier):
        return identifier
    if isinstance(identifier, str) and identifier in _ACTIVATIONS:
        return _ACTIVATIONS[identifier]
    raise ArgumentError(
        f"activation: unknown activation {identifier!r}; known names: "
        f"{', '.join(sorted(_ACTIVATIONS))} (or None for linear)."
    )
