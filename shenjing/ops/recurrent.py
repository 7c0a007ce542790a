"""Fused recurrent ops over batch-first sequences (N, T, F) with Keras weight layouts and a
hand-written backward through time: simple_rnn, lstm, gru.

Each returns (outputs (N, T, u), last h (N, u)[, last c (N, u)]). The input projection of every
step is one product; a step then costs one recurrent product (two for GRU with reset_after=False)
and a few in-place NumPy calls on contiguous feature-major (T, F, N) caches; each weight gradient
is one product after the loop. Masks follow Keras 3 (keras.src.backend.torch.rnn): at a masked
step the state is carried over and the output repeats the last real step's output (zeros before
the first one), or is zero with zero_output_for_mask=True. go_backwards reads time reversed and
returns the outputs in processing (reversed) order, as Keras does.
"""

import copy
import weakref

import numpy as np

from .. import memory
from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, Tensor
from . import parallel

ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")
# NOTE: sigmoid(z) = (1 + tanh(z / 2)) / 2 never overflows; the 1/2 is folded into the weight
# columns of sigmoid gates once per call (exact: a power of two), so a gate block takes one tanh.
_PRESCALE = {"sigmoid": 0.5}


def _activate(name, z, out=None, prescaled=True):
    """out <- name(z), in place by default; a sigmoid's z arrives halved unless prescaled=False
    (see _PRESCALE)."""
    out = z if out is None else out
    if not prescaled and name in _PRESCALE:
        z = np.multiply(z, _PRESCALE[name], out=out)
    if name in ("tanh", "sigmoid"):
        np.tanh(z, out=out)
        if name == "sigmoid":
            out *= 0.5
            out += 0.5
    elif name == "relu":
        np.maximum(z, 0, out=out)
    elif name == "hard_sigmoid":  # Keras 3: clip(z / 6 + 1/2, 0, 1)
        np.multiply(z, 1 / 6, out=out)
        out += 0.5
        np.clip(out, 0, 1, out=out)
    elif out is not z:
        np.copyto(out, z)
    return out


def _derivative(name, y, out):
    """out <- name'(z) computed from y = name(z)."""
    if name == "tanh":
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
    elif name == "sigmoid":
        np.subtract(1, y, out=out)
        out *= y
    elif name == "relu":
        np.greater(y, 0, out=out)
    elif name == "hard_sigmoid":
        np.greater(y, 0, out=out)
        out *= y < 1
        out *= 1 / 6
    else:
        out.fill(1)
    return out


_SPARES, _SPARE_BYTES = {}, 1 << 28  # free blocks by size, 256 MB at most


def _empty(shape, dtype):
    """np.empty backed by a recycled block (memory.new_block: cache-line aligned, huge pages when
    large): a fresh multi-megabyte array costs a page fault per 4 KiB on every call, about a
    tenth of an LSTM training step. The block goes back to the spares only once the array and
    every view of it are gone (a weakref finalizer)."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        block, offset = _SPARES[nbytes].pop()
    except (KeyError, IndexError):
        block, offset = memory.new_block(nbytes)
    array = np.ndarray(shape, dtype, buffer=block, offset=offset)  # views' .base is this array
    weakref.finalize(array, _give_back, nbytes, block, offset).atexit = False
    return array


def _give_back(nbytes, block, offset):
    spares = _SPARES.setdefault(nbytes, [])
    held = sum(len(b) for blocks in _SPARES.values() for b, _ in blocks)  # as mapped
    if len(spares) < 8 and held + len(block) <= _SPARE_BYTES:
        spares.append((block, offset))


def _flat(A, order=None):
    """(T, F, N) -> (F, T * N): the steps side by side, for one product over all of them; with
    order, row order[p] of the result is row p of A's steps (gate order back to Keras's)."""
    T, F, N = A.shape
    out = _empty((F, T, N), A.dtype)
    if order is None or (order == np.arange(F)).all():
        np.copyto(out, A.transpose(1, 0, 2))
    else:
        out[order] = A.transpose(1, 0, 2)  # as fast as the plain copy
    return out.reshape(F, T * N)


# LSTM gate order in the step caches (Keras's blocks: i = 0, f = 1, c = 2, o = 3): forward's
# gates, and backward's gradients, written over them with i and c swapped (see LSTM._backward)
_STEP_GATES, _GRAD_GATES = (3, 1, 0, 2), (3, 1, 2, 0)


def _gate_columns(gates, u):
    """The kernel columns of the gate blocks in this order."""
    return np.concatenate([np.arange(k * u, (k + 1) * u) for k in gates])



def _added(pieces):
    """The parts' weight gradients summed, in part order."""
    total = pieces[0] + pieces[1]
    for piece in pieces[2:]:
        total += piece
    return total

