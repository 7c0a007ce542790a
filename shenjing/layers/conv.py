"""Convolution layers: Conv1D, Conv2D (channels-last; channels_first accepted) and
ZeroPadding2D."""

import math

from .. import arguments, ops
from ..ops.conv import conv_output_length, resolve_padding
from .base import Layer, format_shape
from .core import kernel_options_config, set_kernel_options


def _tuple(value, rank, what, layer):
    """value (an int or rank of them) as a tuple of rank positive ints (Keras's wording)."""
    return arguments.int_tuple(value, rank, what, layer)


def _padding(value, rank, layer):
    """'valid' or 'same' (any case), an int, or per-axis ints or (before, after) pairs, all
    >= 0 and at most arguments.MAX_ELEMENTS; refused here rather than when the op pads."""
    example = "(left, right)" if rank == 1 else "((top, bottom), (left, right))"
    message = (f"padding must be 'valid', 'same', an int or explicit pairs like {example}, "
               f"got {value!r}.")
    if isinstance(value, str):
        if value.lower() not in ("valid", "same"):
            raise layer._error(message)
        return value.lower()
    try:
        pads = resolve_padding(value, (1,) * rank, (1,) * rank, (1,) * rank, (1,) * rank)
    except ValueError as error:
        kind = arguments.ArgumentError if isinstance(value, (int, tuple, list)) \
            else arguments.ArgumentTypeError
        raise arguments.fail(layer, message, kind) from error
    if max(max(pair) for pair in pads) > arguments.MAX_ELEMENTS:
        raise layer._error(message)
    return value


def _zero_padding(value, layer):
    """ZeroPadding2D's padding as ((top, bottom), (left, right)) of ints >= 0."""
    message = (f"padding must be an int, (h, w) or ((top, bottom), (left, right)) of "
               f"non-negative ints, got {value!r}.")
    if arguments.is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise arguments.fail(layer, message, arguments.ArgumentTypeError)
    pairs = []
    for entry in value:
        pair = (entry, entry) if arguments.is_int(entry) else entry
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise arguments.fail(layer, message, arguments.ArgumentTypeError)
        pairs.append(tuple(arguments.non_negative_int(v, "padding", layer) for v in pair))
    return tuple(pairs)


def check_window_sizes(layer, input_shape, spatial, channels, window, strides, dilations,
                       padding, what):
    """Refuse, before anything is allocated, a (padded) input or output of one sample larger
    than arguments.MAX_ELEMENTS values: absurd padding, dilation or windows would otherwise
    fail in NumPy with a MemoryError or an OverflowError."""
    known = [n is not None for n in spatial]
    if not all(known) or channels is None:
        return
    pads = resolve_padding(padding, spatial, window, strides, dilations)
    padded = [n + before + after for n, (before, after) in zip(spatial, pads)]
    culprit = (f"{what}, strides {tuple(strides)}, dilation {tuple(dilations)} and padding "
               f"{padding!r} for input shape {format_shape(input_shape)}")
    arguments.check_elements(math.prod(padded) * channels, "one padded input sample", layer,
                             culprit)


# NOTE: 'same' padding for a dilated kernel that spans far past the input: refused when the
# padded sample would be this many times the input sample and over MAX_SAME_PADDED values.
# Conv1D(1, 3, dilation_rate=10**8, padding='same') on 8 steps padded to 2 * 10**8 (1.5 GB)
# to read the input through one tap of three; WaveNet-like stacks (dilation 512 on a few
# hundred steps) stay far below both bounds.
SAME_PADDING_RATIO, MAX_SAME_PADDED = 16, 2**20


