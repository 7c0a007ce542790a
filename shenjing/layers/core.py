"""Core layers: Dense, Activation, Flatten, Reshape, Dropout."""

import math

import numpy as np

from .. import arguments, initializers, ops, regularizers
from ..ops import activation as activations
from .base import Layer, format_shape


def activation_name(fn):
    """The Keras name of an activation function, for get_config."""
    return "linear" if fn is None else getattr(fn, "__name__", str(fn))


def _target_shape(value, layer):
    """Reshape's target_shape: a tuple of positive ints, at most one of them -1 (inferred)."""
    what = "a tuple of positive ints (at most one -1)"
    if not isinstance(value, (tuple, list)):
        raise arguments.fail(layer, f"target_shape must be {what}, got {value!r}.",
                             arguments.ArgumentTypeError)
    for size in value:
        if size != -1:
            arguments.positive_int(size, "target_shape", layer)
    if sum(1 for s in value if s == -1) > 1:
        raise layer._error(f"at most one -1 in target_shape, got {tuple(value)}.")
    known = math.prod(s for s in value if s != -1)
    arguments.check_elements(known, "one output sample", layer, f"target_shape {value!r}")
    return tuple(int(s) for s in value)


def _noise_shape(value, layer):
    """Dropout's noise_shape: None, or a tuple of positive ints or None (Keras's rule)."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)):
        raise arguments.fail(layer, f"noise_shape must be a tuple of positive ints or None, got "
                             f"{value!r}.", arguments.ArgumentTypeError)
    return tuple(None if s is None else arguments.positive_int(s, "noise_shape", layer)
                 for s in value)


def set_kernel_options(layer, activation, use_bias, kernel_initializer, bias_initializer,
                       kernel_regularizer, bias_regularizer, kernel="kernel"):
    """The arguments every layer with a kernel and a bias shares, checked and set on layer
    (kernel: the kernel's name, "depthwise" for depthwise_initializer and the like)."""
    get = arguments.lookup
    layer.activation = get(activations.get, activation, "activation", layer)
    layer.use_bias = arguments.boolean(use_bias, "use_bias", layer)
    for name, value, registry in ((f"{kernel}_initializer", kernel_initializer, initializers),
                                  ("bias_initializer", bias_initializer, initializers),
                                  (f"{kernel}_regularizer", kernel_regularizer, regularizers),
                                  ("bias_regularizer", bias_regularizer, regularizers)):
        setattr(layer, name, get(registry.get, value, name, layer))


def kernel_options_config(layer, kernel="kernel"):
    """get_config's entries for the options set_kernel_options set."""
    return {
        "activation": activation_name(layer.activation), "use_bias": layer.use_bias,
        f"{kernel}_initializer": initializers.serialize(getattr(layer, f"{kernel}_initializer")),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        f"{kernel}_regularizer": regularizers.serialize(getattr(layer, f"{kernel}_regularizer")),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
    }


class Dense(Layer):
    """Fully connected: y = activation(x @ kernel + bias) over the last axis.

    Args: units, activation, use_bias, kernel/bias initializers and regularizers.
    Weights kernel (d, units), bias (units,). Params: (d + 1) * units.
    """

    single_input = True
    supports_masking = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.units = arguments.positive_int(units, "units", self)
        set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer,
                           kernel_regularizer, bias_regularizer)

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
        arguments.check_elements(input_shape[-1] * self.units, "the kernel", self,
                                 f"units {self.units} for input shape "
                                 f"{format_shape(input_shape)}")
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
        return {**super().get_config(), "units": self.units, **kernel_options_config(self)}


class Activation(Layer):
    """y = activation(x), by Keras name ('relu', 'softmax', ...) or a function."""

    single_input = True
    supports_masking = True

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = arguments.lookup(activations.get, activation, "activation", self)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def call(self, inputs):
        return inputs if self.activation is None else self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activation_name(self.activation)}


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1 * d2 * ...); channels-last order, as Keras."""

    single_input = True

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._error(f"expected input of rank >= 2 (batch, ...), got shape "
                              f"{format_shape(input_shape)}.")
        rest = input_shape[1:]
        if any(s is None for s in rest):
            raise self._error(f"needs every non-batch axis known, got {format_shape(input_shape)}.")
        return (input_shape[0], math.prod(rest))

    def call(self, inputs):
        return ops.reshape(inputs, (inputs.shape[0], -1))


class Reshape(Layer):
    """(batch, ...) -> (batch, *target_shape); one entry of target_shape may be -1."""

    single_input = True

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = _target_shape(target_shape, self)

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

    single_input = True
    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = arguments.rate(rate, "rate", self)
        self.noise_shape = _noise_shape(noise_shape, self)
        self.seed = None if seed is None else arguments.non_negative_int(seed, "seed", self)
        # a seeded layer draws from its own generator (the same masks in every run, as in
        # Keras); without a seed, from shenjing's shared one (utils.set_seed)
        self._generator = None if seed is None else np.random.default_rng(self.seed)

    def compute_output_shape(self, input_shape):
        noise = self.noise_shape
        if noise is not None and (len(noise) != len(input_shape) or any(
                m is not None and n is not None and m not in (1, n)
                for m, n in zip(noise, input_shape))):
            raise self._error(f"noise_shape {noise} must have one entry per input axis, each "
                              f"None, 1 or the input's size; got input shape "
                              f"{format_shape(input_shape)}.")
        return input_shape

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return ops.dropout(inputs, self.rate, training=True, noise_shape=self.noise_shape,
                           rng=self._generator)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape,
                "seed": self.seed}
