"""Reshaping layers: UpSampling1D/2D, RepeatVector, Permute, ZeroPadding1D, Cropping1D/2D.

All are built from differentiable shape ops (reshape, mul by ones to repeat, transpose, pad,
getitem, the per-axis linear map of ops.resize), so they need no backward of their own.
Channels-last; the 2-D layers also take data_format='channels_first', as in Keras.
"""

import math

import numpy as np

from .. import arguments, ops
from ..ops.resize import INTERPOLATIONS, resize
from .base import Layer, format_shape


def _check_rank(layer, input_shape, rank, layout):
    if len(input_shape) != rank:
        raise layer._error(f"expected input of rank {rank} {layout}, got shape "
                           f"{format_shape(input_shape)}.")


def _spatial_axes(data_format):
    return (2, 3) if data_format == "channels_first" else (1, 2)


def _image_layout(data_format):
    return ("(batch, channels, height, width)" if data_format == "channels_first"
            else "(batch, height, width, channels)")


def _pair(value, name, layer):
    """An int n as (n, n), or a pair of ints >= 0 (Keras's standardize_tuple, zeros allowed)."""
    return arguments.int_tuple(value, 2, name, layer, minimum=0)


def _repeat(x, axis, times):
    """Each entry of x repeated times along axis (np.repeat), as a broadcast product with ones:
    exact (x * 1.0 is x) and its gradient sums the copies back."""
    if times == 1:
        return x
    shape = x.shape
    spread = ops.reshape(x, (*shape[:axis + 1], 1, *shape[axis + 1:]))
    ones_shape = [1] * (len(shape) + 1)
    ones_shape[axis + 1] = times
    copies = ops.mul(spread, np.ones(ones_shape, dtype=x.dtype))
    return ops.reshape(copies, (*shape[:axis], shape[axis] * times, *shape[axis + 1:]))


def _check_output_size(layer, shape, input_shape):
    if None not in shape[1:]:
        arguments.check_elements(math.prod(shape[1:]), "one output sample", layer,
                                 f"the layer's arguments for input shape "
                                 f"{format_shape(input_shape)}")


