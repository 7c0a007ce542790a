"""Preprocessing layers of Keras 3: Rescaling, Normalization (with adapt) and Resizing.

They have no trainable weights; Normalization keeps Keras's non-trainable mean, variance and
count when it is adapted. All compute with differentiable ops, so gradients flow through them.
"""

import math

import numpy as np

from .. import arguments, ops
from ..ops import image
from ..ops.resize import resize
from ..tensor import Tensor
from .base import Layer, format_shape

EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation Normalization uses


def _numbers(value, name, layer):
    """A finite number, or a list/array of them (per-channel), as a float or a float list."""
    if arguments.is_number(value):
        return arguments.number(value, name, layer)
    array = arguments.as_array(value, name, layer).astype(np.float64)
    if array.ndim == 0:
        return float(array)
    if not np.all(np.isfinite(array)):
        raise layer._error(f"{name} must hold finite numbers, got {value!r}.")
    return array.tolist()


class Rescaling(Layer):
    """y = x * scale + offset, in training and inference (e.g. scale=1/255 maps [0, 255] to
    [0, 1]; scale=1/127.5, offset=-1 to [-1, 1]). Args: scale, offset (numbers, or one per
    channel on the last axis). Params: 0."""

    single_input = True
    supports_masking = True

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = _numbers(scale, "scale", self)
        self.offset = _numbers(offset, "offset", self)

    def compute_output_shape(self, input_shape):
        known = tuple(1 if s is None else s for s in input_shape)
        for name, value in (("scale", self.scale), ("offset", self.offset)):
            shape = np.shape(value)
            try:
                out = np.broadcast_shapes(known, shape)
            except ValueError:
                out = ()
            fits = len(out) == len(known) and all(
                o == k or s is None for o, k, s in zip(out, known, input_shape))
            if not fits:
                raise self._error(f"{name} of shape {shape} does not broadcast over inputs of "
                                  f"shape {format_shape(input_shape)} (one value per channel "
                                  "needs as many as the last axis).")
        return input_shape

    def call(self, inputs):
        scale = np.asarray(self.scale, dtype=inputs.dtype)
        offset = np.asarray(self.offset, dtype=inputs.dtype)
        return ops.add(ops.mul(inputs, scale), offset)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _axes(axis, layer):
    """Normalization's axis: None (one scalar mean), an int or a tuple of ints, as a tuple."""
    if axis is None:
        return ()
    if arguments.is_int(axis):
        return (int(axis),)
    if isinstance(axis, (tuple, list)):
        return tuple(arguments.integer(a, "axis", layer) for a in axis)
    raise arguments.fail(layer, f"axis must be an int, a tuple of ints or None, got {axis!r}.",
                         arguments.ArgumentTypeError)


