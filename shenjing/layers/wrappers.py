"""Wrappers: Bidirectional (a recurrent layer read both ways) and TimeDistributed."""

from .. import arguments, ops
from .base import Layer, format_shape


def _recurrent(layer, name, where):
    """layer, if it is a recurrent layer (SimpleRNN, LSTM, GRU, RNN(cell)): Bidirectional runs
    a copy of it backward over time, so it needs go_backwards, return_sequences and states."""
    from .recurrent import _RNN
    from .rnn import RNN

    if not isinstance(layer, (_RNN, RNN)):
        raise arguments.fail(where, f"{name} must be a recurrent layer instance (SimpleRNN, LSTM, "
                             f"GRU or RNN), got {layer!r}.", arguments.ArgumentTypeError)
    return layer


class Bidirectional(Layer):
    """Runs ``layer`` forward and a copy backward over time and merges the two outputs.

    merge_mode: 'concat' (default), 'sum', 'mul', 'ave', or None (a list of both). With
    return_sequences the backward outputs are flipped back, so step t of both lines up.
    """

    single_input = True

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if merge_mode not in ("concat", "sum", "mul", "ave", None):
            raise self._error(f"merge_mode must be 'concat', 'sum', 'mul', 'ave' or None, got "
                              f"{merge_mode!r}.")
        from ..saving.registry import deserialize_layer, serialize_layer

        if isinstance(layer, dict):  # from_config
            layer = deserialize_layer(layer)
        if isinstance(backward_layer, dict):
            backward_layer = deserialize_layer(backward_layer)
        self.forward_layer = _recurrent(layer, "layer", self)
        if backward_layer is not None:
            _recurrent(backward_layer, "backward_layer", self)
            if backward_layer.go_backwards == layer.go_backwards:
                raise self._error(
                    "the forward and backward layers must have different go_backwards values "
                    f"(Keras's rule), got {layer.go_backwards} for both."
                )
        if backward_layer is None:
            spec = serialize_layer(layer)
            spec["config"] = {**spec["config"], "name": f"backward_{layer.name}",
                              "go_backwards": not layer.go_backwards}
            backward_layer = deserialize_layer(spec)
        self.backward_layer, self.merge_mode = backward_layer, merge_mode
        for inner in (self.forward_layer, self.backward_layer):  # Keras's rule: masked steps
            if getattr(inner, "zero_output_for_mask", None) is not None:  # give zeros when
                inner.zero_output_for_mask = inner.return_sequences  # sequences are returned
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True

    def _merge_shape(self, shape):
        if self.merge_mode == "concat":
            return (*shape[:-1], shape[-1] * 2)
        return shape

    def compute_output_shape(self, input_shape):
        forward = self.forward_layer.compute_output_shape(input_shape)
        if self.return_state:
            output, states = forward[0], forward[1:]
            merged = [output, output] if self.merge_mode is None else [self._merge_shape(output)]
            return merged + states + states
        return [forward, forward] if self.merge_mode is None else self._merge_shape(forward)

    def build(self, input_shape):
        self.forward_layer.build_for(input_shape)
        self.backward_layer.build_for(input_shape)

    @property
    def weights(self):
        return self.forward_layer.weights + self.backward_layer.weights

    @property
    def trainable_weights(self):
        return self.forward_layer.trainable_weights + self.backward_layer.trainable_weights

    @property
    def non_trainable_weights(self):
        return (self.forward_layer.non_trainable_weights
                + self.backward_layer.non_trainable_weights)

    def count_params(self):
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights):
        n = len(self.forward_layer.weights)
        self.forward_layer.set_weights(weights[:n])
        self.backward_layer.set_weights(weights[n:])

    def regularization_losses(self):
        return (self.forward_layer.regularization_losses()
                + self.backward_layer.regularization_losses())

    def __call__(self, inputs, *args, initial_state=None, **kwargs):
        """initial_state: the forward layer's states, then the backward layer's (symbolic ones
        make the call a graph node). Keras 3 refuses the list form [x, *states] here too."""
        if initial_state is not None:
            from .recurrent import check_initial_state

            forward, backward = self.forward_layer, self.backward_layer
            names = ([f"forward {n}" for n in forward.state_names]
                     + [f"backward {n}" for n in backward.state_names])
            units = ([forward.units] * len(forward.state_names)
                     + [backward.units] * len(backward.state_names))
            kwargs["initial_state"] = check_initial_state(self, inputs, initial_state, names,
                                                          units)
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs, initial_state=None, mask=None, training=False):
        forward_state = backward_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y_forward = self.forward_layer(inputs, initial_state=forward_state, mask=mask,
                                       training=training)
        y_backward = self.backward_layer(inputs, initial_state=backward_state, mask=mask,
                                         training=training)
        states = []
        if self.return_state:
            states = list(y_forward[1:]) + list(y_backward[1:])
            y_forward, y_backward = y_forward[0], y_backward[0]
        if self.return_sequences:
            y_backward = ops.getitem(y_backward, (slice(None), slice(None, None, -1)))
        if self.merge_mode is None:
            merged = [y_forward, y_backward]
        elif self.merge_mode == "concat":
            merged = [ops.concatenate([y_forward, y_backward], axis=-1)]
        elif self.merge_mode == "sum":
            merged = [y_forward + y_backward]
        elif self.merge_mode == "mul":
            merged = [y_forward * y_backward]
        else:
            merged = [(y_forward + y_backward) * 0.5]
        outputs = merged + states
        return outputs[0] if len(outputs) == 1 else outputs

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.merge_mode is None or self.return_state:
            count = (2 if self.merge_mode is None else 1)
            states = 2 * len(self.forward_layer.state_names) if self.return_state else 0
            return [output_mask] * count + [None] * states
        return output_mask

    def get_config(self):
        from ..saving.registry import serialize_layer

        return {**super().get_config(), "layer": serialize_layer(self.forward_layer),
                "backward_layer": serialize_layer(self.backward_layer),
                "merge_mode": self.merge_mode}


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: (N, T, ...) -> (N, T, ...out), one set of weights.
    The mask passes through unchanged."""

    single_input = True
    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            from ..saving.registry import deserialize_layer

            layer = deserialize_layer(layer)
        if not isinstance(layer, Layer):
            raise arguments.fail(self, f"layer must be a Layer instance (Keras: \"Please "
                                 "initialize `TimeDistributed` layer with a `keras.layers.Layer` "
                                 f"instance\"), got {layer!r}.", arguments.ArgumentTypeError)
        self.layer = layer

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 3:
            raise self._error(f"expected input of rank >= 3 (batch, time, ...), got shape "
                              f"{format_shape(input_shape)}.")
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    def build(self, input_shape):
        self.layer.build_for((None, *input_shape[2:]))

    weights = property(lambda self: self.layer.weights)
    trainable_weights = property(lambda self: self.layer.trainable_weights)
    non_trainable_weights = property(lambda self: self.layer.non_trainable_weights)

    def count_params(self):
        return self.layer.count_params()

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    def regularization_losses(self):
        return self.layer.regularization_losses()

    def call(self, inputs, training=False):
        batch, steps = inputs.shape[0], inputs.shape[1]
        flat = ops.reshape(inputs, (batch * steps, *inputs.shape[2:]))
        out = self.layer(flat, training=training)
        return ops.reshape(out, (batch, steps, *out.shape[1:]))

    def get_config(self):
        from ..saving.registry import serialize_layer

        return {**super().get_config(), "layer": serialize_layer(self.layer)}


