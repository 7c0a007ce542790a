"""Depthwise and depthwise-separable convolutions: DepthwiseConv1D/2D, SeparableConv1D/2D.

A depthwise convolution filters each input channel on its own (depth_multiplier filters per
channel, no mixing across channels); a separable one follows it with a 1x1 "pointwise"
convolution that mixes the C*depth_multiplier channels into `filters`. Arguments, defaults,
weight names, shapes and order follow Keras 3; padding is 'valid' or 'same'.
"""

import math

from .. import arguments, initializers, ops, regularizers
from ..ops import activation as activations
from ..ops.conv import conv_output_length
from .base import Layer, format_shape
from .conv import _tuple, check_dilated_extent, check_window_sizes
from .core import activation_name


class _DepthwiseBase(Layer):
    """Shared by the four layers: the depthwise step's arguments, shapes and data formats."""

    single_input = True
    rank = 2

    def __init__(self, kernel_size, strides, padding, depth_multiplier, data_format,
                 dilation_rate, activation, use_bias, depthwise_initializer, bias_initializer,
                 depthwise_regularizer, bias_regularizer, **kwargs):
        super().__init__(**kwargs)
        get = arguments.lookup
        self.depth_multiplier = arguments.positive_int(depth_multiplier, "depth_multiplier",
                                                       self)
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", self)
        self.strides = _tuple(strides, self.rank, "strides", self)
        self.dilation_rate = _tuple(dilation_rate, self.rank, "dilation_rate", self)
        self.padding = arguments.choice(padding, ("valid", "same"), "padding", self)
        self.data_format = arguments.data_format(data_format, self)
        self.activation = get(activations.get, activation, "activation", self)
        self.use_bias = arguments.boolean(use_bias, "use_bias", self)
        self.depthwise_initializer = get(initializers.get, depthwise_initializer,
                                         "depthwise_initializer", self)
        self.bias_initializer = get(initializers.get, bias_initializer, "bias_initializer", self)
        self.depthwise_regularizer = get(regularizers.get, depthwise_regularizer,
                                         "depthwise_regularizer", self)
        self.bias_regularizer = get(regularizers.get, bias_regularizer, "bias_regularizer", self)

    def _split(self, input_shape):
        """(batch, spatial sizes, channels) whatever the data format."""
        if self.data_format == "channels_first":
            return input_shape[0], input_shape[2:], input_shape[1]
        return input_shape[0], input_shape[1:-1], input_shape[-1]

    def _out_channels(self, channels):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        kind = "(batch, steps, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        if len(input_shape) != self.rank + 2:
            raise self._error(f"expected input of rank {self.rank + 2} {kind}, got shape "
                              f"{format_shape(input_shape)}.")
        batch, spatial, channels = self._split(input_shape)
        if channels is None:
            raise self._error(f"the channel axis of {format_shape(input_shape)} must be known.")
        if self.built and channels != self.input_channels:
            raise self._error(f"expected {self.input_channels} input channels (as built), got "
                              f"{channels} (input shape {format_shape(input_shape)}).")
        arguments.check_elements(math.prod(self.kernel_size) * channels * self.depth_multiplier,
                                 "the depthwise kernel", self, f"kernel_size {self.kernel_size}"
                                 f" and depth_multiplier {self.depth_multiplier} for input shape "
                                 f"{format_shape(input_shape)}")
        check_window_sizes(self, input_shape, spatial, channels, self.kernel_size, self.strides,
                           self.dilation_rate, self.padding, f"kernel_size {self.kernel_size}")
        check_dilated_extent(self, input_shape, spatial, channels)
        sizes = []
        for axis, n in enumerate(spatial):
            if n is None:
                sizes.append(None)
                continue
            size = conv_output_length(n, self.kernel_size[axis], self.strides[axis],
                                      self.padding, self.dilation_rate[axis])
            if size < 1:
                raise self._error(
                    f"input shape {format_shape(input_shape)} is too small for kernel_size "
                    f"{self.kernel_size} with strides {self.strides}, dilation "
                    f"{self.dilation_rate} and padding {self.padding!r}: the output would have "
                    f"size {size}. Use padding='same' or a smaller kernel.")
            sizes.append(size)
        out = self._out_channels(channels)
        return (batch, out, *sizes) if self.data_format == "channels_first" else (
            batch, *sizes, out)

    def _build_depthwise(self, input_shape, name):
        self.input_channels = self._split(input_shape)[2]
        return self.add_weight(name, (*self.kernel_size, self.input_channels,
                                      self.depth_multiplier),
                               self.depthwise_initializer, regularizer=self.depthwise_regularizer)

    def _depthwise(self, x, bias=None):
        fn = ops.depthwise_conv2d if self.rank == 2 else ops.depthwise_conv1d
        strides = self.strides if self.rank == 2 else self.strides[0]
        dilation = self.dilation_rate if self.rank == 2 else self.dilation_rate[0]
        return fn(x, self.depthwise, bias, strides=strides, padding=self.padding,
                  dilation_rate=dilation)

    def _convolve(self, x):
        raise NotImplementedError

    def call(self, inputs):
        if self.data_format == "channels_first":
            inputs = ops.transpose(inputs, (0, *range(2, self.rank + 2), 1))
        y = self._convolve(inputs)
        if self.activation is not None:
            y = self.activation(y)
        if self.data_format == "channels_first":
            y = ops.transpose(y, (0, self.rank + 1, *range(1, self.rank + 1)))
        return y

    def get_config(self):
        return {
            **super().get_config(), "depth_multiplier": self.depth_multiplier,
            "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": self.padding, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "activation": activation_name(self.activation), "use_bias": self.use_bias,
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class _DepthwiseConv(_DepthwiseBase):
    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)

    def _out_channels(self, channels):
        return channels * self.depth_multiplier

    def build(self, input_shape):
        # Keras names the depthwise kernel of DepthwiseConv "kernel"
        self.depthwise = self.kernel = self._build_depthwise(input_shape, "kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.input_channels * self.depth_multiplier,),
                                        self.bias_initializer, regularizer=self.bias_regularizer)

    def _convolve(self, x):
        return self._depthwise(x, self.bias)