class Normalization(Layer):
    """y = (x - mean) / max(sqrt(variance), 1e-7), one mean and variance per index of the kept
    ``axis`` (-1: per feature; None: one for all); invert=True computes the inverse.

    mean and variance are given, or computed from data by ``adapt(data)`` over every other
    axis. Adapted weights (non-trainable, as Keras): mean (kept dims), variance, count (int32,
    unused, kept for Keras's layout). Params: 2 * prod(kept dims) + 1 when adapted, else 0.
    """

    single_input = True
    supports_masking = True

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes(axis, self)
        self.invert = arguments.boolean(invert, "invert", self)
        if (mean is None) != (variance is None):
            raise self._error(f"pass both mean and variance, or neither; got mean={mean!r} and "
                              f"variance={variance!r}.")
        self.input_mean = self.input_variance = None
        if mean is not None:
            self.input_mean = arguments.as_array(mean, "mean", self).astype(np.float64)
            self.input_variance = arguments.as_array(variance, "variance", self).astype(
                np.float64)
            if self.input_mean.shape != self.input_variance.shape:
                raise self._error(f"mean and variance must have the same shape, got "
                                  f"{self.input_mean.shape} and {self.input_variance.shape}.")
            if self.input_mean.ndim > len(self.axis):
                raise self._error(f"mean of shape {self.input_mean.shape} has more axes than "
                                  f"axis {self.axis} keeps.")
            if np.any(self.input_variance < 0) or not np.all(np.isfinite(
                    [self.input_mean, self.input_variance])):
                raise self._error("mean and variance must be finite and variance >= 0.")

    def _keep(self, input_shape):
        """The kept axes (non-negative, sorted) of an input of this shape."""
        rank = len(input_shape)
        if any(not -rank <= a < rank for a in self.axis):
            raise self._error(f"axis {self.axis} is out of range for an input of shape "
                              f"{format_shape(input_shape)}.")
        keep = tuple(sorted(a % rank for a in self.axis))
        unknown = [a for a in keep if input_shape[a] is None]
        if unknown:
            raise self._error(f"the kept axis {unknown[0]} of {format_shape(input_shape)} must "
                              "be known (axis=None normalizes with one scalar mean).")
        return keep

    def compute_output_shape(self, input_shape):
        keep = self._keep(input_shape)
        if self.built:
            kept = tuple(input_shape[a] for a in keep)
            if len(input_shape) != len(self._shape) or kept != self._kept_sizes:
                raise self._error(f"was built for inputs of shape {format_shape(self._shape)} "
                                  f"(kept axes {keep} of sizes {self._kept_sizes}), got "
                                  f"{format_shape(input_shape)}.")
        return input_shape

    def build(self, input_shape):
        keep = self._keep(input_shape)
        self._shape, self._keep_axes = tuple(input_shape), keep
        self._kept_sizes = tuple(input_shape[a] for a in keep)
        self._reduce = tuple(a for a in range(len(input_shape)) if a not in keep)
        self._broadcast = tuple(input_shape[a] if a in keep else 1
                                for a in range(len(input_shape)))
        if self.input_mean is None:
            self.mean = self.add_weight("mean", self._kept_sizes, "zeros", trainable=False)
            self.variance = self.add_weight("variance", self._kept_sizes, "ones",
                                            trainable=False)
            self.count = self.add_weight("count", (), "zeros", trainable=False, dtype="int32")
            # NOTE: Layer.add_weight makes a float32 Variable whatever dtype it is given; Keras's
            # count is int32 (it shows in get_weights and the saved file), so keep it int32.
            self.count.data = self.count.data.astype(np.int32)
            return
        # given values align with the kept axes from the right, as Keras broadcasts them
        expanded = [1] * len(input_shape)
        for i, size in enumerate(self.input_mean.shape[::-1], start=1):
            expanded[keep[-i]] = size
        try:
            self._given = [np.broadcast_to(v.reshape(expanded), self._broadcast)
                           for v in (self.input_mean, self.input_variance)]
        except ValueError:
            raise self._error(f"mean of shape {self.input_mean.shape} does not broadcast to the "
                              f"kept sizes {self._kept_sizes} of inputs "
                              f"{format_shape(input_shape)}.") from None

    def adapt(self, data):
        """Set mean and variance to those of data (an array, or an iterable of batches, each an
        array or an (x, y, ...) tuple) over every axis but the kept ones."""
        if self.input_mean is not None:
            raise self._error("was given mean and variance; adapt() would ignore them. Create "
                              "it without mean and variance to adapt it.")
        if isinstance(data, (np.ndarray, Tensor)):
            batches = iter([data])
        elif hasattr(data, "__iter__"):
            batches = iter(data)
        else:
            raise arguments.fail(self, f"adapt() takes an array or an iterable of batches, got "
                                 f"{type(data).__name__}.", arguments.ArgumentTypeError)
        count, mean, var = 0, 0.0, 0.0
        for batch in batches:
            if isinstance(batch, tuple):
                batch = batch[0]
            if not hasattr(batch, "shape"):  # as Keras: a list of rows is not a list of batches
                raise arguments.fail(self, f"adapt() takes an array or an iterable of array "
                                     f"batches, got a batch of type {type(batch).__name__}; "
                                     "pass np.asarray(data) for one array.",
                                     arguments.ArgumentTypeError)
            batch = arguments.as_array(batch, "adapt() data", self).astype(np.float64)
            if not self.built:
                self.build_for(tuple(batch.shape))
            else:
                self.compute_output_shape(tuple(batch.shape))
            n = math.prod(batch.shape[a] for a in self._reduce)
            batch_mean = batch.mean(axis=self._reduce)
            batch_var = batch.var(axis=self._reduce)
            # merge the statistics of the batches seen so far with this batch's (Chan et al.)
            total = count + n
            delta = batch_mean - mean
            mean = mean + delta * (n / total)
            var = (var * count + batch_var * n) / total + delta ** 2 * (count * n / total ** 2)
            count = total
        if count == 0:
            raise self._error("adapt() received no data (an empty iterable).")
        self.mean.assign(np.asarray(mean, dtype=self.dtype))
        self.variance.assign(np.asarray(var, dtype=self.dtype))

    def call(self, inputs):
        if self.input_mean is None:
            mean = ops.reshape(self.mean, self._broadcast)
            std = ops.reshape(ops.sqrt(self.variance), self._broadcast)
        else:
            mean = self._given[0].astype(inputs.dtype)
            std = np.sqrt(self._given[1]).astype(inputs.dtype)
        std = ops.clip(std, min=EPSILON)
        if self.invert:
            return ops.add(mean, ops.mul(inputs, std))
        return ops.div(ops.sub(inputs, mean), std)

    def get_config(self):
        def listed(value):
            return None if value is None else value.tolist()

        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": listed(self.input_mean), "variance": listed(self.input_variance)}


