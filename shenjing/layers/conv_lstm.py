"""ConvLSTM2D: an LSTM over sequences of images whose gates are convolutions.

The notes' two halves in one layer: the input side is a convolution with the layer's padding,
strides and dilation, the recurrent side a 'same' convolution of h_{t-1}, both to the four gate
blocks i, f, c, o of 4*filters channels (Keras's weight layout). It is the generic RNN layer
running a private cell; each step is two ``ops.conv2d`` calls over the whole batch.
"""

import numpy as np

from .. import arguments, initializers, ops, regularizers
from ..ops import activation as activations
from ..ops.conv import conv_output_length
from ..tensor import Tensor
from .base import format_shape, unique_name
from .conv import check_window_sizes
from .core import activation_name
from .recurrence import forget_bias_initializer, lstm_step
from .rnn import RNN, flatten
from .rnn_cells import _Cell, states_of


class ConvLSTM2DCell(_Cell):
    """One step on (N, H, W, C) channels-last: z = conv(x_t, kernel) + conv_same(h_{t-1},
    recurrent_kernel) + bias; c_t = f*c_{t-1} + i*act(z_c), h_t = o*act(c_t); h, c (N, OH, OW, f).
    ConvLSTM2D's own cell (not exported): it bears the layer's name, so the weights are
    '<layer>/kernel' as a plain layer's.
    """

    gates = 4

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1,
                 activation="tanh", recurrent_activation="sigmoid", unit_forget_bias=True,
                 **kwargs):
        arguments.positive_int(filters, "filters", f"ConvLSTM2D '{kwargs.get('name')}'")
        super().__init__(filters, activation=activation, **kwargs)
        self.filters = self.units
        self.kernel_size = arguments.int_tuple(kernel_size, 2, "kernel_size", self)
        self.strides = arguments.int_tuple(strides, 2, "strides", self)
        self.dilation_rate = arguments.int_tuple(dilation_rate, 2, "dilation_rate", self)
        self.padding = arguments.choice(padding, ("valid", "same"), "padding", self)
        self.recurrent_activation = arguments.lookup(
            activations.get, recurrent_activation, "recurrent_activation", self)
        self.unit_forget_bias = arguments.boolean(unit_forget_bias, "unit_forget_bias", self)
        self.state_size = [self.filters, self.filters]
        self.output_size = self.filters
        self.state_shape = None  # (OH, OW, filters), known once built

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self._error(f"expected one step of shape (batch, rows, cols, channels), got "
                              f"{format_shape(input_shape)}.")
        batch, spatial, channels = input_shape[0], input_shape[1:3], input_shape[3]
        if None in spatial or channels is None:
            raise self._error(f"the rows, cols and channels of each step must be known, got "
                              f"{format_shape(input_shape)}.")
        if self.built and channels != self.kernel.shape[2]:
            raise self._error(f"expected {self.kernel.shape[2]} input channels (as built), got "
                              f"{channels} (input shape {format_shape(input_shape)}).")
        arguments.check_elements(int(np.prod(self.kernel_size)) * max(channels, self.filters)
                                 * 4 * self.filters, "the kernel", self,
                                 f"kernel_size {self.kernel_size} and filters {self.filters}")
        check_window_sizes(self, input_shape, spatial, channels, self.kernel_size, self.strides,
                           self.dilation_rate, self.padding, f"kernel_size {self.kernel_size}")
        sizes = tuple(conv_output_length(n, k, s, self.padding, d) for n, k, s, d in zip(
            spatial, self.kernel_size, self.strides, self.dilation_rate))
        if min(sizes) < 1:
            raise self._error(f"input shape {format_shape(input_shape)} is too small for "
                              f"kernel_size {self.kernel_size} with strides {self.strides}, "
                              f"dilation {self.dilation_rate} and padding {self.padding!r}.")
        return (batch, *sizes, self.filters)

    def build(self, input_shape):
        channels, width = input_shape[-1], 4 * self.filters
        self.state_shape = self.compute_output_shape(input_shape)[1:]
        self.kernel = self.add_weight("kernel", (*self.kernel_size, channels, width),
                                      self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.recurrent_kernel = self.add_weight(
            "recurrent_kernel", (*self.kernel_size, self.filters, width),
            self.recurrent_initializer, regularizer=self.recurrent_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                "bias", (width,), forget_bias_initializer(self.bias_initializer, self.filters,
                                                          self.unit_forget_bias),
                regularizer=self.bias_regularizer)

    def get_initial_state(self, batch_size=None):
        return [Tensor(np.zeros((batch_size, *self.state_shape), self.dtype)) for _ in "hc"]

    def call(self, inputs, states=None, training=False):
        h, c = states_of(self._states_or_zeros(inputs, states))
        x, h_dropped = self._dropped(inputs, h, training)
        z = (ops.conv2d(x, self.kernel, self.bias, strides=self.strides, padding=self.padding,
                        dilation_rate=self.dilation_rate)
             + ops.conv2d(h_dropped, self.recurrent_kernel, padding="same"))
        h, c = lstm_step(z, c, self.filters, self.recurrent_activation, self.activation)
        return h, [h, c]


class ConvLSTM2D(RNN):
    """Convolutional LSTM over (batch, time, rows, cols, channels); gate blocks i, f, c, o.

    Args as Conv2D (filters, kernel_size, strides, padding 'valid' or 'same', data_format,
    dilation_rate) and LSTM (activation, recurrent_activation, unit_forget_bias, dropout,
    recurrent_dropout, return_sequences, return_state, go_backwards, stateful). Weights: kernel
    (kh, kw, C, 4f), recurrent_kernel (kh, kw, f, 4f), bias (4f).
    Params: 4 * f * (kh*kw*(C + f) + 1).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 unit_forget_bias=True, kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, **kwargs):
        name = kwargs.pop("name", None)
        name = unique_name("conv_lstm2d") if name is None else name
        cell = ConvLSTM2DCell(
            filters, kernel_size, strides=strides, padding=padding,
            dilation_rate=dilation_rate, activation=activation,
            recurrent_activation=recurrent_activation, use_bias=use_bias,
            kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer, unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer, dropout=dropout,
            recurrent_dropout=recurrent_dropout, seed=seed, dtype=kwargs.get("dtype"),
            name=name if isinstance(name, str) else None)
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, name=name, **kwargs)
        self.data_format = arguments.data_format(data_format, self)
        self.filters = cell.filters

    def _step_shape(self, input_shape):
        """One step's shape channels-last: (batch, rows, cols, channels)."""
        if self.data_format == "channels_first":
            return (input_shape[0], *input_shape[3:], input_shape[2])
        return (input_shape[0], *input_shape[2:])

    def _to_format(self, shape):
        """A channels-last (batch, ..., rows, cols, f) shape in the layer's data format."""
        if self.data_format == "channels_first":
            return (*shape[:-3], shape[-1], *shape[-3:-1])
        return tuple(shape)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 5:
            kind = ("(batch, time, channels, rows, cols)" if self.data_format == "channels_first"
                    else "(batch, time, rows, cols, channels)")
            raise self._error(f"expected input of rank 5 {kind}, got shape "
                              f"{format_shape(input_shape)}.")
        step = self.cell.compute_output_shape(self._step_shape(input_shape))
        state = self._to_format(step)
        output = (*state[:1], input_shape[1], *state[1:]) if self.return_sequences else state
        return [output, state, state] if self.return_state else output

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build_for(self._step_shape(input_shape))

    def reset_states(self, states=None):
        """As RNN's; states given in the layer's data format (kept channels-last inside)."""
        if states is not None and self.data_format == "channels_first":
            states = [np.moveaxis(np.asarray(s), 1, -1) for s in flatten(states)]
        super().reset_states(states)

    reset_state = reset_states

    def call(self, inputs, initial_state=None, mask=None, training=False):
        if self.data_format == "channels_last":
            return super().call(inputs, initial_state, mask, training)
        # channels_first: the cell computes channels-last; transpose in and out
        inputs = ops.transpose(inputs, (0, 1, 3, 4, 2))
        if initial_state is not None:
            initial_state = [ops.transpose(self._to_tensor(s), (0, 2, 3, 1))
                             for s in flatten(initial_state)]
        results = super().call(inputs, initial_state, mask, training)
        results = results if isinstance(results, list) else [results]
        back = [ops.transpose(r, (0, 1, 4, 2, 3) if len(r.shape) == 5 else (0, 3, 1, 2))
                for r in results]
        return back if self.return_state else back[0]

    def get_config(self):
        config = {**super().get_config()}
        config.pop("cell")
        cell = self.cell
        return {
            **config, "filters": cell.filters, "kernel_size": list(cell.kernel_size),
            "strides": list(cell.strides), "padding": cell.padding,
            "data_format": self.data_format, "dilation_rate": list(cell.dilation_rate),
            "activation": activation_name(cell.activation),
            "recurrent_activation": activation_name(cell.recurrent_activation),
            "use_bias": cell.use_bias,
            "kernel_initializer": initializers.serialize(cell.kernel_initializer),
            "recurrent_initializer": initializers.serialize(cell.recurrent_initializer),
            "bias_initializer": initializers.serialize(cell.bias_initializer),
            "unit_forget_bias": cell.unit_forget_bias,
            "kernel_regularizer": regularizers.serialize(cell.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(cell.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(cell.bias_regularizer),
            "dropout": cell.dropout, "recurrent_dropout": cell.recurrent_dropout,
            "seed": cell.seed,
        }
