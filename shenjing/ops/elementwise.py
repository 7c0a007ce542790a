"""Broadcasting elementwise arithmetic: add, sub, mul, div, neg, pow, exp, log, sqrt, abs,
clip, where, cast. Gradients of broadcast operands are summed back to their shapes. Each takes
0-d Tensors and plain numbers too; results are then 0-d arrays."""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op, Tensor, unbroadcast


def _nd(y):
    """y as an ndarray (None stays None): arithmetic on 0-d arrays gives NumPy scalars, and a
    Tensor's data and gradients are arrays; an array passes through uncopied."""
    return y if y is None or type(y) is np.ndarray else np.asarray(y)


def _pair(a, b):
    """Both operands as Tensors; a plain number takes the dtype of the tensor beside it."""
    if isinstance(a, Tensor) and not isinstance(b, Tensor):
        b = Tensor(np.asarray(b, dtype=a.dtype) if np.isscalar(b) else b)
    elif isinstance(b, Tensor) and not isinstance(a, Tensor):
        a = Tensor(np.asarray(a, dtype=b.dtype) if np.isscalar(a) else a)
    return a, b


class Add(Op):
    """y = a + b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return _nd(a + b)

    def backward(self, gy):
        return _nd(unbroadcast(gy, self.shapes[0])), _nd(unbroadcast(gy, self.shapes[1]))


def add(a, b):
    return Add()(*_pair(a, b))


class Sub(Op):
    """y = a - b."""

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return _nd(a - b)

    def backward(self, gy):
        return _nd(unbroadcast(gy, self.shapes[0])), _nd(unbroadcast(-gy, self.shapes[1]))


def sub(a, b):
    return Sub()(*_pair(a, b))


class Mul(Op):
    """y = a * b."""

    def forward(self, a, b):
        self.saved = a, b
        return _nd(a * b)

    def backward(self, gy):
        a, b = self.saved
        ga = unbroadcast(gy * b, a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(gy * a, b.shape) if self.needs_grad[1] else None
        return _nd(ga), _nd(gb)


def mul(a, b):
    return Mul()(*_pair(a, b))


class Div(Op):
    """y = a / b."""

    def forward(self, a, b):
        self.saved = a, b
        return _nd(a / b)

    def backward(self, gy):
        a, b = self.saved
        ga = unbroadcast(gy / b, a.shape) if self.needs_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b.shape) if self.needs_grad[1] else None
        return _nd(ga), _nd(gb)


def div(a, b):
    return Div()(*_pair(a, b))


class Neg(Op):
    """y = -x."""

    def forward(self, x):
        return _nd(-x)

    def backward(self, gy):
        return _nd(-gy)


def neg(x):
    return Neg()(x)


class Pow(Op):
    """y = a ** b; da = b * a**(b-1), db = y * log(a) (defined where a > 0)."""

    def forward(self, a, b):
        y = a**b
        self.saved = a, b, y
        return _nd(y)

    def backward(self, gy):
        a, b, y = self.saved
        ga = unbroadcast(gy * b * a ** (b - 1), a.shape) if self.needs_grad[0] else None
        gb = None
        if self.needs_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0)
            gb = unbroadcast(gy * y * log_a, b.shape)
        return _nd(ga), _nd(gb)


def pow(a, b):  # noqa: A001 - mirrors torch.pow
    return Pow()(*_pair(a, b))


class Exp(Op):
    """y = e^x."""

    def forward(self, x):
        self.y = np.exp(x)
        return _nd(self.y)

    def backward(self, gy):
        return _nd(gy * self.y)


def exp(x):
    return Exp()(x)


class Log(Op):
    """y = ln(x)."""

    def forward(self, x):
        self.x = x
        return _nd(np.log(x))

    def backward(self, gy):
        return _nd(gy / self.x)


def log(x):
    return Log()(x)


class Sqrt(Op):
    """y = sqrt(x); dy/dx = 1 / (2 y)."""

    def forward(self, x):
        self.y = np.sqrt(x)
        return _nd(self.y)

    def backward(self, gy):
        return _nd(gy / (2 * self.y))


def sqrt(x):
    return Sqrt()(x)


class Abs(Op):
    """y = |x|; the gradient at 0 is 0, as in PyTorch."""

    def forward(self, x):
        self.x = x
        return _nd(np.abs(x))

    def backward(self, gy):
        return _nd(gy * np.sign(self.x))


def abs(x):  # noqa: A001 - mirrors torch.abs
    return Abs()(x)


class Clip(Op):
    """y = min(max(x, low), high); the gradient passes where low <= x <= high (PyTorch's rule)."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        self.x = x
        return _nd(np.clip(x, self.low, self.high))

    def backward(self, gy):
        inside = np.ones(self.x.shape, dtype=bool)
        if self.low is not None:
            inside &= self.x >= self.low
        if self.high is not None:
            inside &= self.x <= self.high
        return _nd(gy * inside)


def clip(x, min=None, max=None):  # noqa: A002 - Keras/torch argument names
    if min is None and max is None:
        raise ArgumentError("clip: give at least one of min and max, got neither.")
    return Clip(min, max)(x)


class Where(Op):
    """y = a where condition else b (condition is a boolean array, not differentiated)."""

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return _nd(np.where(self.condition, a, b))

    def backward(self, gy):
        zero = np.zeros((), dtype=gy.dtype)
        ga = unbroadcast(np.where(self.condition, gy, zero), self.shapes[0])
        gb = unbroadcast(np.where(self.condition, zero, gy), self.shapes[1])
        return _nd(ga), _nd(gb)


def where(condition, a, b):
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if condition.dtype != bool:
        condition = condition.astype(bool)
    a, b = _pair(a, b)
    return Where(condition)(a, b)


class Cast(Op):
    """y = x converted to another floating dtype; the gradient is converted back."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return _nd(x.astype(self.dtype))

    def backward(self, gy):
        return _nd(gy.astype(self.in_dtype))


def cast(x, dtype):
    return Cast(dtype)(x)
