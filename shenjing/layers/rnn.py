"""RNN: runs a cell (one time step) over the time axis of (batch, time, ...) sequences.

The loop over time calls the cell with our differentiable ops, so any cell trains without a
hand-written backward. RNN(SimpleRNNCell/LSTMCell/GRUCell) with activations the fused ops know
runs the fused op of ``ops.recurrent`` instead (the same numbers, one op for the sequence),
unless recurrent dropout is active. Masks follow Keras 3: at a masked step the states are
carried over and the output repeats the last real one (zeros before it), or is zero with
zero_output_for_mask=True.
"""

import numpy as np

from .. import arguments, ops
from ..ops import activation as activations
from ..ops import recurrent as recurrent_ops
from ..tensor import Tensor
from .base import Layer, _is_symbolic, format_shape
from .core import activation_name
from .recurrence import sequence_options_config, set_sequence_options
from .rnn_cells import (
    GRUCell,
    LSTMCell,
    SimpleRNNCell,
    StackedRNNCells,
    cell_output_size,
    check_cell,
    states_of,
)


def flatten(structure) -> list:
    """The leaves (tensors or sizes) of nested lists, depth first."""
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def pack_like(structure, flat):
    """flat's leaves put back into structure's nesting (lists)."""
    leaves = iter(flat)

    def pack(item):
        if isinstance(item, (list, tuple)):
            return [pack(x) for x in item]
        return next(leaves)

    return pack(structure)


def _zeros(size, batch, dtype):
    if isinstance(size, (list, tuple)):
        return [_zeros(s, batch, dtype) for s in size]
    return Tensor(np.zeros((batch, size), dtype))


def initial_states_of(cell, batch, dtype):
    """The cell's get_initial_state(batch_size) if it has one, else zeros (batch, size) for each
    entry of state_size (nested entries nest); always a list."""
    get_initial_state = getattr(cell, "get_initial_state", None)
    if get_initial_state is not None:
        return states_of(get_initial_state(batch_size=batch))
    return [_zeros(size, batch, dtype) for size in states_of(cell.state_size)]


def build_cell(cell, step_shape, scope):
    """Build a Layer cell for one step's shape, its weights named '<scope>/<cell>/<weight>' so
    that two RNNs (and a Bidirectional pair) holding cells of one name save apart."""
    if not isinstance(cell, Layer) or cell.built:
        return
    name, cell.name = cell.name, f"{scope}/{cell.name}"
    try:
        if cell._derives_output_shape():  # a user cell: its call needs states, so build only
            cell.build(step_shape)
            cell.built, cell.input_shape = True, step_shape
        else:
            cell.build_for(step_shape)
    finally:
        cell.name = name


def call_cell(cell, inputs, states, training):
    """(output, states as a list) of one step of cell."""
    if isinstance(cell, Layer):
        output, new_states = cell(inputs, states, training=training)
    else:
        output, new_states = cell.call(inputs, states)
    return output, states_of(new_states)


def _reset_dropout(cell):
    if hasattr(cell, "reset_dropout_mask"):
        cell.reset_dropout_mask()
    for inner in getattr(cell, "cells", ()):
        _reset_dropout(inner)


def _check_state_size(size, where):
    if isinstance(size, (list, tuple)) and size:
        for entry in size:
            _check_state_size(entry, where)
    elif not arguments.is_int(size) or size <= 0:
        raise arguments.fail(where, f"the cell's state_size must be a positive int or a list of "
                             f"them (one per state), got {size!r}.")


