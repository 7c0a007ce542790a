"""RNN cells: one time step of a recurrence, run over a sequence by ``layers.RNN``.

A cell is a Layer with ``state_size`` (an int, or a list: one entry per state), ``output_size``
and ``call(inputs, states, training=False) -> (output, new_states)`` on one step (batch,
features). SimpleRNNCell, LSTMCell and GRUCell hold the weights of the fused SimpleRNN, LSTM and
GRU layers in the same layout (Keras's); StackedRNNCells chains cells into one.
"""

import numpy as np

from .. import arguments, ops, utils
from ..ops import activation as activations
from ..tensor import Tensor
from .base import Layer, format_shape
from .core import activation_name
from .recurrence import (
    cell_options_config,
    check_features,
    forget_bias_initializer,
    gru_step,
    lstm_step,
    set_cell_options,
)


def states_of(states):
    """The states as a list: a single tensor becomes [tensor] (Keras's rule)."""
    return list(states) if isinstance(states, (list, tuple)) else [states]


def check_cell(cell, name, where):
    """cell, if it can step a recurrence: a ``call`` and a ``state_size`` (Keras's checks)."""
    for attribute, what in (("call", "a call(inputs, states) method"),
                            ("state_size", "a state_size attribute (an int, or a list of "
                                           + "them, one per state)")):
        if not hasattr(cell, attribute):
            raise arguments.fail(where, f"{name} must be an RNN cell with {what}, got "
                                 f"{cell!r:.80}.", arguments.ArgumentTypeError)
    return cell


class _Cell(Layer):
    """Shared by SimpleRNNCell, LSTMCell and GRUCell: options, weights and dropout masks.

    Dropout follows our fused layers: one input mask and one mask on h_{t-1} per sequence,
    drawn at the first step of a call of ``RNN`` and kept over its steps.
    """

    gates = 1  # blocks of `units` columns in the kernels

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        set_cell_options(self, units, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, dropout, recurrent_dropout)
        self.activation = arguments.lookup(activations.get, activation, "activation", self)
        if seed is not None:
            seed = arguments.non_negative_int(seed, "seed", self)
        self.seed = seed
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.state_size = self.units
        self.output_size = self.units
        self.reset_dropout_mask()

    # ----- shapes and weights ------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise self._error(f"expected one step of shape (batch, features), got "
                              f"{format_shape(input_shape)}.")
        check_features(self, input_shape)
        return (input_shape[0], self.units)

    def bias_shape(self):
        return (self.gates * self.units,)

    def bias_initial_values(self):
        return self.bias_initializer

    def build(self, input_shape):
        d, width = input_shape[-1], self.gates * self.units
        self.kernel = self.add_weight("kernel", (d, width), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, width),
                                                self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", self.bias_shape(), self.bias_initial_values(),
                                        regularizer=self.bias_regularizer)

    def get_initial_state(self, batch_size=None):
        return [Tensor(np.zeros((batch_size, self.units), self.dtype))
                for _ in states_of(self.state_size)]

    def _states_or_zeros(self, inputs, states):
        """states, or zeros when a cell is called on its own without them (as torch's cells)."""
        if states is None:
            return self.get_initial_state(inputs.shape[0])
        expected = len(states_of(self.state_size))
        if len(states_of(states)) != expected:
            raise self._error(f"expected {expected} state tensor(s), got "
                              f"{len(states_of(states))}.")
        return states

    # ----- dropout -----------------------------------------------------------------------
    def _mask(self, shape, rate):
        keep = 1.0 - rate
        rng = self._rng if self._rng is not None else utils.get_rng()
        return ((rng.random(shape) < keep) / keep).astype(self.dtype)

    def get_dropout_mask(self, step_input):
        """The input mask of this sequence (None without dropout), drawn once per RNN call."""
        if self._dropout_mask is None and self.dropout:
            self._dropout_mask = self._mask(step_input.shape, self.dropout)
        return self._dropout_mask

    def get_recurrent_dropout_mask(self, h):
        if self._recurrent_dropout_mask is None and self.recurrent_dropout:
            self._recurrent_dropout_mask = self._mask(h.shape, self.recurrent_dropout)
        return self._recurrent_dropout_mask

    def reset_dropout_mask(self):
        self._dropout_mask = self._recurrent_dropout_mask = None

    def _dropped(self, inputs, h, training):
        """(x_t, h_{t-1}) with this sequence's dropout masks applied when training."""
        if training and self.dropout:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout:
            h = h * self.get_recurrent_dropout_mask(h)
        return inputs, h

    def get_config(self):
        return {
            **super().get_config(), "activation": activation_name(self.activation),
            **cell_options_config(self), "seed": self.seed,
        }


class SimpleRNNCell(_Cell):
    """One step of SimpleRNN: h_t = activation(x_t W + h_{t-1} U + b).

    Args: units, activation ('tanh'), use_bias, initializers, regularizers, dropout,
    recurrent_dropout, seed. Params: (input_dim + units + 1) * units.
    """

    def call(self, inputs, states=None, training=False):
        states = self._states_or_zeros(inputs, states)
        x, h = self._dropped(inputs, states_of(states)[0], training)
        h = self.activation(ops.dense(x, self.kernel, self.bias)
                            + ops.matmul(h, self.recurrent_kernel))
        return h, [h]


