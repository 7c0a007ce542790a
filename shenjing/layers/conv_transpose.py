"""Transposed convolutions: Conv1DTranspose, Conv2DTranspose (Keras 3's arguments and sizes).

The layer that goes the opposite way of a Conv: from the shape of a conv's output to the shape
of its input, with the same connectivity (a stride of 2 doubles the size). Output size per axis
(n in, k kernel, s stride, d dilation, ek = d*(k-1) + 1, p = output_padding):
'valid' (n-1)*s + max(ek, s), or (n-1)*s + ek + p; 'same' n*s, or (n-1)*s + ek % 2 + p.
"""

import math

from .. import arguments
from ..ops.conv_transpose import conv_transpose1d, conv_transpose2d, conv_transpose_crops
from .base import format_shape
from .conv import _Conv


class _ConvTranspose(_Conv):
    """Shared by Conv1DTranspose and Conv2DTranspose: kernel (*kernel_size, filters, C)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, padding="valid",
                         data_format=data_format, dilation_rate=dilation_rate,
                         activation=activation, use_bias=use_bias,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, **kwargs)
        # Keras 3 takes only these two here (no explicit pads, no 'causal')
        self.padding = arguments.choice(padding, ("valid", "same"), "padding", self)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = arguments.int_tuple(output_padding, self.rank,
                                                      "output_padding", self, minimum=0)
            for p, s in zip(self.output_padding, self.strides):
                if p >= s:
                    raise self._error(f"output_padding must be less than strides on every axis, "
                                      f"got output_padding {self.output_padding} with strides "
                                      f"{self.strides}.")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise self._error(f"strides > 1 is not supported together with dilation_rate > 1 "
                              f"(as in Keras), got strides {self.strides} and dilation_rate "
                              f"{self.dilation_rate}.")

    def _sizes(self, input_shape, spatial, channels):
        """The transposed sizes per axis (the module docstring's), not a conv window's."""
        sizes = []
        for axis, n in enumerate(spatial):
            if n is None:
                sizes.append(None)
                continue
            p = None if self.output_padding is None else self.output_padding[axis]
            *_, size = conv_transpose_crops(n, self.kernel_size[axis], self.strides[axis],
                                            self.padding, p, self.dilation_rate[axis])
            if size < 1:
                raise self._error(
                    f"input shape {format_shape(input_shape)} gives an output of size {size} "
                    f"with kernel_size {self.kernel_size}, strides {self.strides}, padding "
                    f"{self.padding!r} and output_padding {self.output_padding}.")
            sizes.append(size)
        if None not in sizes:
            arguments.check_elements(math.prod(sizes) * self.filters, "one output sample", self,
                                     f"kernel_size {self.kernel_size}, strides {self.strides} "
                                     f"and dilation_rate {self.dilation_rate} for input shape "
                                     f"{format_shape(input_shape)}")
        return sizes

    def _built_channels(self):
        return self.kernel.shape[-1]

    def _kernel_shape(self, channels):
        return (*self.kernel_size, self.filters, channels)

    def get_config(self):
        output_padding = None if self.output_padding is None else list(self.output_padding)
        return {**super().get_config(), "output_padding": output_padding}


class Conv2DTranspose(_ConvTranspose):
    """Transposed 2-D convolution over (batch, height, width, channels): each input pixel
    spreads its kernel-weighted values over a (strided) window of the output.

    Weights kernel (kh, kw, filters, C) (Keras's layout), bias (filters,).
    Params: (kh * kw * C + 1) * filters. Sizes: see the module docstring.
    """

    rank = 2

    def _convolve(self, x):
        return conv_transpose2d(x, self.kernel, self.bias, strides=self.strides,
                                padding=self.padding, output_padding=self.output_padding,
                                dilation_rate=self.dilation_rate)


class Conv1DTranspose(_ConvTranspose):
    """Transposed 1-D convolution over (batch, steps, channels). Params: (k * C + 1) * filters."""

    rank = 1

    def _convolve(self, x):
        return conv_transpose1d(x, self.kernel, self.bias, strides=self.strides[0],
                                padding=self.padding, output_padding=self.output_padding,
                                dilation_rate=self.dilation_rate[0])
