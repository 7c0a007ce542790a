"""Recurrent layers over (batch, time, features): SimpleRNN, LSTM, GRU (Keras semantics).

One cell is shared over time; each layer runs a fused op from ``shenjing.ops.recurrent`` (input
projection for all steps in one product, one recurrent product per step, hand-written
backward-through-time). With ``recurrent_dropout`` the step loop is written with plain ops,
because the dropout mask on h_{t-1} sits inside the recurrence.
"""

import numpy as np

from .. import arguments, ops, utils
from ..ops import activation as activations
from ..ops import recurrent as recurrent_ops
from ..tensor import Tensor
from .base import Layer, SymbolicTensor, format_shape
from .recurrence import (
    cell_options_config,
    check_features,
    forget_bias_initializer,
    gru_step,
    lstm_step,
    sequence_options_config,
    set_cell_options,
    set_sequence_options,
)


def _is_state_list(inputs) -> bool:
    """[x, *states] of arrays or symbolic tensors (tf.keras's list form of initial_state), not
    one input written as nested Python lists."""
    return isinstance(inputs, (list, tuple)) and len(inputs) > 1 and all(
        isinstance(item, (Tensor, np.ndarray, SymbolicTensor)) for item in inputs)


def check_initial_state(layer, inputs, initial_state, names, units):
    """initial_state as a list of one (batch, units) tensor per state in ``names`` (units: one
    size for all, or one per state); the error
    names the layer, the states expected and what came."""
    states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
    if len(states) != len(names):
        raise layer._error(f"expected {len(names)} initial state{'s' if len(names) > 1 else ''} "
                           f"({', '.join(names)}), got {len(states)}.")
    batch = getattr(inputs, "shape", (None,))[0]
    sizes = units if isinstance(units, (list, tuple)) else [units] * len(names)
    for name, state, size in zip(names, states, sizes):
        shape = getattr(state, "shape", None)
        if shape is None:
            shape = np.shape(state)
        shape = tuple(shape)
        other_batch = batch is not None and shape[:1] != (None,) and shape[:1] != (batch,)
        if len(shape) != 2 or shape[1] != size or other_batch:
            raise layer._error(f"initial state {name} must have shape "
                               f"{format_shape((batch, size))}, got {format_shape(shape)}.")
    return states


def _activation_name(value, name, layer):
    """A recurrent activation is kept by name, one the fused ops compute (or None: linear);
    refused here rather than at the first call."""
    value = "linear" if value is None else value
    return arguments.choice(value, recurrent_ops.ACTIVATIONS, name, layer, lower=False)