class RNN(Layer):
    """Runs ``cell`` over time: (N, T, F) -> (N, units), or (N, T, units) with return_sequences.

    Args: cell (a cell, or a list of cells, stacked with StackedRNNCells), return_sequences,
    return_state ([output, *final states]), go_backwards (read time reversed; outputs in that
    order), stateful (final states start the next batch), unroll (accepted; the loop is always
    a Python loop), zero_output_for_mask. Call: initial_state=, mask=, training=.
    Params: the cell's.
    """

    single_input = True
    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        from ..saving.registry import deserialize_layer

        if isinstance(cell, dict):  # from_config
            cell = deserialize_layer(cell)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        self.cell = check_cell(cell, "cell", self)
        _check_state_size(cell.state_size, self)
        set_sequence_options(self, return_sequences, return_state, go_backwards, stateful, unroll,
                             zero_output_for_mask)  # states: flat ndarrays when stateful

    @property
    def state_size(self):
        return states_of(self.cell.state_size)

    @property
    def state_names(self):
        """One name per final state returned with return_state (nested states flattened),
        as the fused layers' ("h", "c"); Bidirectional counts them."""
        return tuple(f"state_{i}" for i in range(len(flatten(self.cell.state_size))))

    # ----- shapes and weights ------------------------------------------------------------
    def _state_shapes(self, batch, size):
        if isinstance(size, (list, tuple)):
            return [self._state_shapes(batch, s) for s in size]
        return (batch, size)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 3:
            raise self._error(f"expected input of rank 3 or more (batch, time, features), got "
                              f"shape {format_shape(input_shape)}.")
        if isinstance(self.cell, Layer) and not self.cell._derives_output_shape():
            # the cell's own checks of one step's shape (a user cell may have none: its call
            # takes states, so it cannot be run on zeros for a shape)
            self.cell.compute_output_shape((input_shape[0], *input_shape[2:]))
        batch, steps = input_shape[0], input_shape[1]
        size = cell_output_size(self.cell)
        output = (batch, steps, size) if self.return_sequences else (batch, size)
        if self.return_state:
            return [output] + [self._state_shapes(batch, s) for s in self.state_size]
        return output

    def build(self, input_shape):
        build_cell(self.cell, (input_shape[0], *input_shape[2:]), self.name)

    def _cell_weights(self, attribute):
        return list(getattr(self.cell, attribute)) if isinstance(self.cell, Layer) else []

    weights = property(lambda self: self._cell_weights("weights"))
    trainable_weights = property(
        lambda self: self._cell_weights("trainable_weights") if self.trainable else [])
    non_trainable_weights = property(
        lambda self: self._cell_weights("non_trainable_weights") if self.trainable
        else self.weights)

    def regularization_losses(self):
        return self.cell.regularization_losses() if isinstance(self.cell, Layer) else []

    # ----- states ------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Forget (or set, as a flat list of arrays) the states a stateful RNN carries."""
        if not self.stateful:
            raise self._error("reset_states() needs stateful=True.")
        self.states = None if states is None else [np.asarray(s, self.dtype)
                                                    for s in flatten(states)]

    reset_state = reset_states  # Keras 3's name

    def _initial_states(self, batch, initial_state):
        template = initial_states_of(self.cell, batch, self.dtype)
        expected = flatten(template)
        if initial_state is None and self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise self._error(
                    f"stateful layer holds states for batch size {self.states[0].shape[0]}, got "
                    f"a batch of {batch}; use the same batch size every call, or call "
                    "reset_states().")
            initial_state = self.states
        if initial_state is None:
            return template
        given = flatten(initial_state)
        if len(given) != len(expected):
            raise self._error(f"expected {len(expected)} initial state tensors of shapes "
                              f"{[tuple(s.shape) for s in expected]}, got {len(given)}.")
        states = [self._to_tensor(s) for s in given]
        for state, want in zip(states, expected):
            if tuple(state.shape) != tuple(want.shape):
                raise self._error(f"initial state of shape {tuple(state.shape)} where the cell "
                                  f"expects {tuple(want.shape)}.")
        return pack_like(template, states)

    # ----- calling -----------------------------------------------------------------------
    def __call__(self, inputs, *args, **kwargs):
        if self.return_state and _is_symbolic(inputs) and any(
                isinstance(s, (list, tuple)) for s in self.state_size):
            raise self._error("return_state with nested states (stacked cells) gives nested "
                              "outputs, which a functional graph does not carry; call the layer "
                              "on arrays, or take the states from each cell's own RNN.")
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, initial_state=None, mask=None, training=False):
        batch, steps = inputs.shape[0], inputs.shape[1]
        states = self._initial_states(batch, initial_state)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (batch, steps):
                raise self._error(f"expected a mask of shape {(batch, steps)}, got "
                                  f"{mask.shape}.")
        _reset_dropout(self.cell)
        try:
            fused = self._fused(inputs, states, mask, training)
            sequence, output, states = fused or self._loop(inputs, states, mask, training)
        finally:
            _reset_dropout(self.cell)
        if self.stateful:
            self.states = [s.data.copy() for s in flatten(states)]
        output = sequence if self.return_sequences else output
        return [output, *states] if self.return_state else output

    def _loop(self, inputs, states, mask, training):
        """The time loop: one call of the cell per step, masked steps carried over."""
        order = range(inputs.shape[1] - 1, -1, -1) if self.go_backwards else range(inputs.shape[1])
        outputs, output = [], None
        for t in order:
            out, new_states = call_cell(self.cell, inputs[:, t], states, training)
            flat_new, flat_old = flatten(new_states), flatten(states)
            if len(flat_new) != len(flat_old):
                raise self._error(f"the cell returned {len(flat_new)} state tensors, it was "
                                  f"given {len(flat_old)}.")
            if mask is not None:
                keep = mask[:, t]
                flat_new = [ops.where(_expand(keep, n), n, s) for n, s in zip(flat_new, flat_old)]
                zero = output is None or self.zero_output_for_mask
                previous = np.zeros((), out.dtype) if zero else output
                out = ops.where(_expand(keep, out), out, previous)
            states, output = pack_like(states, flat_new), out
            if self.return_sequences:
                outputs.append(out)
        sequence = ops.stack(outputs, axis=1) if self.return_sequences else None
        return sequence, output, states

    def _fused(self, x, states, mask, training):
        """(sequence, last output, states) from ops.recurrent's fused op, or None when the cell
        is not one of ours with activations it computes, or recurrent dropout is on."""
        cell = self.cell
        if type(cell) not in (SimpleRNNCell, LSTMCell, GRUCell):
            return None
        functions = [cell.activation] + ([] if type(cell) is SimpleRNNCell
                                         else [cell.recurrent_activation])
        names = [activation_name(f) for f in functions]
        if any(n not in recurrent_ops.ACTIVATIONS or activations.get(n) is not f
               for n, f in zip(names, functions)):
            return None
        if training and cell.recurrent_dropout:
            return None
        if training and cell.dropout:  # one mask per sequence, as the cell's own step
            x = x * cell.get_dropout_mask(x[:, 0])[:, None, :]
        common = {"mask": mask, "go_backwards": self.go_backwards, "activation": names[0],
                  "zero_output_for_mask": self.zero_output_for_mask}
        if type(cell) is LSTMCell:
            results = recurrent_ops.lstm(x, cell.kernel, cell.recurrent_kernel, cell.bias,
                                         initial_h=states[0], initial_c=states[1],
                                         recurrent_activation=names[1], **common)
        elif type(cell) is GRUCell:
            results = recurrent_ops.gru(x, cell.kernel, cell.recurrent_kernel, cell.bias,
                                        initial_state=states[0], reset_after=cell.reset_after,
                                        recurrent_activation=names[1], **common)
        else:
            results = recurrent_ops.simple_rnn(x, cell.kernel, cell.recurrent_kernel, cell.bias,
                                               initial_state=states[0], **common)
        sequence = results[0]
        return sequence, sequence[:, -1], list(results[1:])

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        return [output_mask] + [None] * len(self.state_size) if self.return_state else output_mask

    def get_config(self):
        from ..saving.registry import serialize_layer

        return {**super().get_config(), "cell": serialize_layer(self.cell),
                **sequence_options_config(self)}


def _expand(keep, like):
    """keep (N,) as (N, 1, ...) to broadcast over a step's tensor like (N, ...)."""
    return keep.reshape((-1,) + (1,) * (len(like.shape) - 1))
