"""ONNX converters of SimpleRNN, LSTM, GRU and Bidirectional: ONNX's own RNN, LSTM and GRU ops.

ONNX reads x as (T, N, F) and weights per direction as W (G*H, F), R (G*H, H), B (2*G*H,):
the input bias, then the recurrent one. Keras's kernels are (F, G*H), so they are transposed,
and the gate blocks reordered: LSTM Keras i, f, c, o -> ONNX i, o, f, c; GRU z, r, h is ONNX's
order, reset_after=True is ONNX's linear_before_reset=1 (bias rows: input, recurrent).
A masked recurrence (a masked step keeps the state; its output is 0 with
zero_output_for_mask=True) equals the recurrence over the kept steps alone, in order, each output
put back at its step. So with a mask, per sample, the kept steps are moved to the front in their
order (a permutation of time computed in the graph from the mask's cumulative sums: any mask,
left-padded, right-padded or gapped), ONNX runs with sequence_lens = the count of kept steps, and
the outputs are gathered back to their steps: zeros at masked ones, or with
zero_output_for_mask=False the output of the last kept step processed before. ONNX's reverse
direction over the first L packed steps reads the kept steps backwards, as go_backwards and
Bidirectional's backward layer do.
"""

import numpy as np

from .onnx import refuse, weight

# Keras activation name -> (ONNX activation, its alpha and beta or None)
_ONNX_ACTIVATIONS = {
    "tanh": ("Tanh", None), "sigmoid": ("Sigmoid", None), "relu": ("Relu", None),
    "hard_sigmoid": ("HardSigmoid", (1 / 6, 0.5)), "linear": ("Affine", (1.0, 0.0)),
}
_GATES = {"SimpleRNN": (1, [0]), "LSTM": (4, [0, 3, 1, 2]), "GRU": (3, [0, 1, 2])}


def _reorder(matrix, layer):
    """Columns of Keras's gate blocks in ONNX's order; matrix (rows, G * H)."""
    gates, order = _GATES[type(layer).__name__]
    blocks = np.split(matrix, gates, axis=-1)
    return np.concatenate([blocks[i] for i in order], axis=-1)


def _direction_weights(layer):
    """(W (G*H, F), R (G*H, H), B (2*G*H,)) of one direction."""
    w = _reorder(weight(layer.kernel), layer).T
    r = _reorder(weight(layer.recurrent_kernel), layer).T
    size = w.shape[0]
    zeros = np.zeros(size, np.float32)
    if layer.bias is None:
        b = np.concatenate([zeros, zeros])
    elif type(layer).__name__ == "GRU" and layer.reset_after:
        bias = weight(layer.bias)  # (2, 3H): input bias, recurrent bias
        b = np.concatenate([_reorder(bias[0], layer), _reorder(bias[1], layer)])
    else:
        b = np.concatenate([_reorder(weight(layer.bias), layer), zeros])
    return w, r, b


def _activations(layer):
    names = [layer.activation_name]
    if type(layer).__name__ == "LSTM":
        names = [layer.recurrent_activation_name, layer.activation_name, layer.activation_name]
    elif type(layer).__name__ == "GRU":
        names = [layer.recurrent_activation_name, layer.activation_name]
    ops, alphas, betas = [], [], []
    for name in names:
        if name not in _ONNX_ACTIVATIONS:
            raise refuse(layer, f"activation {name!r} has no ONNX recurrent form "
                                f"({', '.join(_ONNX_ACTIVATIONS)} do).")
        op, params = _ONNX_ACTIVATIONS[name]
        ops.append(op)
        if params is not None:
            alphas.append(params[0])
            betas.append(params[1])
    return ops, alphas, betas


def _check(layer):
    if type(layer).__name__ not in _GATES:
        raise refuse(layer, "only SimpleRNN, LSTM and GRU layers are exported as recurrences.")
    if layer.stateful:
        raise refuse(layer, "stateful=True carries states between calls, which an ONNX graph "
                            "does not keep.")