class _RNN(Layer):
    """Shared by SimpleRNN, LSTM and GRU: weights, options, states and masks."""

    single_input = True
    gates = 1  # blocks of `units` columns in the kernels
    state_names = ("h",)

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=True, **kwargs):
        super().__init__(**kwargs)
        set_cell_options(self, units, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout)
        self.activation_name = _activation_name(activation, "activation", self)
        # NOTE: the output at a masked step is zero (Keras's cuDNN path and Bidirectional);
        # False repeats the last real output there (Keras 3's generic loop default).
        set_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)
        self.keep_state_grads = False  # set by diagnostics.hidden_state_gradients
        self.last_op = None

    # ----- shapes and weights ------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if len(input_shape) != 3:
            raise self._error(f"expected input of rank 3 (batch, time, features), got shape "
                              f"{format_shape(input_shape)}.")
        check_features(self, input_shape)
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output] + [(batch, self.units)] * len(self.state_names)
        return output

    def bias_shape(self):
        return (self.gates * self.units,)

    def build(self, input_shape):
        d, u = input_shape[-1], self.units
        self.kernel = self.add_weight("kernel", (d, self.gates * u), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (u, self.gates * u), self.recurrent_initializer,
            regularizer=self.recurrent_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", self.bias_shape(), self.make_bias_initializer(),
                                        regularizer=self.bias_regularizer)

    def make_bias_initializer(self):
        return self.bias_initializer

    # ----- states ------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Forget (or set) the states a stateful layer carries from one batch to the next."""
        if not self.stateful:
            raise self._error("reset_states() needs stateful=True.")
        self.states = None if states is None else [np.asarray(s, self.dtype) for s in states]

    def _initial_states(self, batch, initial_state):
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
            if len(states) != len(self.state_names):
                raise self._error(f"expected {len(self.state_names)} initial states "
                                  f"({', '.join(self.state_names)}), got {len(states)}.")
            return [self._to_tensor(s) for s in states]
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise self._error(
                    f"stateful layer holds states for batch size {self.states[0].shape[0]}, got "
                    f"a batch of {batch}; use the same batch size every call (and a number of "
                    "samples divisible by it), or call reset_states()."
                )
            return [Tensor(s) for s in self.states]
        return [None] * len(self.state_names)

    # ----- calling -----------------------------------------------------------------------
    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        """Also takes ``layer([x, *states])`` for ``layer(x, initial_state=states)`` (tf.keras's
        form; Keras 3 refuses it). Symbolic states make the call a node of the model graph."""
        if _is_state_list(inputs):
            if initial_state is not None:
                raise self._error("initial states were given twice: in the input list [x, "
                                  "*states] and as initial_state=.")
            inputs, initial_state = inputs[0], list(inputs[1:])
        if initial_state is not None:
            names = self.state_names
            initial_state = check_initial_state(self, inputs, initial_state, names, self.units)
            kwargs["initial_state"] = initial_state
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, initial_state=None, mask=None, training=False):
        states = self._initial_states(inputs.shape[0], initial_state)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
        x = inputs
        if training and self.dropout:
            keep = 1.0 - self.dropout  # one mask per sequence, shared over time (Keras)
            noise = utils.get_rng().random((x.shape[0], 1, x.shape[2])) < keep
            x = x * (noise / keep).astype(self.dtype)
        if training and self.recurrent_dropout:
            results = self._unrolled(x, states, mask)
        else:
            results = self._fused(x, states, mask)
        sequence, final_states = results[0], list(results[1:])
        if self.stateful:
            self.states = [s.data.copy() for s in final_states]
        output = sequence if self.return_sequences else final_states[0]
        return [output, *final_states] if self.return_state else output

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask] + [None] * len(self.state_names) if self.return_state else output_mask

    def _fused(self, x, states, mask):
        raise NotImplementedError

    def _recurrent_mask(self, batch):
        keep = 1.0 - self.recurrent_dropout
        noise = utils.get_rng().random((batch, self.units)) < keep
        return (noise / keep).astype(self.dtype)

    def _unrolled(self, x, states, mask):
        """The step loop from plain ops: h_{t-1} is multiplied by a fixed dropout mask."""
        batch, steps = x.shape[0], x.shape[1]
        states = [Tensor(np.zeros((batch, self.units), self.dtype)) if s is None else s
                  for s in states]
        drop = self._recurrent_mask(batch)
        projected = ops.dense(x, self.kernel, self._input_bias())
        order = range(steps - 1, -1, -1) if self.go_backwards else range(steps)
        outputs = []
        for t in order:
            new_states = self.cell(projected[:, t], states, drop)
            if mask is not None:
                keep = mask[:, t:t + 1]
                new_states = [ops.where(keep, n, s) for n, s in zip(new_states, states)]
                carried = np.zeros((), self.dtype) if self.zero_output_for_mask else states[0]
                outputs.append(ops.where(keep, new_states[0], carried))
            else:
                outputs.append(new_states[0])
            states = new_states
        return (ops.stack(outputs, axis=1), *states)

    def _input_bias(self):
        return self.bias

    def get_config(self):
        return {
            **super().get_config(), "activation": self.activation_name,
            **cell_options_config(self), **sequence_options_config(self),
        }