class LSTMCell(_Cell):
    """One step of LSTM, gate blocks i, f, c, o: z = x_t W + h_{t-1} U + b,
    c_t = f*c_{t-1} + i*activation(z_c), h_t = o*activation(c_t), gates recurrent_activation(z).

    Args: units, activation ('tanh'), recurrent_activation ('sigmoid'), unit_forget_bias (the
    forget block of the bias starts at 1), ... as SimpleRNNCell. States [h, c].
    Params: 4 * (input_dim + units + 1) * units.
    """

    gates = 4

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 unit_forget_bias=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = arguments.lookup(
            activations.get, recurrent_activation, "recurrent_activation", self)
        self.unit_forget_bias = arguments.boolean(unit_forget_bias, "unit_forget_bias", self)
        self.state_size = [self.units, self.units]

    def bias_initial_values(self):
        return forget_bias_initializer(self.bias_initializer, self.units, self.unit_forget_bias)

    def call(self, inputs, states=None, training=False):
        states = self._states_or_zeros(inputs, states)
        h, c = states_of(states)
        x, h_dropped = self._dropped(inputs, h, training)
        z = ops.dense(x, self.kernel, self.bias) + ops.matmul(h_dropped, self.recurrent_kernel)
        h, c = lstm_step(z, c, self.units, self.recurrent_activation, self.activation)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activation_name(self.recurrent_activation),
                "unit_forget_bias": self.unit_forget_bias}


class GRUCell(_Cell):
    """One step of GRU, gate blocks z (update), r (reset), h (candidate):
    h_t = z*h_{t-1} + (1 - z)*activation(x W_h + b_h + r*(h_{t-1} U_h + b'_h)) (reset_after),
    or activation(x W_h + (r*h_{t-1}) U_h + b_h) with reset_after=False.

    Args: units, recurrent_activation ('sigmoid'), reset_after (True: bias (2, 3u), input row
    then recurrent row), ... as SimpleRNNCell. Params: 3 * (d + u + 2) * u (reset_after).
    """

    gates = 3

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 reset_after=True, **kwargs):
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = arguments.lookup(
            activations.get, recurrent_activation, "recurrent_activation", self)
        self.reset_after = arguments.boolean(reset_after, "reset_after", self)

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states=None, training=False):
        states = self._states_or_zeros(inputs, states)
        h = states_of(states)[0]
        x, h_dropped = self._dropped(inputs, h, training)
        bias, recurrent_bias = self.bias, None
        if self.bias is not None and self.reset_after:
            bias, recurrent_bias = self.bias[0], self.bias[1]
        h = gru_step(ops.dense(x, self.kernel, bias), h, h_dropped, self.recurrent_kernel,
                     recurrent_bias, self.units, self.recurrent_activation, self.activation,
                     self.reset_after)
        return h, [h]

    def get_config(self):
        return {**super().get_config(),
                "recurrent_activation": activation_name(self.recurrent_activation),
                "reset_after": self.reset_after}


def cell_output_size(cell):
    """The size of a cell's output: output_size, else the first state's size (Keras's rule)."""
    size = getattr(cell, "output_size", None)
    if size is None:
        size = states_of(cell.state_size)[0]
    while isinstance(size, (list, tuple)):  # a cell whose first state is itself nested
        size = size[0]
    return size


class StackedRNNCells(Layer):
    """Chains cells into one: step t of cell k takes cell k-1's output; the output is the last
    cell's. States: one entry per cell, each as that cell's state_size.

    Args: cells (a list of cells). Params: the sum of the cells'.
    """

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise arguments.fail(self, f"cells must be a non-empty list of RNN cells, got "
                                 f"{cells!r:.80}.", arguments.ArgumentTypeError)
        from ..saving.registry import deserialize_layer

        cells = [deserialize_layer(c) if isinstance(c, dict) else c for c in cells]
        self.cells = [check_cell(c, f"cells[{i}]", self) for i, c in enumerate(cells)]

    @property
    def state_size(self):
        return [cell.state_size for cell in self.cells]

    @property
    def output_size(self):
        return cell_output_size(self.cells[-1])

    def get_initial_state(self, batch_size=None):
        from .rnn import initial_states_of

        return [initial_states_of(cell, batch_size, self.dtype) for cell in self.cells]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def build(self, input_shape):
        from .rnn import build_cell

        for cell in self.cells:
            build_cell(cell, input_shape, self.name)
            input_shape = (input_shape[0], cell_output_size(cell))

    def call(self, inputs, states=None, training=False):
        from .rnn import call_cell

        if states is None:  # called on its own: every cell starts from its initial states
            states = self.get_initial_state(inputs.shape[0])
        new_states = []
        for cell, cell_states in zip(self.cells, states_of(states)):
            nested = isinstance(cell_states, (list, tuple))
            inputs, cell_states = call_cell(cell, inputs, states_of(cell_states), training)
            cell_states = states_of(cell_states)
            new_states.append(cell_states if nested or len(cell_states) > 1 else cell_states[0])
        return inputs, new_states

    # ----- the cells' weights ------------------------------------------------------------
    def _all(self, attribute):
        return [w for cell in self.cells if isinstance(cell, Layer)
                for w in getattr(cell, attribute)]

    weights = property(lambda self: self._all("weights"))
    trainable_weights = property(
        lambda self: self._all("trainable_weights") if self.trainable else [])
    non_trainable_weights = property(
        lambda self: self._all("non_trainable_weights") if self.trainable else self.weights)

    def regularization_losses(self):
        return [p for cell in self.cells if isinstance(cell, Layer)
                for p in cell.regularization_losses()]

    def get_config(self):
        from ..saving.registry import serialize_layer

        return {**super().get_config(), "cells": [serialize_layer(c) for c in self.cells]}