class _Packing:
    """The kept steps of each sample moved to the front in their order, and back.

    From mask (N, T) float 0/1: kept (N, T), the kept steps up to and with t; count (N, 1), all
    of them. A kept step t goes to packed step kept_t - 1, a masked one to count + (masked steps
    up to t) - 1: a permutation of time, whatever the mask (left-padded, right-padded, gapped)."""

    def __init__(self, b, mask, name):
        self.b, self.mask, self.name = b, mask, name
        axis = b.const(np.int64(1), "time_axis")
        self.kept = b.op("CumSum", [mask, axis], f"{name}/kept_so_far")
        dropped_mask = b.op("Sub", [b.scalar(1.0), mask])
        dropped = b.op("CumSum", [dropped_mask, axis], f"{name}/dropped_so_far")
        self.count = b.op("ReduceSum", [mask, b.ints([1])], f"{name}/kept", keepdims=1)
        at_kept = b.op("Mul", [mask, self.kept])
        at_dropped = b.op("Mul", [dropped_mask, b.op("Add", [self.count, dropped])])
        self.position = b.op("Sub", [b.op("Add", [at_kept, at_dropped]), b.scalar(1.0)],
                             f"{name}/position")
        self.lens = b.op("Cast", [b.op("Squeeze", [self.count, b.ints([1])])],
                         f"{name}/sequence_lens", to=b.onnx.TensorProto.INT32)

    def pack(self, x):
        """x (N, T, F) -> the packed x: each step's row written at its packed step."""
        position = self.b.op("Cast", [self.position], to=self.b.onnx.TensorProto.INT64)
        return self.b.op("ScatterElements", [x, self._along(position, x), x],
                         f"{self.name}/packed", axis=1)

    def unpack(self, y, zero_output, backwards, hint):
        """y (N, T, H), the outputs at the packed steps -> the output at each original step.

        A kept step gets its own output. A masked one gets 0 (zero_output), or else the output
        of the last kept step processed before it, 0 if none: the kept step before it when
        reading forwards (packed step kept_t - 1), the one after it when reading backwards
        (packed step kept_t - mask_t, which exists while it is below count)."""
        b = self.b
        if zero_output:
            index, valid = self.position, b.op("Cast", [self.mask], to=b.onnx.TensorProto.BOOL)
        elif not backwards:
            index = b.op("Sub", [self.kept, b.scalar(1.0)])
            valid = b.op("Greater", [self.kept, b.scalar(0.0)])
        else:
            index = b.op("Sub", [self.kept, self.mask])
            valid = b.op("Less", [index, self.count])
        index = b.op("Cast", [b.op("Where", [valid, index, b.scalar(0.0)])],
                     to=b.onnx.TensorProto.INT64)
        back = b.op("GatherElements", [y, self._along(index, y)], axis=1)
        valid = b.op("Unsqueeze", [valid, b.ints([2])])
        return b.op("Where", [valid, back, b.scalar(0.0)], hint)

    def states(self, states):
        """A sample with no kept step keeps its zero initial states, whatever ONNX gives for a
        sequence of length 0."""
        b = self.b
        some = b.op("Greater", [self.lens, b.const(np.int32(0), "zero")])
        some = b.op("Unsqueeze", [some, b.ints([1])], f"{self.name}/any_kept")  # (N, 1)
        return [b.op("Where", [some, state, b.scalar(0.0)]) for state in states]

    def _along(self, index, like):
        """index (N, T) broadcast over the features of `like` (N, T, F)."""
        wide = self.b.op("Unsqueeze", [index, self.b.ints([2])])
        return self.b.op("Expand", [wide, self.b.op("Shape", [like])])


def _run(b, layers, x, mask, direction, sequences):
    """The ONNX recurrence over x (N, T, F) -> ([per direction: the outputs (N, T, H) at their
    own steps, 0 at masked ones] if sequences else [], [Y_h (D, N, H)(, Y_c)])."""
    layer = layers[0]
    kind = type(layer).__name__
    weights = [_direction_weights(one) for one in layers]
    w, r, bias = (np.stack([parts[i] for parts in weights]) for i in range(3))
    acts, alphas, betas = _activations(layer)
    packing = lens = None
    if mask is not None:
        packing = _Packing(b, mask, layer.name)
        x, lens = packing.pack(x), packing.lens
    inputs = [b.op("Transpose", [x], f"{layer.name}/time_major", perm=[1, 0, 2]),
              b.const(w, f"{layer.name}/W"), b.const(r, f"{layer.name}/R"),
              b.const(bias, f"{layer.name}/B"), lens or ""]
    op_type = {"SimpleRNN": "RNN", "LSTM": "LSTM", "GRU": "GRU"}[kind]
    extra = {"linear_before_reset": int(layer.reset_after)} if kind == "GRU" else {}
    outputs = b.op(op_type, inputs, layer.name, outputs=3 if kind == "LSTM" else 2,
                   hidden_size=layer.units, direction=direction,
                   activations=acts * len(layers), activation_alpha=(alphas * len(layers)) or None,
                   activation_beta=(betas * len(layers)) or None, **extra)
    y, states = outputs[0], outputs[1:]
    ys = [_batch_major(b, _pick(b, y, d, 1), f"{layer.name}/seq{d}")
          for d in range(len(layers))] if sequences else []
    if mask is None:
        return ys, states
    ys = [packing.unpack(one, one_layer.zero_output_for_mask,
                         direction == "reverse" or d == 1, f"{layer.name}/steps{d}")
          for d, (one, one_layer) in enumerate(zip(ys, layers))]
    states = packing.states(states)
    return ys, states