class SimpleRNN(_RNN):
    """Fully connected RNN: h_t = tanh(x_t W + h_{t-1} U + b).

    Args: units (size of h_t), activation, return_sequences, return_state, go_backwards,
    stateful, dropout, recurrent_dropout. Params: (units + input_dim + 1) * units.
    """

    def _fused(self, x, states, mask):
        op_output = recurrent_ops.simple_rnn(
            x, self.kernel, self.recurrent_kernel, self.bias, initial_state=states[0],
            mask=mask, go_backwards=self.go_backwards, activation=self.activation_name,
            zero_output_for_mask=self.zero_output_for_mask, keep_state_grads=self.keep_state_grads)
        self.last_op = op_output[0]._op
        return op_output

    def cell(self, projected, states, drop):
        act = activations.get(self.activation_name) or (lambda v: v)
        return [act(projected + ops.matmul(states[0] * drop, self.recurrent_kernel))]


class LSTM(_RNN):
    """Long short-term memory over (batch, time, features); gate blocks i, f, c, o.

    c_t = f*c_{t-1} + i*c~, h_t = o*tanh(c_t); gates use recurrent_activation (sigmoid).
    Args: units, return_sequences (output (N, T, units) instead of (N, units)), return_state
    ([output, h, c]), unit_forget_bias (forget-gate bias starts at 1).
    Params: 4 * (units + input_dim + 1) * units.
    """

    gates, state_names = 4, ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation_name = _activation_name(recurrent_activation,
                                                          "recurrent_activation", self)
        self.unit_forget_bias = arguments.boolean(unit_forget_bias, "unit_forget_bias", self)

    def make_bias_initializer(self):
        return forget_bias_initializer(self.bias_initializer, self.units, self.unit_forget_bias)

    def _fused(self, x, states, mask):
        op_output = recurrent_ops.lstm(
            x, self.kernel, self.recurrent_kernel, self.bias, initial_h=states[0],
            initial_c=states[1], mask=mask, go_backwards=self.go_backwards,
            activation=self.activation_name,
            recurrent_activation=self.recurrent_activation_name,
            zero_output_for_mask=self.zero_output_for_mask, keep_state_grads=self.keep_state_grads)
        self.last_op = op_output[0]._op
        return op_output

    def cell(self, projected, states, drop):
        h, c = states
        gate = activations.get(self.recurrent_activation_name)
        act = activations.get(self.activation_name) or (lambda v: v)
        z = projected + ops.matmul(h * drop, self.recurrent_kernel)
        return list(lstm_step(z, c, self.units, gate, act))

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation_name,
                "unit_forget_bias": self.unit_forget_bias}


class GRU(_RNN):
    """Gated recurrent unit; gate blocks z (update), r (reset), h (candidate).

    h_t = z*h_{t-1} + (1 - z)*h~. reset_after=True (default, cuDNN/PyTorch style): bias
    (2, 3u), h~ = tanh(x W_h + b_i + r*(h U_h + b_r)); reset_after=False: bias (3u,),
    h~ = tanh(x W_h + (r*h) U_h + b). Params: 3 * (u*(u + d) + 2u), or 3 * (u*(u + d) + u).
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation_name = _activation_name(recurrent_activation,
                                                          "recurrent_activation", self)
        self.reset_after = arguments.boolean(reset_after, "reset_after", self)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _fused(self, x, states, mask):
        op_output = recurrent_ops.gru(
            x, self.kernel, self.recurrent_kernel, self.bias, initial_state=states[0],
            mask=mask, go_backwards=self.go_backwards, reset_after=self.reset_after,
            activation=self.activation_name,
            recurrent_activation=self.recurrent_activation_name,
            zero_output_for_mask=self.zero_output_for_mask, keep_state_grads=self.keep_state_grads)
        self.last_op = op_output[0]._op
        return op_output

    def _input_bias(self):
        if self.bias is None or not self.reset_after:
            return self.bias
        return self.bias[0]

    def cell(self, projected, states, drop):
        (h,) = states
        gate = activations.get(self.recurrent_activation_name)
        act = activations.get(self.activation_name) or (lambda v: v)
        recurrent_bias = self.bias[1] if self.bias is not None and self.reset_after else None
        return [gru_step(projected, h, h * drop, self.recurrent_kernel, recurrent_bias,
                         self.units, gate, act, self.reset_after)]

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation_name,
                "reset_after": self.reset_after}