_NOT_SUPPORTED = ("bicubic", "lanczos3", "lanczos5", "area", "gaussian", "mitchellcubic")


class Resizing(Layer):
    """Resize images (N, H, W, C) to (N, height, width, C) as Keras 3 on torch does.

    Args: height, width; interpolation 'bilinear' (half-pixel centres) or 'nearest';
    crop_to_aspect_ratio (centre crop to the target's ratio first) or pad_to_aspect_ratio (pad
    with fill_value first); data_format. A rank-3 input is one image. Params: 0.
    """

    single_input = True

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.height = arguments.positive_int(height, "height", self)
        self.width = arguments.positive_int(width, "width", self)
        if isinstance(interpolation, str) and interpolation.lower() in _NOT_SUPPORTED:
            raise self._error(f"interpolation {interpolation!r} is not implemented in shenjing; "
                              "use 'bilinear' or 'nearest'.")
        self.interpolation = arguments.choice(interpolation, image.INTERPOLATIONS,
                                              "interpolation", self)
        self.crop_to_aspect_ratio = arguments.boolean(crop_to_aspect_ratio,
                                                      "crop_to_aspect_ratio", self)
        self.pad_to_aspect_ratio = arguments.boolean(pad_to_aspect_ratio, "pad_to_aspect_ratio",
                                                     self)
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise self._error("pass crop_to_aspect_ratio or pad_to_aspect_ratio, not both.")
        # Keras's torch backend resizes with fill_mode 'constant' only
        self.fill_mode = arguments.choice(fill_mode, ("constant",), "fill_mode", self)
        self.fill_value = arguments.number(fill_value, "fill_value", self)
        self.antialias = arguments.boolean(antialias, "antialias", self)
        if self.antialias and self.interpolation == "bilinear":
            raise self._error("antialias=True is not implemented in shenjing; resize with "
                              "antialias=False (or downscale in steps of at most 2).")
        self.data_format = arguments.data_format(data_format, self)

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise self._error(f"expected images of rank 4 (batch, height, width, channels) or "
                              f"3 (one image), got shape {format_shape(input_shape)}.")
        shape = list(input_shape)
        first = len(shape) - 3 + (1 if self.data_format == "channels_first" else 0)
        shape[first:first + 2] = [self.height, self.width]
        per_image = shape[-3:]
        if None not in per_image:
            arguments.check_elements(math.prod(per_image), "one output image", self,
                                     f"height {self.height} and width {self.width}")
        return tuple(shape)

    def call(self, inputs):
        single = inputs.ndim == 3
        x = ops.reshape(inputs, (1, *inputs.shape)) if single else inputs
        y = resize(x, (self.height, self.width), self.interpolation, self.data_format,
                   crop_to_aspect_ratio=self.crop_to_aspect_ratio,
                   pad_to_aspect_ratio=self.pad_to_aspect_ratio, fill_value=self.fill_value)
        return ops.reshape(y, y.shape[1:]) if single else y

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias,
                "data_format": self.data_format}