def _pick(b, value, index, axis):
    """value's entry `index` along `axis`, that axis removed."""
    return b.op("Gather", [value, b.const(np.int64(index), "index")], axis=axis)


def _batch_major(b, y_direction, hint):
    """(T, N, H) -> (N, T, H)."""
    return b.op("Transpose", [y_direction], hint, perm=[1, 0, 2])


def _reverse_time(b, y):
    """y (N, T, H) in reversed time order (Keras's go_backwards outputs)."""
    big = np.iinfo(np.int64).max
    return b.op("Slice", [y, b.ints([-1]), b.ints([-big]), b.ints([1]), b.ints([-1])])


def recurrent(b, layer, x, shapes, mask=None):
    _check(layer)
    direction = "reverse" if layer.go_backwards else "forward"
    ys, states = _run(b, [layer], x, mask, direction, layer.return_sequences)
    if layer.return_sequences:
        out = ys[0]
        if layer.go_backwards:  # Keras gives the steps in the order they were processed
            out = _reverse_time(b, out)
    else:
        out = _pick(b, states[0], 0, 0)
    if not layer.return_state:
        return out
    return [out] + [_pick(b, state, 0, 0) for state in states]


def bidirectional(b, layer, x, shapes, mask=None):
    forward, backward = layer.forward_layer, layer.backward_layer
    for one in (forward, backward):
        _check(one)
    if forward.go_backwards or type(forward) is not type(backward):
        raise refuse(layer, "its forward layer must read forwards and the backward layer be "
                            "of the same class.")
    if forward.units != backward.units or (type(forward).__name__ == "GRU"
                                           and forward.reset_after != backward.reset_after):
        raise refuse(layer, "the forward and backward layers differ in units or reset_after.")
    if _activations(forward) != _activations(backward):
        raise refuse(layer, "the forward and backward layers differ in their activations.")
    # ONNX aligns the backward outputs with the inputs, as Bidirectional does
    halves, states = _run(b, [forward, backward], x, mask, "bidirectional",
                          layer.return_sequences)
    if not layer.return_sequences:
        halves = [_pick(b, states[0], d, 0) for d in (0, 1)]
    mode = layer.merge_mode
    if mode is None:
        outputs = halves
    elif mode == "concat":
        outputs = [b.op("Concat", halves, layer.name, axis=-1)]
    elif mode == "sum":
        outputs = [b.op("Add", halves, layer.name)]
    elif mode == "mul":
        outputs = [b.op("Mul", halves, layer.name)]
    else:
        outputs = [b.op("Mul", [b.op("Add", halves), b.scalar(0.5)], layer.name)]
    if layer.return_state:
        outputs += [_pick(b, state, d, 0) for d in (0, 1) for state in states]
    return outputs


recurrent.takes_mask = bidirectional.takes_mask = True


def output_masks(layer, mask, count):
    """The masks of a recurrent layer's outputs: the input's on its sequences (two of them for
    Bidirectional(merge_mode=None)), none on the states."""
    sequences = 0
    if layer.return_sequences:
        sequences = 2 if type(layer).__name__ == "Bidirectional" and layer.merge_mode is None \
            else 1
    return [mask] * sequences + [None] * (count - sequences)


CONVERTERS = {"SimpleRNN": recurrent, "LSTM": recurrent, "GRU": recurrent,
              "Bidirectional": bidirectional}
