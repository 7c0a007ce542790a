"""Convolution layers: Conv1D, Conv2D (channels-last; channels_first accepted) and
ZeroPadding2D."""

from .. import initializers, ops, regularizers
from ..ops import activation as activations
from ..ops.conv import conv_output_length
from .base import Layer, format_shape
from .core import activation_name


def _tuple(value, rank, what, layer):
    values = (value,) * rank if isinstance(value, int) else tuple(value)
    if len(values) != rank or not all(isinstance(v, int) and v > 0 for v in values):
        raise layer._error(f"{what} must be a positive int or {rank} of them, got {value!r}.")
    return values


def set_weight_options(layer, data_format, activation, use_bias, kernel_initializer,
                       bias_initializer, kernel_regularizer, bias_regularizer):
    """The arguments every convolution-like layer shares, checked and resolved onto layer."""
    layer.data_format = data_format or "channels_last"
    if layer.data_format not in ("channels_last", "channels_first"):
        raise layer._error(f"data_format must be 'channels_last' or 'channels_first', got "
                           f"{data_format!r}.")
    layer.activation = activations.get(activation)
    layer.use_bias = use_bias
    layer.kernel_initializer = initializers.get(kernel_initializer)
    layer.bias_initializer = initializers.get(bias_initializer)
    layer.kernel_regularizer = regularizers.get(kernel_regularizer)
    layer.bias_regularizer = regularizers.get(bias_regularizer)


class _Conv(Layer):
    """Shared by Conv1D and Conv2D: kernel (*kernel_size, C, filters), bias (filters,)."""

    rank = 2

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(filters, int) or filters <= 0:
            raise self._error(f"filters must be a positive integer, got {filters!r}.")
        self.filters = filters
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", self)
        self.strides = _tuple(strides, self.rank, "strides", self)
        self.dilation_rate = _tuple(dilation_rate, self.rank, "dilation_rate", self)
        if isinstance(padding, str):
            padding = padding.lower()
            if padding not in ("valid", "same"):
                raise self._error(f"padding must be 'valid', 'same', an int or explicit pairs, "
                                  f"got {padding!r}.")
        self.padding = padding
        set_weight_options(self, data_format, activation, use_bias, kernel_initializer,
                           bias_initializer, kernel_regularizer, bias_regularizer)

    def _split(self, input_shape):
        """(batch, spatial sizes, channels) whatever the data format."""
        if self.data_format == "channels_first":
            return input_shape[0], input_shape[2:], input_shape[1]
        return input_shape[0], input_shape[1:-1], input_shape[-1]

    def compute_output_shape(self, input_shape):
        kind = "(batch, width, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        if len(input_shape) != self.rank + 2:
            raise self._error(f"expected input of rank {self.rank + 2} {kind}, got shape "
                              f"{format_shape(input_shape)}.")
        batch, spatial, channels = self._split(input_shape)
        if channels is None:
            raise self._error(f"the channel axis of {format_shape(input_shape)} must be known.")
        if self.built and channels != self.kernel.shape[-2]:
            raise self._error(f"expected {self.kernel.shape[-2]} input channels (as built), got "
                              f"{channels} (input shape {format_shape(input_shape)}).")
        sizes = []
        for axis, n in enumerate(spatial):
            if n is None:
                sizes.append(None)
                continue
            size = conv_output_length(n, self.kernel_size[axis], self.strides[axis],
                                      self._axis_padding(axis), self.dilation_rate[axis])
            if size < 1:
                raise self._error(
                    f"input shape {format_shape(input_shape)} is too small for kernel_size "
                    f"{self.kernel_size} with strides {self.strides}, dilation "
                    f"{self.dilation_rate} and padding {self.padding!r}: the output would have "
                    f"size {size}. Use padding='same', a smaller kernel, or remove a pooling "
                    "layer before this one."
                )
            sizes.append(size)
        if self.data_format == "channels_first":
            return (batch, self.filters, *sizes)
        return (batch, *sizes, self.filters)

    def _axis_padding(self, axis):
        if isinstance(self.padding, str) or isinstance(self.padding, int):
            return self.padding
        pads = self.padding if self.rank > 1 else (self.padding,)
        entry = pads[axis]  # an int (both sides) or a (before, after) pair
        return entry if isinstance(entry, int) else tuple(entry)

    def build(self, input_shape):
        channels = self._split(input_shape)[2]
        self.kernel = self.add_weight("kernel", (*self.kernel_size, channels, self.filters),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def _convolve(self, x):
        raise NotImplementedError

    def call(self, inputs):
        if self.data_format == "channels_first":
            order = (0, *range(2, self.rank + 2), 1)
            inputs = ops.transpose(inputs, order)
        y = self._convolve(inputs)
        if self.activation is not None:
            y = self.activation(y)
        if self.data_format == "channels_first":
            y = ops.transpose(y, (0, self.rank + 1, *range(1, self.rank + 1)))
        return y

    def get_config(self):
        padding = self.padding
        if not isinstance(padding, (str, int)):
            padding = [p if isinstance(p, int) else list(p) for p in padding]
        return {
            **super().get_config(), "filters": self.filters,
            "kernel_size": list(self.kernel_size), "strides": list(self.strides),
            "padding": padding, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
            "activation": activation_name(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Conv2D(_Conv):
    """2-D convolution over (batch, height, width, channels): every input channel convolved
    with its own kernel slice, summed into one feature map per filter.

    Output size per axis: valid floor((n - d(k-1) - 1) / s) + 1, same ceil(n / s).
    Weights kernel (kh, kw, C, filters), bias (filters,). Params: (kh * kw * C + 1) * filters.
    """

    rank = 2

    def _convolve(self, x):
        return ops.conv2d(x, self.kernel, self.bias, strides=self.strides, padding=self.padding,
                          dilation_rate=self.dilation_rate)


class Conv1D(_Conv):
    """1-D convolution over (batch, steps, channels). Params: (k * C + 1) * filters."""

    rank = 1

    def _convolve(self, x):
        return ops.conv1d(x, self.kernel, self.bias, strides=self.strides[0],
                          padding=self.padding, dilation_rate=self.dilation_rate[0])


class ZeroPadding2D(Layer):
    """Pads height and width with zeros: padding int, (h, w) or ((top, bottom), (left, right))."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        elif all(isinstance(p, int) for p in padding):
            padding = ((padding[0], padding[0]), (padding[1], padding[1]))
        self.padding = tuple(tuple(int(v) for v in p) for p in padding)
        if len(self.padding) != 2 or any(len(p) != 2 or min(p) < 0 for p in self.padding):
            raise self._error(f"padding must be an int, (h, w) or ((top, bottom), (left, "
                              f"right)) of non-negative ints, got {padding!r}.")
        self.data_format = data_format or "channels_last"

    def _spatial_axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self._error(f"expected input of rank 4, got shape {format_shape(input_shape)}.")
        shape = list(input_shape)
        for axis, (before, after) in zip(self._spatial_axes(), self.padding):
            shape[axis] = None if shape[axis] is None else shape[axis] + before + after
        return tuple(shape)

    def call(self, inputs):
        widths = [(0, 0)] * 4
        for axis, pair in zip(self._spatial_axes(), self.padding):
            widths[axis] = pair
        return ops.pad(inputs, widths)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": self.data_format}