class UpSampling1D(Layer):
    """Repeats each time step size times: (batch, steps, features) -> (batch, steps * size,
    features). Args: size (int >= 1). No weights."""

    single_input = True

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        self.size = arguments.positive_int(size, "size", self)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 3, "(batch, steps, features)")
        steps = None if input_shape[1] is None else input_shape[1] * self.size
        shape = (input_shape[0], steps, input_shape[2])
        _check_output_size(self, shape, input_shape)
        return shape

    def call(self, inputs):
        return _repeat(inputs, 1, self.size)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling2D(Layer):
    """Scales height and width by size = (sh, sw): 'nearest' repeats rows and columns,
    'bilinear' and 'bicubic' interpolate with half-pixel centres as Keras 3 on torch does
    (ops.resize; no antialiasing). Args: size, data_format, interpolation. No weights."""

    single_input = True

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.data_format(data_format, self)
        self.size = arguments.int_tuple(size, 2, "size", self)
        if isinstance(interpolation, str) and interpolation.lower() in ("lanczos3", "lanczos5"):
            raise self._error(f"interpolation {interpolation!r} is not supported (nor by Keras "
                              "on its torch backend); use 'nearest', 'bilinear' or 'bicubic'.")
        self.interpolation = arguments.choice(interpolation, INTERPOLATIONS,
                                              "interpolation", self)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 4, _image_layout(self.data_format))
        shape = list(input_shape)
        for axis, factor in zip(_spatial_axes(self.data_format), self.size):
            shape[axis] = None if shape[axis] is None else shape[axis] * factor
        _check_output_size(self, shape, input_shape)
        return tuple(shape)

    def call(self, inputs):
        axes = _spatial_axes(self.data_format)
        if self.interpolation == "nearest":
            for axis, factor in zip(axes, self.size):
                inputs = _repeat(inputs, axis, factor)
            return inputs
        size = tuple(inputs.shape[a] * f for a, f in zip(axes, self.size))
        return resize(inputs, size, self.interpolation, self.data_format)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size),
                "data_format": self.data_format, "interpolation": self.interpolation}


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times. No weights."""

    single_input = True

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = arguments.positive_int(n, "n", self)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 2, "(batch, features)")
        shape = (input_shape[0], self.n, input_shape[1])
        _check_output_size(self, shape, input_shape)
        return shape

    def call(self, inputs):
        return _repeat(ops.reshape(inputs, (inputs.shape[0], 1, inputs.shape[1])), 1, self.n)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Permute(Layer):
    """Permutes the non-batch axes: dims is a permutation of 1..rank-1, e.g. (2, 1) swaps the
    two axes of (batch, steps, features). No weights."""

    single_input = True

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        message = (f"dims must be a permutation of 1, 2, ..., k (the non-batch axes, 1-based), "
                   f"got {dims!r}.")
        if not isinstance(dims, (tuple, list)) or not all(arguments.is_int(d) for d in dims):
            raise arguments.fail(self, message, arguments.ArgumentTypeError)
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise self._error(message)
        self.dims = tuple(int(d) for d in dims)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != len(self.dims) + 1:
            raise self._error(f"dims {self.dims} permute {len(self.dims)} non-batch axes, so the "
                              f"input must have rank {len(self.dims) + 1}, got shape "
                              f"{format_shape(input_shape)}.")
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def call(self, inputs):
        return ops.transpose(inputs, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class ZeroPadding1D(Layer):
    """Pads the steps axis with zeros: padding int or (before, after). No weights."""

    single_input = True

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair(padding, "padding", self)
        self.data_format = arguments.data_format(data_format, self)

    def _axis(self):
        return 2 if self.data_format == "channels_first" else 1

    def compute_output_shape(self, input_shape):
        layout = ("(batch, features, steps)" if self.data_format == "channels_first"
                  else "(batch, steps, features)")
        _check_rank(self, input_shape, 3, layout)
        shape = list(input_shape)
        axis = self._axis()
        shape[axis] = None if shape[axis] is None else shape[axis] + sum(self.padding)
        _check_output_size(self, shape, input_shape)
        return tuple(shape)

    def call(self, inputs):
        widths = [(0, 0)] * 3
        widths[self._axis()] = self.padding
        return ops.pad(inputs, widths)

    def get_config(self):
        return {**super().get_config(), "padding": list(self.padding),
                "data_format": self.data_format}


class Cropping1D(Layer):
    """Removes cropping = (before, after) steps (an int: both) from (batch, steps, features).
    No weights."""

    single_input = True

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = _pair(cropping, "cropping", self)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 3, "(batch, steps, features)")
        steps = input_shape[1]
        if steps is not None and sum(self.cropping) >= steps:
            raise self._error(f"cropping {self.cropping} removes all {steps} steps of input "
                              f"shape {format_shape(input_shape)}; it must leave at least one.")
        return (input_shape[0], None if steps is None else steps - sum(self.cropping),
                input_shape[2])

    def call(self, inputs):
        before, after = self.cropping
        return ops.getitem(inputs, (slice(None), slice(before, inputs.shape[1] - after)))

    def get_config(self):
        return {**super().get_config(), "cropping": list(self.cropping)}


def _cropping_2d(value, layer):
    """An int, (symmetric height, symmetric width) or ((top, bottom), (left, right))."""
    message = (f"cropping must be an int, a pair (height, width) or a pair of pairs "
               f"((top, bottom), (left, right)) of ints >= 0, got {value!r}.")
    if arguments.is_int(value):
        value = (value, value)
    if not isinstance(value, (tuple, list)):
        raise arguments.fail(layer, message, arguments.ArgumentTypeError)
    if len(value) != 2:
        raise layer._error(message)
    return tuple(_pair(entry, "cropping", layer) for entry in value)


class Cropping2D(Layer):
    """Removes rows and columns at the image edges: cropping ((top, bottom), (left, right)),
    a pair (h, w) meaning ((h, h), (w, w)), or an int. No weights."""

    single_input = True

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = _cropping_2d(cropping, self)
        self.data_format = arguments.data_format(data_format, self)

    def compute_output_shape(self, input_shape):
        _check_rank(self, input_shape, 4, _image_layout(self.data_format))
        shape = list(input_shape)
        for axis, crop in zip(_spatial_axes(self.data_format), self.cropping):
            if shape[axis] is not None and sum(crop) >= shape[axis]:
                raise self._error(f"cropping {self.cropping} must leave at least one row and "
                                  f"column of input shape {format_shape(input_shape)}.")
            shape[axis] = None if shape[axis] is None else shape[axis] - sum(crop)
        return tuple(shape)

    def call(self, inputs):
        index = [slice(None)] * 4
        for axis, (before, after) in zip(_spatial_axes(self.data_format), self.cropping):
            index[axis] = slice(before, inputs.shape[axis] - after)
        return ops.getitem(inputs, tuple(index))

    def get_config(self):
        return {**super().get_config(), "cropping": [list(c) for c in self.cropping],
                "data_format": self.data_format}