class _Recurrent(Op):
    """Shared plumbing. Inputs: x, kernel, recurrent_kernel, then the bias and the initial states
    that were given. Caches are feature-major, (T, F, N): each gate of a step is a contiguous
    (u, N) block of rows, so every per-step NumPy call runs on contiguous memory."""

    takes_missing_grads = True  # an unused output's gradient comes as None (see _output_grads)

    def __init__(self, has_bias, states_given, mask, go_backwards, zero_output_for_mask,
                 activation, recurrent_activation="sigmoid", keep_state_grads=False):
        self.has_bias, self.states_given, self.mask = has_bias, states_given, mask
        self.go_backwards, self.zero_output_for_mask = go_backwards, zero_output_for_mask
        self.activation, self.recurrent_activation = activation, recurrent_activation
        self.keep_state_grads, self.state_grads = keep_state_grads, None

    # ----- parts of the batch on the threads ----------------------------------------------
    # NOTE: the rows of a batch are independent recurrences, so a large batch runs as several
    # part-batch ops at once (ops/parallel.py's threads, each part's gate block at least
    # MIN_SPLIT_BLOCK / 2), each on its own thread with the BLAS on one thread; outputs and
    # input gradients are joined along the batch, weight gradients added in part order (so
    # their rounding depends on the number of parts). The NumPy calls of a step release the
    # GIL only for their loops, so this pays once a step's gate block is large (measured on 2
    # cores, in two halves: LSTM, u = 128, T = 50, forward + backward: batch 48 9.8 -> 11.1
    # ms, 64 11.7 -> 11.6, 128 23.5 -> 21.6, inference at 256 17.5 -> 12.4). Smaller batches
    # run whole, with the BLAS's own threads for their products.
    MIN_SPLIT_BLOCK = 1 << 16  # gates * batch

    def __call__(self, *inputs):
        (N, T), gates = np.shape(inputs[0])[:2], np.shape(inputs[2])[-1]
        self.split = (gates * N >= self.MIN_SPLIT_BLOCK
                      and parallel.worth_splitting(N, N * T * gates))
        # how many parts: up to THREADS, each with a gate block of MIN_SPLIT_BLOCK / 2 or more
        self.pieces = (max(2, min(parallel.THREADS, N,
                                  2 * gates * N // max(self.MIN_SPLIT_BLOCK, 1)))
                       if self.split else 1)
        self.blas_threads = not self.split
        return super().__call__(*inputs)

    def _batch_args(self, arrays):
        """Which arguments are batch-major: x and the initial states (not the weights)."""
        first_state = 3 + self.has_bias
        return [k == 0 or k >= first_state for k in range(len(arrays))]

    def forward(self, *arrays):
        if not self.split:
            self.parts = None
            return self._forward(*arrays)
        batch = self._batch_args(arrays)

        def run(s):
            part = copy.copy(self)
            part.mask = None if self.mask is None else self.mask[s]
            outputs = part._forward(*(a[s] if b else a for a, b in zip(arrays, batch)))
            return part, outputs

        results = parallel.split(run, len(arrays[0]), self.pieces)
        self.parts = [part for part, _ in results]
        return tuple(np.concatenate(pieces) for pieces in zip(*(out for _, out in results)))

    def backward(self, *grads):
        if self.parts is None:
            return self._backward(*grads)
        rows = next(len(g) for g in grads if g is not None)
        # the parts of the forward, whatever THREADS is now
        index = {s.start: i for i, s in enumerate(parallel.slices(rows, len(self.parts)))}
        results = parallel.split(lambda s: self.parts[index[s.start]]._backward(
            *(None if g is None else g[s] for g in grads)), rows, len(self.parts))
        combined = []
        for pieces, batch in zip(zip(*results), self._batch_args(results[0])):
            if pieces[0] is None:
                combined.append(None)
            else:
                combined.append(np.concatenate(pieces) if batch else _added(pieces))
        if self.keep_state_grads:
            self.state_grads = np.concatenate([p.state_grads for p in self.parts], axis=1)
        return tuple(combined)

    def _unpack(self, arrays):
        self.dtypes = [a.dtype for a in arrays]
        dtype = np.result_type(*arrays)
        x, kernel, recurrent, *rest = (a.astype(dtype, copy=False) for a in arrays)
        bias = rest.pop(0) if self.has_bias else None
        states = [rest.pop(0) if given else None for given in self.states_given]
        return x, kernel, recurrent, bias, states

    def _inputs(self, x, has_bias, columns, state_rows=0):
        """The steps' inputs, feature-major: (d [+ 1] [+ state_rows], T [+ 1], N).

        Rows: x_t's features, a row of ones when there is a bias (it folds the bias into the
        products and their gradients), then state_rows rows left for the caller's state h_{t-1}
        (one more column then, for the last state), so that column t is a step's whole input.
        """
        N, T, d = x.shape
        F = d + has_bias
        B = _empty((F + state_rows, T + (state_rows > 0), N), x.dtype)
        X = B[:F, :T]
        X[:d] = (x[:, ::-1] if self.go_backwards else x).transpose(2, 1, 0)
        if has_bias:
            X[d] = 1
        self.X, self.d, self.columns = X, d, columns
        self._masks(T, x.dtype)
        return B

    def _project(self, x, kernel, bias_row, columns, scale):
        """x W + b of every step in one batched product -> (T, G, N), in processing order."""
        X = self._inputs(x, bias_row is not None, columns)
        if bias_row is not None:
            kernel = np.vstack([kernel, bias_row])
        out = _empty((X.shape[1], len(columns), X.shape[2]), x.dtype)
        return np.matmul((kernel[:, columns] * scale).T, X.transpose(1, 0, 2), out=out)

    def _masks(self, T, dtype):
        self.masked, self.out_mask = [False] * T, None
        if self.mask is None:
            return
        m = (self.mask[:, ::-1] if self.go_backwards else self.mask).T[:, None, :]  # (T, 1, N)
        self.masked, self.keep, self.drop = list(~m.all(axis=(1, 2))), m, ~m
        seen = m if self.zero_output_for_mask else np.logical_or.accumulate(m, axis=0)
        if not seen.all():
            self.out_mask = seen.astype(dtype)

    def _states(self, states, u, T, dtype):
        """A (T + 1, u, N) cache per state; row 0 is the initial state (zeros if none given)."""
        N, caches = self.X.shape[2], []
        self.state_shape = (u, N)
        for s in states:
            caches.append(_empty((T + 1, u, N), dtype))
            caches[-1][0] = 0 if s is None else s.T
        if self.keep_state_grads:
            self.state_grads = np.empty((T, N, u), dtype)
        return caches

    def _outputs(self, H, *states):
        """(outputs (N, T, u), the last h (N, u), then the other last states (u, N) as (N, u)),
        the states copied so that only the outputs keep a cache alive."""
        y = H[1:] if self.out_mask is None else H[1:] * self.out_mask
        return (y.transpose(2, 0, 1), H[-1].T.copy()) + tuple(s.T.copy() for s in states)

    def _restore(self):
        if self.saved is None:
            raise RuntimeError(
                f"{self.op_name}: backward ran through this op a second time; its caches are "
                "released after the first (run the forward again)."
            )
        return self.saved

    def _output_grads(self, gy, *g_last):
        """gy (N, T, u) -> (T, u, N) (None when zero or None); last-state grads (N, u) -> (u, N)
        (zeros for None: an output the loss does not use)."""
        gys = None
        if gy is not None and gy.any():
            gys = _empty(gy.shape[1:] + gy.shape[:1], gy.dtype)
            if self.out_mask is None:
                np.copyto(gys, gy.transpose(1, 2, 0))
            else:
                np.multiply(gy.transpose(1, 2, 0), self.out_mask, out=gys)
        # worked on in place: never the caller's array
        g_last = [np.zeros(self.state_shape, self.X.dtype) if g is None else g.T.copy()
                  for g in g_last]
        if gys is not None:
            g_last[0] += gys[-1]
        return gys, g_last

    def _input_grads(self, dZ, kernel):
        """gx (N, T, d), the kernel and bias-row gradients from the step gradients dZ (T, G, N),
        and dZ flattened to (G, T * N) for the recurrent kernel's gradient."""
        (T, _, N), flat = dZ.shape, _flat(dZ, self.columns)
        gx, gw, gb, _ = self._weight_grads(flat, kernel, T, N)
        return gx, gw, gb, flat

    def _weight_grads(self, flat, kernel, T, N, stacked=None):
        """(gx, gkernel, gbias_row, grecurrent) from the step gradients flat (G, T * N), its rows
        in Keras's gate order (see _flat). stacked: (F + u, T, N), each step's input X with the
        state before the step below it (see _inputs); the recurrent kernel's gradient then comes
        from the same product as the kernel's (grecurrent is None without it)."""
        gx = gw = gb = gu = None
        if self.needs_grad[0]:
            gx = (kernel @ flat).reshape(self.d, T, N).transpose(2, 1, 0)
            gx = gx[:, ::-1] if self.go_backwards else gx
        need_w = self.needs_grad[1] or (self.has_bias and self.needs_grad[3])
        need_u = stacked is not None and self.needs_grad[2]
        if not (need_w or need_u):
            return gx, gw, gb, gu
        F = self.X.shape[0]  # stacked's rows: X's F rows, then the u state rows
        rows = self.X if not need_u else stacked if need_w else stacked[F:]
        g = rows.reshape(-1, T * N) @ flat.T
        if need_w:
            gw, gb = g[: self.d], (g[self.d] if self.has_bias else None)
        if need_u:
            gu = g[-(len(stacked) - F):]  # the state rows, the last of g
        return gx, gw, gb, gu

    def _needs_product(self, t):
        """Whether step t's recurrent product in backward is needed (t = 0 feeds only h0)."""
        return t or any(self.needs_grad[3 + self.has_bias:])

    def _grads(self, gx, gw, gu, gb, gstates):
        """Gradients in input order, each in its input's dtype; the caches are let go (their
        buffers are recycled), so a second backward through this op is refused."""
        self.saved = self.X = None
        grads = [gx, gw, gu] + ([gb] if self.has_bias else [])
        grads += [g.T for g, given in zip(gstates, self.states_given) if given]
        return tuple(
            None if g is None or not need else g.astype(dt, copy=False)
            for g, need, dt in zip(grads, self.needs_grad, self.dtypes)
        )


class SimpleRNN(_Recurrent):
    """h_t = act(x_t W + h_{t-1} U + b)."""

    name = "simple_rnn"

    def _forward(self, *arrays):
        # x (N, T, d), kernel (d, u), recurrent (u, u), bias (u,), h0 (N, u)
        #   -> y (N, T, u), h_T (N, u)
        x, kernel, recurrent, bias, states = self._unpack(arrays)
        T, u, act = x.shape[1], recurrent.shape[0], self.activation
        scale = _PRESCALE.get(act, 1)
        Z = self._project(x, kernel, bias, np.arange(u), scale)
        (H,) = self._states(states, u, T, x.dtype)
        UsT = np.ascontiguousarray((recurrent * scale).T)
        for t in range(T):
            np.matmul(UsT, H[t], out=H[t + 1])
            H[t + 1] += Z[t]
            _activate(act, H[t + 1])
            if self.masked[t]:
                np.copyto(H[t + 1], H[t], where=self.drop[t])
        self.saved = H, kernel, recurrent
        return self._outputs(H)

    def _backward(self, gy, gh):
        # gy (N, T, u), gh (N, u) -> gx (N, T, d), gkernel (d, u), grecurrent (u, u),
        #   gbias (u,), gh0 (N, u)
        H, kernel, recurrent = self._restore()
        gys, (dh,) = self._output_grads(gy, gh)
        dZ = _derivative(self.activation, H[1:], _empty(H[1:].shape, H.dtype))
        for t in range(len(dZ) - 1, -1, -1):
            if self.keep_state_grads:
                self.state_grads[t] = dh.T
            if self.masked[t]:
                carry = dh * self.drop[t]
                dh *= self.keep[t]
            dZ[t] *= dh
            if self._needs_product(t):
                np.matmul(recurrent, dZ[t], out=dh)
            if t and gys is not None:
                dh += gys[t - 1]
            if self.masked[t]:
                dh += carry
        gx, gw, gb, flat = self._input_grads(dZ, kernel)
        Hf = _flat(H[:-1]) if self.needs_grad[2] else None
        gu = None if Hf is None else Hf @ flat.T
        return self._grads(gx, gw, gu, gb, [dh])


def simple_rnn(x, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None,
               go_backwards=False, activation="tanh", zero_output_for_mask=False,
               keep_state_grads=False):
    """Fully connected RNN, h_t = act(x_t W + h_{t-1} U + b), over x (N, T, d).

    Args: kernel (d, u), recurrent_kernel (u, u), bias (u,), initial_state (N, u); mask (N, T),
    True at real steps; go_backwards; activation by name; keep_state_grads keeps dL/dh_t
    (T, N, u, processing order) as ``y._op.state_grads`` after backward.
    Returns (outputs (N, T, u), last state (N, u)).
    """
    mask, acts = _check("simple_rnn", x, kernel, recurrent_kernel, bias, 1, lambda u: (u,),
                        {"initial_state": initial_state}, mask, activation)
    op = SimpleRNN(bias is not None, (initial_state is not None,), mask, bool(go_backwards),
                   bool(zero_output_for_mask), *acts, keep_state_grads=bool(keep_state_grads))
    return op(*_present(x, kernel, recurrent_kernel, bias, initial_state))


class LSTM(_Recurrent):
    """z = x_t W + h_{t-1} U + b, gates i, f, c, o (Keras order): i, f, o = sig(z_i, z_f, z_o),
    c~ = act(z_c); c_t = f c_{t-1} + i c~; h_t = o act(c_t)."""

    name = "lstm"

    def _forward(self, *arrays):
        # x (N, T, d), kernel (d, 4u), recurrent (u, 4u), bias (4u,), h0, c0 (N, u)
        #   -> y (N, T, u), h_T (N, u), c_T (N, u)
        x, kernel, recurrent, bias, states = self._unpack(arrays)
        T, u, dtype = x.shape[1], recurrent.shape[0], x.dtype
        sig, act = self.recurrent_activation, self.activation
        # gates reordered to o, f, i, c once per call: the three sigmoid gates lie side by side,
        # and i, c last (backward swaps their slots, see there)
        columns = _gate_columns(_STEP_GATES, u)
        scale = np.repeat(np.array([_PRESCALE.get(sig, 1)] * 3 + [_PRESCALE.get(act, 1)],
                                   dtype), u)
        # column t of B is step t's whole input [x_t; 1; h_{t-1}]: one product per step gives
        # z = x_t W + b + h_{t-1} U, and one product after the loop all three weight gradients
        B = self._inputs(x, bias is not None, columns, state_rows=u)
        F = self.X.shape[0]
        H = B[F:].transpose(1, 0, 2)  # (T + 1, u, N) view: H[t] = h_{t-1}
        H[0] = 0 if states[0] is None else states[0].T
        weights = [kernel] + ([bias[None]] if bias is not None else []) + [recurrent]
        WT = np.ascontiguousarray((np.vstack(weights)[:, columns] * scale).T)  # (4u, F + u)
        N = B.shape[2]
        # the backward needs every step's gates, c_t and act(c_t); inference only the latest
        every = any(self.needs_grad)
        steps = T if every else 1
        (C,) = self._states(states[1:], u, T if every else 1, dtype)  # inference: 2 rows, in turn
        G = _empty((steps, 4 * u, N), dtype)  # pre-activations, then gates
        TC = _empty((steps, u, N), dtype)  # act(c_t)
        ig = np.empty((u, N), dtype)
        fused = sig == "sigmoid" and act == "tanh"
        for t in range(T):
            k, c0, c1 = (t, t, t + 1) if every else (0, t & 1, (t + 1) & 1)
            g = np.matmul(WT, B[:, t], out=G[k])
            if fused:  # one tanh for the whole block, then sigmoid = (1 + tanh) / 2
                np.tanh(g, out=g)
                s = g[: 3 * u]
                s *= 0.5
                s += 0.5
            else:
                _activate(sig, g[: 3 * u])
                _activate(act, g[3 * u:])
            o, f, i, c = g[:u], g[u : 2 * u], g[2 * u : 3 * u], g[3 * u:]
            np.multiply(f, C[c0], out=C[c1])
            np.multiply(i, c, out=ig)
            C[c1] += ig
            np.multiply(o, _activate(act, C[c1], TC[k], prescaled=False), out=H[t + 1])
            if self.masked[t]:
                np.copyto(H[t + 1], H[t], where=self.drop[t])
                np.copyto(C[c1], C[c0], where=self.drop[t])
        self.saved = (G, B, C, TC, kernel, recurrent) if every else None
        return self._outputs(H, C[T if every else T & 1])

    def _backward(self, gy, gh, gc):
        # gy (N, T, u), gh, gc (N, u) -> gx (N, T, d), gkernel (d, 4u), grecurrent (u, 4u),
        #   gbias (4u,), gh0, gc0 (N, u)
        G, B, C, TC, kernel, recurrent = self._restore()
        (T, _, N), u = G.shape, C.shape[1]
        sig, act = self.recurrent_activation, self.activation
        # NOTE: each step's gradients dz overwrite its gates g = [o, f, i, c~] in G (hot in
        # cache; a separate dZ buffer cost a cold write per step, ~0.8 ms of a 17 ms W3 step).
        # [i, c~] * dc lands in the slots as [dz_c, dz_i], so dZ's slots hold o, f, c, i.
        columns = _gate_columns(_GRAD_GATES, u)
        U = np.take(recurrent, columns, axis=1)  # C order, unlike recurrent[:, columns]
        gys, (dh, dc) = self._output_grads(gy, gh, gc)
        D, tmp, dc_next = (np.empty(shape, G.dtype) for shape in ((4 * u, N), (u, N), (u, N)))
        for t in range(T - 1, -1, -1):
            if self.keep_state_grads:
                self.state_grads[t] = dh.T
            if self.masked[t]:
                carry_h, carry_c = dh * self.drop[t], dc * self.drop[t]
                dh *= self.keep[t]
                dc *= self.keep[t]
            g = G[t]
            o, f, i_c = g[:u], g[u : 2 * u], g[2 * u:].reshape(2, u, N)
            _derivative(act, TC[t], tmp)  # dc_t += dh o act'(c_t)
            tmp *= o
            tmp *= dh
            dc += tmp
            _derivative(sig, g[: 3 * u], D[: 3 * u])  # o', f', i'
            _derivative(act, g[3 * u:], D[3 * u:])  # c~'
            np.multiply(dc, f, out=dc_next)  # dc_{t-1}
            np.multiply(dh, TC[t], out=o)  # dz_o / o'
            np.multiply(dc, C[t], out=f)  # dz_f / f'
            i_c *= dc  # [dc i, dc c~] = [dz_c / c~', dz_i / i']
            g[: 2 * u] *= D[: 2 * u]
            i_c *= D[2 * u:].reshape(2, u, N)[::-1]
            dc, dc_next = dc_next, dc
            if self._needs_product(t):
                np.matmul(U, g, out=dh)
            if t and gys is not None:
                dh += gys[t - 1]
            if self.masked[t]:
                dh += carry_h
                dc += carry_c
        gx, gw, gb, gu = self._weight_grads(_flat(G, columns), kernel, T, N, stacked=B[:, :T])
        return self._grads(gx, gw, gu, gb, [dh, dc])


def lstm(x, kernel, recurrent_kernel, bias=None, initial_h=None, initial_c=None, mask=None,
         go_backwards=False, activation="tanh", recurrent_activation="sigmoid",
         zero_output_for_mask=False, keep_state_grads=False):
    """Long short-term memory over x (N, T, d); Keras gate blocks i, f, c, o.

    c_t = f c_{t-1} + i act(z_c), h_t = o act(c_t), gates i, f, o = recurrent_activation(z).
    Args: kernel (d, 4u), recurrent_kernel (u, 4u), bias (4u,), initial_h / initial_c (N, u);
    mask (N, T), True at real steps; go_backwards; activations by name; keep_state_grads keeps
    dL/dh_t (T, N, u, processing order) as ``y._op.state_grads`` after backward.
    Returns (outputs (N, T, u), last h (N, u), last c (N, u)).
    """
    mask, acts = _check("lstm", x, kernel, recurrent_kernel, bias, 4, lambda u: (4 * u,),
                        {"initial_h": initial_h, "initial_c": initial_c}, mask, activation,
                        recurrent_activation)
    op = LSTM(bias is not None, (initial_h is not None, initial_c is not None), mask,
              bool(go_backwards), bool(zero_output_for_mask), *acts,
              keep_state_grads=bool(keep_state_grads))
    return op(*_present(x, kernel, recurrent_kernel, bias, initial_h, initial_c))


class GRU(_Recurrent):
    """Gates z, r, h (Keras order): z, r = sig(x W + h_{t-1} U + b); reset_after:
    h~ = act(x W_h + b_ih + r (h_{t-1} U_h + b_hh)), else h~ = act(x W_h + (r h_{t-1}) U_h + b_h);
    h_t = z h_{t-1} + (1 - z) h~."""

    name = "gru"

    def __init__(self, *args, reset_after=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.reset_after = reset_after

    def _forward(self, *arrays):
        # x (N, T, d), kernel (d, 3u), recurrent (u, 3u), bias (2, 3u) or (3u,), h0 (N, u)
        #   -> y (N, T, u), h_T (N, u)
        x, kernel, recurrent, bias, states = self._unpack(arrays)
        T, u, dtype = x.shape[1], recurrent.shape[0], x.dtype
        sig, act, after = self.recurrent_activation, self.activation, self.reset_after
        # only the z and r columns are prescaled: r multiplies the raw h-block product
        scale = np.repeat(np.array([_PRESCALE.get(sig, 1)] * 2 + [1], dtype), u)
        bias_row, bh = bias, 0
        if bias is not None and after:  # the recurrent z, r biases join the input bias
            bias_row = bias[0] + np.concatenate([bias[1, : 2 * u], np.zeros(u, dtype)])
            bh = bias[1, 2 * u:, None]
        G = self._project(x, kernel, bias_row, np.arange(3 * u), scale)
        (H,) = self._states(states, u, T, dtype)
        N, UsT = H.shape[2], np.ascontiguousarray((recurrent * scale).T)
        RH = _empty((T, u, N), dtype)  # reset_after: h U_h + b_hh, else r * h_{t-1}
        rec, tmp = np.empty(((3 if after else 2) * u, N), dtype), np.empty((u, N), dtype)
        for t in range(T):
            g = G[t]
            zr, z, r, hh = g[: 2 * u], g[:u], g[u : 2 * u], g[2 * u:]
            if after:
                np.matmul(UsT, H[t], out=rec)
                zr += rec[: 2 * u]
                _activate(sig, zr)
                np.add(rec[2 * u:], bh, out=RH[t])
                np.multiply(r, RH[t], out=tmp)
            else:
                np.matmul(UsT[: 2 * u], H[t], out=rec)
                zr += rec
                _activate(sig, zr)
                np.multiply(r, H[t], out=RH[t])
                np.matmul(UsT[2 * u:], RH[t], out=tmp)
            hh += tmp
            _activate(act, hh, prescaled=False)
            np.subtract(H[t], hh, out=H[t + 1])  # h_t = h~ + z (h_{t-1} - h~)
            H[t + 1] *= z
            H[t + 1] += hh
            if self.masked[t]:
                np.copyto(H[t + 1], H[t], where=self.drop[t])
        self.saved = G, H, RH, kernel, recurrent
        return self._outputs(H)

    def _backward(self, gy, gh):
        # gy (N, T, u), gh (N, u) -> gx (N, T, d), gkernel (d, 3u), grecurrent (u, 3u),
        #   gbias (2, 3u) or (3u,), gh0 (N, u)
        G, H, RH, kernel, recurrent = self._restore()
        (T, _, N), u, after = G.shape, H.shape[1], self.reset_after
        sig, act = self.recurrent_activation, self.activation
        Uzr, Uh = np.ascontiguousarray(recurrent[:, : 2 * u]), recurrent[:, 2 * u:].copy()
        gys, (dh,) = self._output_grads(gy, gh)
        dG = _empty(G.shape, G.dtype)  # input side: d(x W + b), blocks z, r, h
        dR = _empty(G.shape, G.dtype) if after else dG  # recurrent side: d(h U (+ b_hh))
        D, dhz, drh = (np.empty((u, N), G.dtype) for _ in range(3))
        for t in range(T - 1, -1, -1):
            if self.keep_state_grads:
                self.state_grads[t] = dh.T
            if self.masked[t]:
                carry = dh * self.drop[t]
                dh *= self.keep[t]
            g, dg, dr = G[t], dG[t], dR[t]
            z, r, hh = g[:u], g[u : 2 * u], g[2 * u:]
            np.multiply(dh, z, out=dhz)  # the direct path h_t = z h_{t-1} + ...
            np.subtract(H[t], hh, out=dr[:u])
            dr[:u] *= dh
            dr[:u] *= _derivative(sig, z, D)
            np.subtract(dh, dhz, out=dg[2 * u:])
            dg[2 * u:] *= _derivative(act, hh, D)
            if after:
                np.multiply(dg[2 * u:], r, out=dr[2 * u:])
                np.multiply(dg[2 * u:], RH[t], out=dr[u : 2 * u])
                dr[u : 2 * u] *= _derivative(sig, r, D)
                np.matmul(recurrent, dr, out=dh)
            else:
                np.matmul(Uh, dg[2 * u:], out=drh)  # d(r h_{t-1})
                np.multiply(drh, H[t], out=dg[u : 2 * u])
                dg[u : 2 * u] *= _derivative(sig, r, D)
                drh *= r
                np.matmul(Uzr, dg[: 2 * u], out=dh)
                dh += drh
            dh += dhz
            if t and gys is not None:
                dh += gys[t - 1]
            if self.masked[t]:
                dh += carry
        if after:
            dG[:, : 2 * u] = dR[:, : 2 * u]
        gx, gw, gb, flat = self._input_grads(dG, kernel)
        gu = Hf = Rf = None
        if self.needs_grad[2]:
            Hf, Rf = _flat(H[:-1]), _flat(dR if after else RH)
            gu = Hf @ Rf.T if after else np.hstack([Hf @ flat[: 2 * u].T, Rf @ flat[2 * u:].T])
        if gb is not None and after:
            gb = np.stack([gb, np.concatenate([gb[: 2 * u], dR[:, 2 * u:].sum(axis=(0, 2))])])
        return self._grads(gx, gw, gu, gb, [dh])


def gru(x, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None,
        go_backwards=False, reset_after=True, activation="tanh", recurrent_activation="sigmoid",
        zero_output_for_mask=False, keep_state_grads=False):
    """Gated recurrent unit over x (N, T, d); Keras gate blocks z, r, h.

    h_t = z h_{t-1} + (1 - z) h~; reset_after applies r after the recurrent product (bias
    (2, 3u): input row, recurrent row), else before it (bias (3u,)).
    Args: kernel (d, 3u), recurrent_kernel (u, 3u), initial_state (N, u); mask (N, T), True at
    real steps; go_backwards; activations by name; keep_state_grads keeps dL/dh_t (T, N, u,
    processing order) as ``y._op.state_grads`` after backward.
    Returns (outputs (N, T, u), last state (N, u)).
    """
    bias_shape = (lambda u: (2, 3 * u)) if reset_after else (lambda u: (3 * u,))
    mask, acts = _check("gru", x, kernel, recurrent_kernel, bias, 3, bias_shape,
                        {"initial_state": initial_state}, mask, activation, recurrent_activation)
    op = GRU(bias is not None, (initial_state is not None,), mask, bool(go_backwards),
             bool(zero_output_for_mask), *acts, keep_state_grads=bool(keep_state_grads),
             reset_after=bool(reset_after))
    return op(*_present(x, kernel, recurrent_kernel, bias, initial_state))


def _present(*arrays):
    return tuple(a for a in arrays if a is not None)


def _check(op, x, kernel, recurrent_kernel, bias, gates, bias_shape, states, mask, *activations):
    """Validate shapes, the mask and activation names -> (bool mask (N, T) or None, names)."""
    shape = np.shape(x)
    if len(shape) != 3:
        raise ArgumentError(
            f"{op}: expected input of rank 3 (batch, time, features), got shape {shape}."
        )
    (N, T, d), rs = shape, np.shape(recurrent_kernel)
    if T == 0:
        raise ArgumentError(f"{op}: expected at least one time step, got input shape {shape}.")
    if len(rs) != 2 or rs[0] == 0 or rs[1] != gates * rs[0]:
        want = "(units, units)" if gates == 1 else f"(units, {gates} * units)"
        raise ArgumentError(f"{op}: expected recurrent_kernel of shape {want}, got {rs}.")
    u = rs[0]
    if np.shape(kernel) != (d, gates * u):
        raise ArgumentError(
            f"{op}: expected kernel of shape {(d, gates * u)} for {d} input features and {u} "
            f"units, got {np.shape(kernel)}."
        )
    if bias is not None and np.shape(bias) != bias_shape(u):
        raise ArgumentError(f"{op}: expected bias of shape {bias_shape(u)}, got {np.shape(bias)}.")
    for label, state in states.items():
        if state is not None and np.shape(state) != (N, u):
            raise ArgumentError(
                f"{op}: expected {label} of shape {(N, u)} (batch, units), got "
                f"{np.shape(state)}."
            )
    if mask is not None:
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if mask.dtype != bool and not np.issubdtype(mask.dtype, np.integer):
            raise ArgumentTypeError(f"{op}: expected a boolean mask, got dtype {mask.dtype}.")
        if mask.shape != (N, T):
            raise ArgumentError(
                f"{op}: expected mask of shape {(N, T)} (batch, time), got {mask.shape}."
            )
        mask = mask.astype(bool)
    names = []
    for label, value in zip(("activation", "recurrent_activation"), activations):
        name = "linear" if value is None else value
        if not isinstance(name, str) or name not in ACTIVATIONS:
            raise ArgumentError(
                f"{op}: unknown {label} {value!r}, expected one of {', '.join(ACTIVATIONS)}."
            )
        names.append(name)
    return mask, names
