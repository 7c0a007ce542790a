"""LocallyConnected2D: local receptive fields without shared weights (Keras 2 semantics)."""

import math

from .. import arguments, initializers, ops, regularizers
from .base import Layer, format_shape
from .conv import _tuple, set_weight_options
from .core import activation_name


class LocallyConnected2D(Layer):
    """Like Conv2D, but every output position (oh, ow) has its own kernel: no weight sharing.

    y[n, oh, ow] = activation(window(oh, ow) . kernel[oh * OW + ow] + bias[oh, ow]), 'valid'
    windows only (as Keras 2), OH = floor((H - KH) / SH) + 1. Weights (Keras 2 layout,
    implementation=1): kernel (OH*OW, KH*KW*C, filters), window rows in (kh, kw, c) order
    ((c, kh, kw) for channels_first), bias (OH, OW, filters).
    Params: OH * OW * (KH * KW * C + 1) * filters.
    """

    single_input = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 implementation=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = arguments.positive_int(filters, "filters", self)
        self.kernel_size = _tuple(kernel_size, 2, "kernel_size", self)
        self.strides = _tuple(strides, 2, "strides", self)
        if not isinstance(padding, str) or padding.lower() != "valid":
            raise self._error(
                f"only padding='valid' is supported (as in Keras 2's LocallyConnected2D), got "
                f"{padding!r}. Pad the input first (ZeroPadding2D) for a 'same'-sized output."
            )
        self.padding = "valid"
        set_weight_options(self, data_format, activation, use_bias, kernel_initializer,
                           bias_initializer, kernel_regularizer, bias_regularizer)
        if implementation != 1:
            raise self._error(
                f"only implementation=1 is supported (kernel (positions, window, filters)); got "
                f"{implementation!r}. Keras 2's modes 2 and 3 store other kernel layouts."
            )
        self.implementation = 1

    def _split(self, input_shape):
        """(rows, cols, channels) whatever the data format."""
        if self.data_format == "channels_first":
            return input_shape[2], input_shape[3], input_shape[1]
        return input_shape[1], input_shape[2], input_shape[3]

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            kind = "(batch, channels, height, width)" if self.data_format == "channels_first" \
                else "(batch, height, width, channels)"
            raise self._error(f"expected input of rank 4 {kind}, got shape "
                              f"{format_shape(input_shape)}.")
        rows, cols, channels = self._split(input_shape)
        if rows is None or cols is None or channels is None:
            raise self._error(
                "needs the height, width and channels known (one kernel per output position), "
                f"got shape {format_shape(input_shape)}."
            )
        if self.built and (rows, cols, channels) != self._built_for:
            raise self._error(
                f"was built for (height, width, channels) = {self._built_for}, got "
                f"{(rows, cols, channels)} (input shape {format_shape(input_shape)})."
            )
        out = []
        for n, k, s in zip((rows, cols), self.kernel_size, self.strides):
            if n < k:
                raise self._error(
                    f"input shape {format_shape(input_shape)} is too small for kernel_size "
                    f"{self.kernel_size} with 'valid' windows: the output would have size "
                    f"{(n - k) // s + 1}. Use a smaller kernel or a larger input."
                )
            out.append((n - k) // s + 1)
        arguments.check_elements(math.prod(out) * math.prod(self.kernel_size) * channels
                                 * self.filters, "the kernel", self,
                                 f"kernel_size {self.kernel_size}, strides {self.strides} and "
                                 f"filters {self.filters} for input shape "
                                 f"{format_shape(input_shape)}")
        if self.data_format == "channels_first":
            return (input_shape[0], self.filters, *out)
        return (input_shape[0], *out, self.filters)

    def build(self, input_shape):
        rows, cols, channels = self._split(input_shape)
        out = self.compute_output_shape(input_shape)
        out_rows, out_cols = out[2:] if self.data_format == "channels_first" else out[1:3]
        self._built_for = (rows, cols, channels)
        kh, kw = self.kernel_size
        shape = (out_rows * out_cols, kh * kw * channels, self.filters)
        self.kernel = self.add_weight("kernel", shape, self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (out_rows, out_cols, self.filters),
                                        self.bias_initializer, regularizer=self.bias_regularizer)

    def call(self, inputs):
        kernel = self.kernel
        if self.data_format == "channels_first":
            # Keras 2 flattens channels_first windows as (c, kh, kw): reorder to (kh, kw, c)
            positions, _, filters = kernel.shape
            channels = self._built_for[2]
            kernel = ops.reshape(kernel, (positions, channels, *self.kernel_size, filters))
            kernel = ops.reshape(ops.transpose(kernel, (0, 2, 3, 1, 4)), self.kernel.shape)
            inputs = ops.transpose(inputs, (0, 2, 3, 1))
        y = ops.local_conv2d(inputs, kernel, self.bias, kernel_size=self.kernel_size,
                             strides=self.strides)
        if self.activation is not None:
            y = self.activation(y)
        if self.data_format == "channels_first":
            y = ops.transpose(y, (0, 3, 1, 2))
        return y

    def get_config(self):
        return {
            **super().get_config(), "filters": self.filters,
            "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": self.padding, "data_format": self.data_format,
            "activation": activation_name(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "implementation": self.implementation,
        }
