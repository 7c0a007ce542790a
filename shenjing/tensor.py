"""Tensor, the Op base class and reverse-mode autograd (define-by-run).

A Tensor wraps a NumPy array. Every differentiable computation is an ``Op``: its ``forward``
maps ndarrays to ndarrays and its ``backward`` maps the gradient of the outputs to one gradient
per input. While grad mode is on, calling an Op on tensors that require grad records the Op as
the creator of its outputs; ``Tensor.backward`` walks that graph in reverse topological order,
iteratively, so graphs of any depth (a long RNN unroll) work. Gradients are plain ndarrays.
"""

from __future__ import annotations

import contextlib
import sys
import weakref

import numpy as np

from .errors import ArgumentError, ArgumentTypeError

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Within this block no graph is recorded (inference, optimizer updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


@contextlib.contextmanager
def enable_grad():
    """Turns recording back on inside a ``no_grad`` block."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, True
    try:
        yield
    finally:
        _grad_enabled = previous


def _to_array(data, dtype=None) -> np.ndarray:
    """Float array from data: a floating ndarray keeps its dtype, all else is float32 (as torch)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    if isinstance(data, (np.ndarray, np.floating)) and np.issubdtype(data.dtype, np.floating):
        return np.asarray(data)
    return np.asarray(data, dtype=np.float32)


class Tensor:
    """An n-dimensional array that records the operations applied to it for autograd.

    Args: data (array-like; a floating ndarray keeps its dtype, anything else becomes float32),
    dtype (force a dtype, e.g. ``"float64"``), requires_grad (accumulate ``.grad`` on backward).
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = _to_array(data, dtype)
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise ArgumentTypeError(
                f"Tensor: only floating tensors can require grad, got {self.dtype}.")
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._op: Op | None = None  # the Op that made this tensor (None for a leaf)
        self._index = 0  # which output of _op this tensor is
        self._retain_grad = False

    # ----- array protocol and properties -------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._op is None)

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        # NOTE: a reduction leaves a NumPy scalar in .data; np.asarray needs an ndarray back
        data = np.asarray(self.data)
        if dtype is not None and dtype != data.dtype:
            return data.astype(dtype)
        return data.copy() if copy else data

    def item(self):
        return self.data.item()

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, prefix="Tensor(")
        return f"Tensor({body}, dtype={self.dtype}{grad})"

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph."""
        return Tensor(self.data)

    def astype(self, dtype) -> Tensor:
        return _ew.cast(self, dtype)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retain_grad = True

    def zero_grad(self) -> None:
        self.grad = None

    # ----- autograd ----------------------------------------------------------------------
    def backward(self, gradient=None) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``gradient`` is the upstream gradient (same shape as self); it may be omitted for a
        single-element tensor, where it defaults to one.
        """
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (no graph to walk).")
        if gradient is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward: a gradient is needed for a non-scalar output of shape "
                    f"{self.shape}; pass t.backward(gradient) with that shape."
                )
            # in a distributed training step, this rank's share of the global batch: its
            # mean loss weighs b_r / B in the global one (shenjing/distribution/data_parallel.py)
            seed = np.full(self.shape, _distribution.loss_share(), dtype=self.dtype)
        else:
            seed = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient,
                              dtype=self.dtype)
            if seed.shape != self.shape:
                raise ArgumentError(
                    f"backward: gradient shape {seed.shape} does not match tensor shape "
                    f"{self.shape}."
                )
        if self._op is None:
            _accumulate_leaf(self, seed)
            return

        with _own_threads():
            self._walk_backward(seed)

    def _walk_backward(self, seed) -> None:
        # grads of op outputs, keyed by (id(op), output index)
        pending = {(id(self._op), self._index): seed}
        for op in _topological_order(self._op):
            output_grads = [pending.pop((id(op), i), None) for i in range(op.n_outputs)]
            if all(g is None for g in output_grads):
                continue
            for i, ref in enumerate(op.outputs):
                out = ref()
                if out is not None and out._retain_grad and output_grads[i] is not None:
                    out.grad = output_grads[i].copy()
            for i, g in enumerate(output_grads):
                if g is None and not op.takes_missing_grads:
                    shape, dtype = op.output_meta[i]
                    output_grads[i] = np.zeros(shape, dtype=dtype)
            with _blas_threads() if op.blas_threads else _NOTHING:
                input_grads = op.backward(*output_grads)
            if op.n_inputs == 1 and not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            input_grads = list(input_grads)
            for k, tensor in enumerate(op.inputs):
                g, input_grads[k] = input_grads[k], None  # so that a leaf may keep g uncopied
                if g is None or not tensor.requires_grad:
                    continue
                if g.shape != tensor.shape:
                    raise RuntimeError(
                        f"{op.name} backward returned a gradient of shape {g.shape} for an "
                        f"input of shape {tensor.shape} (internal error)."
                    )
                if tensor._op is None:
                    _accumulate_leaf(tensor, g)
                else:
                    key = (id(tensor._op), tensor._index)
                    if key in pending:
                        pending[key] = pending[key] + g
                    else:
                        pending[key] = g

    # ----- operators (implemented in shenjing.ops) ---------------------------------------
    def __add__(self, other):
        return _ew.add(self, other)

    def __radd__(self, other):
        return _ew.add(other, self)

    def __sub__(self, other):
        return _ew.sub(self, other)

    def __rsub__(self, other):
        return _ew.sub(other, self)

    def __mul__(self, other):
        return _ew.mul(self, other)

    def __rmul__(self, other):
        return _ew.mul(other, self)

    def __truediv__(self, other):
        return _ew.div(self, other)

    def __rtruediv__(self, other):
        return _ew.div(other, self)

    def __pow__(self, exponent):
        return _ew.pow(self, exponent)

    def __rpow__(self, base):
        return _ew.pow(base, self)

    def __neg__(self):
        return _ew.neg(self)

    def __matmul__(self, other):
        return _mm.matmul(self, other)

    def __rmatmul__(self, other):
        return _mm.matmul(other, self)

    def __getitem__(self, index):
        return _sh.getitem(self, index)

    # comparisons give plain boolean arrays: they are not differentiable
    def __lt__(self, other):
        return self.data < _data(other)

    def __le__(self, other):
        return self.data <= _data(other)

    def __gt__(self, other):
        return self.data > _data(other)

    def __ge__(self, other):
        return self.data >= _data(other)

    __hash__ = object.__hash__

    def exp(self):
        return _ew.exp(self)

    def log(self):
        return _ew.log(self)

    def sqrt(self):
        return _ew.sqrt(self)

    def abs(self):
        return _ew.abs(self)

    def clip(self, min=None, max=None):
        return _ew.clip(self, min, max)

    def sum(self, axis=None, keepdims=False):
        return _rd.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _rd.mean(self, axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _rd.max(self, axis, keepdims)

    def min(self, axis=None, keepdims=False):
        return _rd.min(self, axis, keepdims)

    def var(self, axis=None, keepdims=False, ddof=0):
        return _rd.var(self, axis, keepdims, ddof)

    def reshape(self, *shape):
        return _sh.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return _sh.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    @property
    def T(self):
        return _sh.transpose(self, None)


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _unshared(g, dtype, refs) -> bool:
    """Whether nothing but the caller holds g (refs: its count there) and, for a whole-array
    view of a fresh array, its base."""
    if g.dtype != dtype or not (g.flags.writeable and g.flags.c_contiguous) or refs > _FREE_REFS:
        return False
    base = g.base
    if base is None:
        return True
    return (type(base) is np.ndarray and base.base is None and base.size == g.size
            and sys.getrefcount(base) <= _FREE_BASE_REFS)


def _free_counts():
    """sys.getrefcount of an array nobody else holds, as _accumulate_leaf and _unshared see it
    (a caller's local, the parameter, the call's argument; for a base: the view, a local)."""
    def leaf(g):
        return sys.getrefcount(g)

    g = np.empty(1)
    view = np.empty(2).reshape(1, 2)
    base = view.base
    return leaf(g), sys.getrefcount(base)


_FREE_REFS, _FREE_BASE_REFS = _free_counts()


def _accumulate_leaf(tensor: Tensor, g: np.ndarray) -> None:
    if tensor.grad is None:
        # keep g when nothing else holds it (PyTorch does the same); otherwise own a copy: g
        # may be a view of, or the same array as, another gradient, or an op's cache
        refs = sys.getrefcount(g)  # counted before g is pushed as an argument below
        if _unshared(g, tensor.dtype, refs):
            tensor.grad = g
        else:
            tensor.grad = np.array(g, dtype=tensor.dtype, copy=True, order="C")
    else:
        tensor.grad += g


def _topological_order(root: Op) -> list[Op]:
    """Ops reachable from root, each after every op that consumes its outputs (no recursion)."""
    post_order, visited = [], {id(root)}
    stack = [(root, iter(root.inputs))]
    while stack:
        op, inputs = stack[-1]
        for tensor in inputs:
            parent = tensor._op
            if parent is not None and id(parent) not in visited:
                visited.add(id(parent))
                stack.append((parent, iter(parent.inputs)))
                break
        else:
            stack.pop()
            post_order.append(op)
    post_order.reverse()
    return post_order


def as_tensor(x, dtype=None) -> Tensor:
    """x itself if it is a Tensor, else a non-grad Tensor over it (no copy for ndarrays)."""
    if isinstance(x, Tensor):
        return x
    return Tensor(x, dtype=dtype)


class Op:
    """One differentiable operation: ``forward(*arrays)`` and ``backward(*output_grads)``.

    Settings go to the constructor, tensors to the call. ``backward`` returns one gradient per
    input (``None`` where none is needed), shaped like that input. ``self.needs_grad[i]`` says
    whether input i wants a gradient, so backward can skip work.
    """

    name: str | None = None  # used in error messages; defaults to the class name
    # True: the BLAS keeps its own threads while this op runs (ops made of products it splits
    # better than shenjing.ops.parallel does); otherwise it runs on one thread (see there)
    blas_threads = False
    # True: backward gets None for an output no gradient reached (else zeros of its shape)
    takes_missing_grads = False

    def __call__(self, *inputs):
        tensors = tuple(
            x if isinstance(x, Tensor) else self._wrap(x, i) for i, x in enumerate(inputs)
        )
        record = _grad_enabled and any(t.requires_grad for t in tensors)
        self.needs_grad = tuple(record and t.requires_grad for t in tensors)
        with _own_threads(), (_blas_threads() if self.blas_threads else _NOTHING):
            outputs = self.forward(*(t.data for t in tensors))
        single = not isinstance(outputs, tuple)
        if single:
            outputs = (outputs,)
        results = tuple(Tensor.__new__(Tensor) for _ in outputs)
        for i, (result, array) in enumerate(zip(results, outputs)):
            result.data, result.grad, result._retain_grad = array, None, False
            result.requires_grad, result._op, result._index = record, None, i
        if record:
            self.inputs = tensors
            self.n_inputs, self.n_outputs = len(tensors), len(outputs)
            self.output_meta = [(a.shape, a.dtype) for a in outputs]
            self.outputs = [weakref.ref(r) for r in results]
            for result in results:
                result._op = self
        return results[0] if single else results

    def _wrap(self, x, position) -> Tensor:
        array = np.asarray(x)
        if not np.issubdtype(array.dtype, np.floating):
            raise ArgumentTypeError(
                f"{self.op_name}: expected a floating-point array (float32 or float64) for "
                f"input {position}, got dtype {array.dtype}."
            )
        return Tensor(array)

    @property
    def op_name(self) -> str:
        return self.name or type(self).__name__

    def forward(self, *xs):
        raise NotImplementedError

    def backward(self, *gys):
        raise NotImplementedError


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum g over the axes that broadcasting added or stretched, so it has ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g.reshape(shape)


# The ops modules import Op/Tensor from here, so they are imported after both exist.
from .distribution import context as _distribution
from .ops import elementwise as _ew
from .ops import matmul as _mm
from .ops import reduce as _rd
from .ops import shape as _sh
from .ops.parallel import blas_threads as _blas_threads
from .ops.parallel import own_threads as _own_threads

_NOTHING = contextlib.nullcontext()