def check_dilated_extent(layer, input_shape, spatial, channels):
    """Refuse, at build, a dilated kernel whose 'same' padding would be mostly what it reads:
    each output reads the input through at most ceil(n / dilation) of its taps."""
    if layer.padding != "same" or None in spatial or channels is None:
        return
    pads = resolve_padding("same", spatial, layer.kernel_size, layer.strides,
                           layer.dilation_rate)
    padded = math.prod(n + before + after for n, (before, after) in zip(spatial, pads))
    if padded <= max(SAME_PADDING_RATIO * math.prod(spatial), MAX_SAME_PADDED // channels):
        return
    for n, k, d in zip(spatial, layer.kernel_size, layer.dilation_rate):
        extent = d * (k - 1) + 1
        if extent > n and k > 1:
            raise layer._error(
                f"kernel_size {layer.kernel_size} with dilation_rate {layer.dilation_rate} "
                f"spans {extent:,} steps, far beyond the input's {n} (input shape "
                f"{format_shape(input_shape)}): with padding 'same' each output reads the input "
                f"through at most {-(-n // d)} of its {k} taps, the others read padding, and the "
                f"padded input would hold {padded * channels:,} values per sample. Use a "
                f"smaller dilation_rate or kernel_size (a span of at most {n} steps here).")


def set_weight_options(layer, data_format, activation, use_bias, kernel_initializer,
                       bias_initializer, kernel_regularizer, bias_regularizer, kernel="kernel"):
    """The arguments every convolution-like layer shares, checked and resolved onto layer."""
    layer.data_format = arguments.data_format(data_format, layer)
    set_kernel_options(layer, activation, use_bias, kernel_initializer, bias_initializer,
                       kernel_regularizer, bias_regularizer, kernel=kernel)


class ConvBase(Layer):
    """Shared by every convolution layer (Conv, ConvTranspose, DepthwiseConv, SeparableConv):
    the window's arguments, input checks, output sizes, data formats and activation."""

    single_input = True
    rank = 2

    def _set_window(self, kernel_size, strides, dilation_rate):
        self.kernel_size = _tuple(kernel_size, self.rank, "kernel_size", self)
        self.strides = _tuple(strides, self.rank, "strides", self)
        self.dilation_rate = _tuple(dilation_rate, self.rank, "dilation_rate", self)

    def _split(self, input_shape):
        """(batch, spatial sizes, channels) whatever the data format."""
        if self.data_format == "channels_first":
            return input_shape[0], input_shape[2:], input_shape[1]
        return input_shape[0], input_shape[1:-1], input_shape[-1]

    def _built_channels(self):
        """The input channels the weights were built for."""
        return self.kernel.shape[-2]

    def _check_input(self, input_shape):
        """(batch, spatial sizes, channels) of an input this layer takes, else an error."""
        kind = "(batch, steps, channels)" if self.rank == 1 else "(batch, height, width, channels)"
        if len(input_shape) != self.rank + 2:
            raise self._error(f"expected input of rank {self.rank + 2} {kind}, got shape "
                              f"{format_shape(input_shape)}.")
        batch, spatial, channels = self._split(input_shape)
        if channels is None:
            raise self._error(f"the channel axis of {format_shape(input_shape)} must be known.")
        if self.built and channels != self._built_channels():
            raise self._error(f"expected {self._built_channels()} input channels (as built), "
                              f"got {channels} (input shape {format_shape(input_shape)}).")
        return batch, spatial, channels

    def _window_sizes(self, input_shape, spatial, channels):
        """The output size per spatial axis (None where unknown) of the kernel's window."""
        check_window_sizes(self, input_shape, spatial, channels, self.kernel_size, self.strides,
                           self.dilation_rate, self.padding, f"kernel_size {self.kernel_size}")
        check_dilated_extent(self, input_shape, spatial, channels)
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
        return sizes

    def _axis_padding(self, axis):
        if isinstance(self.padding, (str, int)):
            return self.padding
        pads = self.padding if self.rank > 1 else (self.padding,)
        entry = pads[axis]  # an int (both sides) or a (before, after) pair
        return entry if isinstance(entry, int) else tuple(entry)

    def compute_output_shape(self, input_shape):
        batch, spatial, channels = self._check_input(input_shape)
        self._check_kernel(input_shape, channels)
        sizes = self._sizes(input_shape, spatial, channels)
        out = self._out_channels(channels)
        return (batch, out, *sizes) if self.data_format == "channels_first" else (
            batch, *sizes, out)

    def _check_kernel(self, input_shape, channels):
        """Refuse weights too large for input_shape's channels (arguments.check_elements)."""
        raise NotImplementedError

    def _sizes(self, input_shape, spatial, channels):
        """The output size per spatial axis; a transposed conv has its own."""
        return self._window_sizes(input_shape, spatial, channels)

    def _out_channels(self, channels):
        raise NotImplementedError

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
        """The window's entries and those of set_weight_options; subclasses add their own."""
        padding = self.padding
        if not isinstance(padding, (str, int)):
            padding = [p if isinstance(p, int) else list(p) for p in padding]
        return {
            **super().get_config(), "kernel_size": list(self.kernel_size),
            "strides": list(self.strides), "padding": padding, "data_format": self.data_format,
            "dilation_rate": list(self.dilation_rate),
        }


class _Conv(ConvBase):
    """Shared by Conv1D and Conv2D: kernel (*kernel_size, C, filters), bias (filters,)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = arguments.positive_int(filters, "filters", self)
        self._set_window(kernel_size, strides, dilation_rate)
        self.padding = _padding(padding, self.rank, self)
        set_weight_options(self, data_format, activation, use_bias, kernel_initializer,
                           bias_initializer, kernel_regularizer, bias_regularizer)

    def _check_kernel(self, input_shape, channels):
        arguments.check_elements(math.prod(self.kernel_size) * channels * self.filters,
                                 "the kernel", self, f"kernel_size {self.kernel_size} and "
                                 f"filters {self.filters} for input shape "
                                 f"{format_shape(input_shape)}")

    def _out_channels(self, channels):
        return self.filters

    def _kernel_shape(self, channels):
        return (*self.kernel_size, channels, self.filters)

    def build(self, input_shape):
        channels = self._split(input_shape)[2]
        self.kernel = self.add_weight("kernel", self._kernel_shape(channels),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                        regularizer=self.bias_regularizer)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                **kernel_options_config(self)}


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

    single_input = True

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _zero_padding(padding, self)
        self.data_format = arguments.data_format(data_format, self)

    def _spatial_axes(self):
        return (2, 3) if self.data_format == "channels_first" else (1, 2)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise self._error(f"expected input of rank 4, got shape {format_shape(input_shape)}.")
        shape = list(input_shape)
        for axis, (before, after) in zip(self._spatial_axes(), self.padding):
            shape[axis] = None if shape[axis] is None else shape[axis] + before + after
        if None not in shape[1:]:
            arguments.check_elements(math.prod(shape[1:]), "one output sample", self,
                                     f"padding {self.padding} for input shape "
                                     f"{format_shape(input_shape)}")
        return tuple(shape)

    def call(self, inputs):
        widths = [(0, 0)] * 4
        for axis, pair in zip(self._spatial_axes(), self.padding):
            widths[axis] = pair
        return ops.pad(inputs, widths)

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding],
                "data_format": self.data_format}


