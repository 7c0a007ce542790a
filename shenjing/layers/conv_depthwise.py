"""Depthwise and depthwise-separable convolutions: DepthwiseConv1D/2D, SeparableConv1D/2D.

A depthwise convolution filters each input channel on its own (depth_multiplier filters per
channel, no mixing across channels); a separable one follows it with a 1x1 "pointwise"
convolution that mixes the C*depth_multiplier channels into `filters`. Arguments, defaults,
weight names, shapes and order follow Keras 3; padding is 'valid' or 'same'.
"""

import math

from .. import arguments, initializers, ops, regularizers
from .base import format_shape
from .conv import ConvBase, set_weight_options
from .core import kernel_options_config


class _DepthwiseBase(ConvBase):
    """Shared by the four layers: the depthwise step's arguments, weight and output channels."""

    def __init__(self, kernel_size, strides, padding, depth_multiplier, data_format,
                 dilation_rate, activation, use_bias, depthwise_initializer, bias_initializer,
                 depthwise_regularizer, bias_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.depth_multiplier = arguments.positive_int(depth_multiplier, "depth_multiplier",
                                                       self)
        self._set_window(kernel_size, strides, dilation_rate)
        self.padding = arguments.choice(padding, ("valid", "same"), "padding", self)
        set_weight_options(self, data_format, activation, use_bias, depthwise_initializer,
                           bias_initializer, depthwise_regularizer, bias_regularizer,
                           kernel="depthwise")

    def _built_channels(self):
        return self.input_channels

    def _check_kernel(self, input_shape, channels):
        arguments.check_elements(math.prod(self.kernel_size) * channels * self.depth_multiplier,
                                 "the depthwise kernel", self, f"kernel_size {self.kernel_size}"
                                 f" and depth_multiplier {self.depth_multiplier} for input shape "
                                 f"{format_shape(input_shape)}")

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

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                **kernel_options_config(self, kernel="depthwise")}


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
