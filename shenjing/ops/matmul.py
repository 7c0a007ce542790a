"""Matrix products: matmul (NumPy broadcasting rules) and dense (x @ kernel + bias)."""

import numpy as np

from ..errors import ArgumentError
from ..tensor import Op, unbroadcast
from . import parallel


class MatMul(Op):
    """y = a @ b, batched over leading axes; 1-D operands act as vectors, as in NumPy."""

    def forward(self, a, b):
        self.saved = a, b
        return a @ b

    def backward(self, gy):
        a, b = self.saved
        # promote 1-D operands to matrices so one rule covers every case
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        gy2 = gy[..., None] if b.ndim == 1 else gy
        if a.ndim == 1:
            gy2 = np.expand_dims(gy2, -2)
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(gy2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            gb = unbroadcast(np.swapaxes(a2, -1, -2) @ gy2, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a, b):
    return MatMul()(a, b)


class Dense(Op):
    """y = x @ kernel + bias over the last axis of x; kernel (in, out), bias (out,)."""

    def forward(self, x, kernel, bias=None):
        # x (..., in), kernel (in, out), bias (out,) -> y (..., out)
        if x.shape[-1] != kernel.shape[0]:
            raise ArgumentError(
                f"dense: input has {x.shape[-1]} features (shape {x.shape}) but the kernel "
                f"expects {kernel.shape[0]} (kernel shape {kernel.shape})."
            )
        self.saved = x, kernel
        # large products split by rows over the threads (shenjing.ops.parallel)
        y = parallel.matmul(x.reshape(-1, x.shape[-1]), kernel).reshape(*x.shape[:-1], -1)
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        x, kernel = self.saved
        x2, gy2 = x.reshape(-1, x.shape[-1]), gy.reshape(-1, gy.shape[-1])
        gx = parallel.matmul(gy2, kernel.T).reshape(x.shape) if self.needs_grad[0] else None
        gk = None
        if self.needs_grad[1]:
            gk = parallel.matmul(x2.T, gy2)
        grads = (gx, gk)
        if len(self.needs_grad) == 3:
            grads += (gy.reshape(-1, gy.shape[-1]).sum(axis=0) if self.needs_grad[2] else None,)
        return grads


def dense(x, kernel, bias=None):
    """Fully connected layer op: x @ kernel + bias, kernel shaped (in_features, out_features)."""
    for label, value, rank in (("kernel", kernel, 2), ("bias", bias, 1)):
        if value is not None and np.ndim(value) != rank:
            raise ArgumentError(
                f"dense: expected a {rank}-D {label}, got shape {np.shape(value)}.")
    if np.ndim(x) < 1:
        raise ArgumentError(
            f"dense: expected an input with a feature axis, got shape {np.shape(x)}.")
    if bias is not None and np.shape(bias)[0] != np.shape(kernel)[1]:
        raise ArgumentError(
            f"dense: bias has {np.shape(bias)[0]} entries, the kernel has {np.shape(kernel)[1]} "
            "outputs."
        )
    op = Dense()
    return op(x, kernel) if bias is None else op(x, kernel, bias)
