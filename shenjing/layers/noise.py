"""Noise layers, active only in training (identity at inference): SpatialDropout1D/2D drop
whole channels, GaussianNoise adds N(0, stddev^2), GaussianDropout multiplies by
N(1, rate / (1 - rate)).

Randomness as ops.dropout: with seed=None the draws come from shenjing's shared generator
(``shenjing.utils.set_seed`` reseeds it); with a seed, from the layer's own generator started
from it, so a seeded layer gives the same sequence of draws in every run (Keras's
SeedGenerator), yet a new draw at each call.
"""

import math

import numpy as np

from .. import arguments, ops, utils
from .base import Layer, format_shape


class _Noise(Layer):
    """Shared by the noise layers: the seed and where the draws come from."""

    single_input = True
    supports_masking = True

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = None if seed is None else arguments.non_negative_int(seed, "seed", self)
        self._generator = None

    def _rng(self) -> np.random.Generator:
        if self.seed is None:
            return utils.get_rng()
        if self._generator is None:
            self._generator = np.random.default_rng(self.seed)
        return self._generator

    def _normal(self, shape, dtype):
        """Standard normal draws in dtype (float32 drawn as float32, as ops.dropout does)."""
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
        return self._rng().standard_normal(shape, dtype=draw_dtype).astype(dtype, copy=False)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _SpatialDropout(_Noise):
    """Dropout whose mask is shared over the steps or pixels: whole channels are zeroed."""

    rank, layout = 0, ""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = arguments.rate(rate, "rate", self)

    def _layout(self):
        return self.layout

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank:
            raise self._error(f"expected input of rank {self.rank} {self._layout()}, got shape "
                              f"{format_shape(input_shape)}.")
        return input_shape

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return ops.dropout(inputs, self.rate, training=True,
                           noise_shape=self._noise_shape(inputs.shape), rng=self._rng())

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class SpatialDropout1D(_SpatialDropout):
    """In training, zeroes whole feature channels of (batch, steps, features) with probability
    rate (the same for all steps) and scales the rest by 1 / (1 - rate). Args: rate, seed."""

    rank, layout = 3, "(batch, steps, features)"

    def _noise_shape(self, shape):
        return (shape[0], 1, shape[2])


class SpatialDropout2D(_SpatialDropout):
    """In training, zeroes whole channels of images with probability rate (the same for all
    pixels) and scales the rest by 1 / (1 - rate). Args: rate, data_format, seed."""

    rank = 4

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = arguments.data_format(data_format, self)

    def _layout(self):
        return ("(batch, channels, height, width)" if self.data_format == "channels_first"
                else "(batch, height, width, channels)")

    def _noise_shape(self, shape):
        if self.data_format == "channels_first":
            return (shape[0], shape[1], 1, 1)
        return (shape[0], 1, 1, shape[3])

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class GaussianNoise(_Noise):
    """In training, y = x + noise with noise ~ N(0, stddev^2) drawn per entry; identity at
    inference. Args: stddev in [0, 1] (Keras's range), seed."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = arguments.number(stddev, "stddev", self, 0.0, 1.0)

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        noise = self._normal(inputs.shape, inputs.dtype)
        noise *= np.asarray(self.stddev, inputs.dtype)
        return ops.add(inputs, noise)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


class GaussianDropout(_Noise):
    """In training, y = x * noise with noise ~ N(1, rate / (1 - rate)) drawn per entry (mean
    kept, variance as dropout's); identity at inference. Args: rate in [0, 1), seed."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = arguments.rate(rate, "rate", self)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        noise = self._normal(inputs.shape, inputs.dtype)
        noise *= np.asarray(math.sqrt(self.rate / (1.0 - self.rate)), inputs.dtype)
        noise += np.asarray(1, inputs.dtype)
        return ops.mul(inputs, noise)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
