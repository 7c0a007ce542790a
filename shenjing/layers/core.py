"""Core layers: Dense, Activation, Flatten, Reshape, Dropout."""

import math

from .. import initializers, ops, regularizers
from ..ops import activation as activations
from .base import Layer, format_shape


def activation_name(fn):
    """The Keras name of an activation function, for get_config."""
    return "linear" if fn is None else getattr(fn, "__name__", str(fn))


class Dense(Layer):
    """Fully connected: y = activation(x @ kernel + bias) over the last axis.

    Args: units, activation, use_bias, kernel/bias initializers and regularizers.
    Weights kernel (d, units), bias (units,). Params: (d + 1) * units.
    """

    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense '{self.name}': units must be a positive integer, got {units!r}.")
        self.units, self.use_bias = units, use_bias
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise self._error(
                f"expected input of rank >= 2 with a known last axis (batch, ..., features), got "
                f"shape {format_shape(input_shape)}."
            )
        if len(input_shape) > 3:
            raise self._error(
                f"got a {len(input_shape)}-D input of shape {format_shape(input_shape)}; Dense "
                "acts on the last axis only, so add a Flatten() (or a global pooling layer) "
                "before it."
            )
        if self.built and input_shape[-1] != self.kernel.shape[0]:
            raise self._error(
                f"last input dim was {self.kernel.shape[0]} when built, got {input_shape[-1]} "
                f"(input shape {format_shape(input_shape)})."
            )
        return (*input_shape[:-1], self.units)

    def build(self, input_shape):
        d = input_shape[-1]
        self.kernel = self.add_weight("kernel", (d, self.units), self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def call(self, inputs):
        y = ops.dense(inputs, self.kernel, self.bias)
        return y if self.activation is None else self.activation(y)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "activation": activation_name(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Activation(Layer):
    """y = activation(x), by Keras name ('relu', 'softmax', ...) or a function."""

    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return inputs if self.activation is None else self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activation_name(self.activation)}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); channels-last order, as Keras."""

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        if any(s is None for s in rest):
            raise self._error(f"needs every non-batch axis known, got {format_shape(input_shape)}.")
        return (input_shape[0], math.prod(rest))

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0], -1))


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(1 for s in self.target_shape if s == -1) > 1:
            raise self._error(f"at most one -1 in target_shape, got {self.target_shape}.")

    def compute_output_shape(self, input_shape):
        size = math.prod(input_shape[1:]) if None not in input_shape[1:] else None
        known = math.prod(s for s in self.target_shape if s != -1)
        target = self.target_shape
        if size is not None:
            if -1 in target:
                if size % known:
                    raise self._error(f"cannot reshape {format_shape(input_shape)} to {target}.")
                target = tuple(size // known if s == -1 else s for s in target)
            elif known != size:
                raise self._error(
                    f"cannot reshape {format_shape(input_shape)} ({size} values per sample) to "
                    f"{target} ({known} values)."
                )
        return (input_shape[0], *target)

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0], *self.target_shape))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability rate and scale the
    rest by 1 / (1 - rate); identity at inference."""

    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise self._error(f"rate must be in [0, 1), got {rate}.")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return ops.dropout(inputs, self.rate, training=True, noise_shape=self.noise_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}
