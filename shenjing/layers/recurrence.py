"""What every recurrent layer shares: the fused SimpleRNN/LSTM/GRU (recurrent.py), the cells
(rnn_cells.py), RNN (rnn.py) and ConvLSTM2D. Their options (set and put in get_config), the
check of an input's features, LSTM's forget-gate bias, and one LSTM and one GRU step written
with plain ops (the fused ops in ops/recurrent.py have their own)."""

from .. import arguments, initializers, ops, regularizers
from .base import format_shape


def set_cell_options(layer, units, use_bias, kernel_initializer, recurrent_initializer,
                     bias_initializer, kernel_regularizer, recurrent_regularizer,
                     bias_regularizer, dropout, recurrent_dropout):
    """The arguments a recurrence's weights and dropout take (fused layers and cells alike),
    checked and set on layer."""
    layer.units = arguments.positive_int(units, "units", layer)
    layer.use_bias = arguments.boolean(use_bias, "use_bias", layer)
    for name, value in (("kernel_initializer", kernel_initializer),
                        ("recurrent_initializer", recurrent_initializer),
                        ("bias_initializer", bias_initializer)):
        setattr(layer, name, arguments.lookup(initializers.get, value, name, layer))
    for name, value in (("kernel_regularizer", kernel_regularizer),
                        ("recurrent_regularizer", recurrent_regularizer),
                        ("bias_regularizer", bias_regularizer)):
        setattr(layer, name, arguments.lookup(regularizers.get, value, name, layer))
    layer.dropout = arguments.rate(dropout, "dropout", layer)
    layer.recurrent_dropout = arguments.rate(recurrent_dropout, "recurrent_dropout", layer)


def cell_options_config(layer):
    """get_config's entries for the options set_cell_options set."""
    return {
        "units": layer.units, "use_bias": layer.use_bias,
        **{name: initializers.serialize(getattr(layer, name)) for name in (
            "kernel_initializer", "recurrent_initializer", "bias_initializer")},
        **{name: regularizers.serialize(getattr(layer, name)) for name in (
            "kernel_regularizer", "recurrent_regularizer", "bias_regularizer")},
        "dropout": layer.dropout, "recurrent_dropout": layer.recurrent_dropout,
    }


def set_sequence_options(layer, return_sequences, return_state, go_backwards, stateful, unroll,
                         zero_output_for_mask):
    """The arguments a layer running a recurrence over time takes (SimpleRNN ... and RNN),
    checked and set on layer; no states are carried yet."""
    flag = arguments.boolean
    layer.return_sequences = flag(return_sequences, "return_sequences", layer)
    layer.return_state = flag(return_state, "return_state", layer)
    layer.go_backwards = flag(go_backwards, "go_backwards", layer)
    layer.stateful, layer.unroll = flag(stateful, "stateful", layer), flag(unroll, "unroll", layer)
    layer.zero_output_for_mask = flag(zero_output_for_mask, "zero_output_for_mask", layer)
    layer.states = None  # kept between batches when stateful


SEQUENCE_OPTIONS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                    "zero_output_for_mask")


def sequence_options_config(layer):
    """get_config's entries for the options set_sequence_options set."""
    return {name: getattr(layer, name) for name in SEQUENCE_OPTIONS}


def check_features(layer, input_shape):
    """Refuse an input whose features axis is unknown, differs from the built kernel's, or
    makes a kernel (gates * units columns) too large."""
    if input_shape[-1] is None:
        raise layer._error(f"the features axis of {format_shape(input_shape)} must be known.")
    if layer.built and input_shape[-1] != layer.kernel.shape[0]:
        raise layer._error(f"last input dim was {layer.kernel.shape[0]} when built, got "
                           f"{input_shape[-1]} (input shape {format_shape(input_shape)}).")
    width = layer.gates * layer.units
    arguments.check_elements(max(input_shape[-1], layer.units) * width, "a kernel", layer,
                             f"units {layer.units} for input shape {format_shape(input_shape)}")


def forget_bias_initializer(base, units, unit_forget_bias):
    """base, with the forget block [units:2*units] of a 4-gate bias set to 1 if asked."""
    if not unit_forget_bias:
        return base

    class _ForgetOnes(initializers.Initializer):
        def __call__(self, shape, dtype="float32"):
            value = base(shape, dtype)
            value[units:2 * units] = 1.0
            return value

    return _ForgetOnes()


def lstm_step(z, c, units, gate, act):
    """(h_t, c_t) of one LSTM step from z = x_t W + h_{t-1} U + b, gate blocks i, f, c, o on the
    last axis (LSTM, LSTMCell, ConvLSTM2D): c_t = f*c_{t-1} + i*act(z_c), h_t = o*act(c_t)."""
    u = units
    i, f, o = gate(z[..., :u]), gate(z[..., u:2 * u]), gate(z[..., 3 * u:])
    c = f * c + i * act(z[..., 2 * u:3 * u])
    return o * act(c), c


def gru_step(projected, h, h_dropped, recurrent_kernel, recurrent_bias, units, gate, act,
             reset_after):
    """h_t of one GRU step (GRU, GRUCell), gate blocks z, r, h: projected = x_t W + b,
    h_dropped = h_{t-1} with its recurrent dropout, recurrent_bias (reset_after only) or None.
    h_t = z*h_{t-1} + (1 - z)*act(x W_h + b_h + r*(h U_h + b'_h)) (reset_after), or
    act(x W_h + b_h + (r*h) U_h)."""
    u = units
    if reset_after:
        recurrent = ops.dense(h_dropped, recurrent_kernel, recurrent_bias)
        z = gate(projected[:, :u] + recurrent[:, :u])
        r = gate(projected[:, u:2 * u] + recurrent[:, u:2 * u])
        candidate = act(projected[:, 2 * u:] + r * recurrent[:, 2 * u:])
    else:
        recurrent = ops.matmul(h_dropped, recurrent_kernel[:, :2 * u])
        z = gate(projected[:, :u] + recurrent[:, :u])
        r = gate(projected[:, u:2 * u] + recurrent[:, u:])
        candidate = act(projected[:, 2 * u:]
                        + ops.matmul(r * h_dropped, recurrent_kernel[:, 2 * u:]))
    return z * h + (1 - z) * candidate