class DepthwiseConv2D(_DepthwiseConv):
    """Depthwise 2-D convolution: each of the C input channels convolved with its own
    depth_multiplier (M) filters, no mixing across channels; output channel c*M + m.

    Output size per axis as Conv2D. Weights kernel (kh, kw, C, M), bias (C*M,).
    Params: (kh * kw + 1) * C * M.
    """

    rank = 2


class DepthwiseConv1D(_DepthwiseConv):
    """Depthwise 1-D convolution over (batch, steps, channels). Params: (k + 1) * C * M."""

    rank = 1


class _SeparableConv(_DepthwiseBase):
    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format,
                         dilation_rate, activation, use_bias, depthwise_initializer,
                         bias_initializer, depthwise_regularizer, bias_regularizer, **kwargs)
        self.filters = arguments.positive_int(filters, "filters", self)
        self.pointwise_initializer = arguments.lookup(
            initializers.get, pointwise_initializer, "pointwise_initializer", self)
        self.pointwise_regularizer = arguments.lookup(
            regularizers.get, pointwise_regularizer, "pointwise_regularizer", self)

    def _out_channels(self, channels):
        arguments.check_elements(channels * self.depth_multiplier * self.filters,
                                 "the pointwise kernel", self, f"depth_multiplier "
                                 f"{self.depth_multiplier} and filters {self.filters} for "
                                 f"{channels} input channels")
        return self.filters

    def build(self, input_shape):
        self.depthwise = self.depthwise_kernel = self._build_depthwise(input_shape,
                                                                       "depthwise_kernel")
        middle = self.input_channels * self.depth_multiplier
        self.pointwise_kernel = self.add_weight(
            "pointwise_kernel", (*(1,) * self.rank, middle, self.filters),
            self.pointwise_initializer, regularizer=self.pointwise_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _convolve(self, x):
        pointwise = ops.conv2d if self.rank == 2 else ops.conv1d
        return pointwise(self._depthwise(x), self.pointwise_kernel, self.bias)

    def get_config(self):
        config = super().get_config()
        return {
            **config, "filters": self.filters,
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
        }


class SeparableConv2D(_SeparableConv):
    """Depthwise-separable 2-D convolution: a depthwise step (depth_multiplier M filters per
    input channel) then a 1x1 pointwise convolution mixing the C*M channels into `filters`.

    Output size per axis as Conv2D. Weights depthwise_kernel (kh, kw, C, M), pointwise_kernel
    (1, 1, C*M, filters), bias (filters,). Params: kh*kw*C*M + (C*M + 1) * filters.
    """

    rank = 2


class SeparableConv1D(_SeparableConv):
    """Depthwise-separable 1-D convolution over (batch, steps, channels).
    Params: k*C*M + (C*M + 1) * filters."""

    rank = 1
