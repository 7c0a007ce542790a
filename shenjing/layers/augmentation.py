"""Random image augmentation layers of Keras 3: RandomFlip, RandomRotation, RandomTranslation,
RandomZoom, RandomContrast.

Each draws one set of parameters per image (vectorized over the batch) and applies them only
when training; at inference (``training=False``, as predict and evaluate call them) the
output is the input. Called directly, ``layer(images)`` augments, as in Keras (training
defaults to True there). As in Keras, ``get_random_transformation(images)`` returns the
parameters as a dict of arrays (Keras's keys) and ``transform_images(images, transformation)``
applies them. seed=None draws from shenjing's generator (``shenjing.utils.set_seed``); an int
seed gives the layer a stream of its own. The geometric layers sample with
``ops.image.affine_transform`` (differentiable in the images, as is every op used here).
"""

import math

import numpy as np

from .. import arguments, ops, utils
from ..ops import image
from ..tensor import as_tensor
from .base import Layer, format_shape

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


def _as_given(value):
    """A factor as the user gave it (a number or a pair), with plain floats, for get_config."""
    return [float(v) for v in value] if isinstance(value, (tuple, list)) else float(value)


def _factor(value, name, layer, low=-1.0, high=1.0, low_open=False):
    """A number f (the range (max(-|f|, low), |f|)) or a pair of numbers (sorted) with each in
    [low, high] ((low, high] with low_open), as the (lower, upper) range to draw from."""
    def check(v):
        return arguments.number(v, name, layer, low, high, low_open=low_open)

    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise layer._error(f"{name} must be a number or a pair (lower, upper), got "
                               f"{value!r}.")
        lower, upper = sorted(check(v) for v in value)
        return lower, upper
    f = abs(check(value))
    return max(-f, low), f


class _Augmentation(Layer):
    """Shared by the random layers: seed, data_format, rank checks, training switch."""

    single_input = True

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = None if seed is None else arguments.non_negative_int(seed, "seed", self)
        self.data_format = arguments.data_format(data_format, self)
        self._generator = None if self.seed is None else np.random.default_rng(self.seed)

    def __call__(self, inputs, *args, training=None, **kwargs):
        # Keras: a direct call augments; a model passes training=False outside fit
        training = True if training is None else training
        return super().__call__(inputs, *args, training=training, **kwargs)

    def _rng(self, seed=None):
        if isinstance(seed, np.random.Generator):
            return seed
        if seed is not None:
            return np.random.default_rng(seed)
        return self._generator if self._generator is not None else utils.get_rng()

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise self._error(f"expected images of rank 4 (batch, height, width, channels) or "
                              f"3 (one image), got shape {format_shape(input_shape)}.")
        return input_shape

    def _size(self, shape):
        """(batch, height, width) of a rank-3 (one image) or rank-4 shape."""
        self.compute_output_shape(shape)  # other ranks: an error naming the layer
        batch = shape[0] if len(shape) == 4 else 1
        if self.data_format == "channels_last":
            return batch, shape[-3], shape[-2]
        return batch, shape[-2], shape[-1]

    def call(self, inputs, training=True):
        if not training:
            return inputs
        return self.transform_images(inputs, self.get_random_transformation(inputs))

    def transform_images(self, images, transformation, training=True):
        """images with the given parameters applied (unchanged if not training)."""
        images = as_tensor(images)
        if not training or transformation is None:
            return images
        single = images.ndim == 3
        x = ops.reshape(images, (1, *images.shape)) if single else images
        y = self._transform(x, transformation)
        return ops.reshape(y, y.shape[1:]) if single else y

    def get_config(self):
        return {**super().get_config(), "seed": self.seed, "data_format": self.data_format}


class _AffineAugmentation(_Augmentation):
    """The geometric layers: an (N, 8) transform per batch, sampled with fill_mode and
    interpolation."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.fill_mode = arguments.choice(fill_mode, FILL_MODES, "fill_mode", self)
        self.interpolation = arguments.choice(interpolation, image.INTERPOLATIONS,
                                              "interpolation", self)
        self.fill_value = arguments.number(fill_value, "fill_value", self)

    def _sample(self, images, matrix):
        return image.affine_transform(images, matrix, self.interpolation, self.fill_mode,
                                      self.fill_value, self.data_format)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomFlip(_Augmentation):
    """Flip each image with probability 1/2: mode 'horizontal' (left-right), 'vertical'
    (up-down) or 'horizontal_and_vertical' (as Keras, one draw flips both ways: a 180-degree
    turn or nothing). Params: 0."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = arguments.choice(mode, ("horizontal", "vertical", "horizontal_and_vertical"),
                                     "mode", self, lower=False)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        shape = tuple(as_tensor(data).shape)
        batch = self._size(shape)[0]
        flips = self._rng(seed).random(batch) <= 0.5
        return {"flips": flips.reshape((batch, 1, 1, 1) if len(shape) == 4 else (1, 1, 1)),
                "input_shape": shape}

    def _transform(self, x, transformation):
        flips = np.asarray(transformation["flips"], dtype=bool).reshape(-1, 1)
        rank_axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        index = [np.arange(size) for size in x.shape]
        for axis, flip_mode in zip(rank_axes, ("vertical", "horizontal")):
            if self.mode in (flip_mode, "horizontal_and_vertical"):
                positions = index[axis]
                index[axis] = np.where(flips, positions[::-1], positions)  # (N, size)
        # one gather for the whole batch: each index array broadcast on its own axis
        grid = []
        for axis, positions in enumerate(index):
            shape = [1] * x.ndim
            if positions.ndim == 2:
                shape[0] = positions.shape[0]
            shape[axis] = positions.shape[-1]
            grid.append(positions.reshape(shape))
        return ops.getitem(x, tuple(grid))

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def affine_matrix(angle, height, width, translate=(0.0, 0.0), scale=1.0):
    """Keras's (N, 8) rotation matrix about the image centre ((W - 1)/2, (H - 1)/2) for angles
    in degrees: [cos, -sin, a2, sin, cos, b2, 0, 0] maps output (x, y) to input pixels."""
    theta = np.asarray(angle, dtype=np.float64) * (math.pi / 180.0)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    a0, a1 = scale * np.cos(theta), -scale * np.sin(theta)
    b0, b1 = scale * np.sin(theta), scale * np.cos(theta)
    a2 = translate[0] + cx - cx * a0 - cy * a1
    b2 = translate[1] + cy - cx * b0 - cy * b1
    zeros = np.zeros_like(theta)
    return np.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=-1).astype(np.float32)


class RandomRotation(_AffineAugmentation):
    """Rotate each image by an angle drawn uniformly from factor * 360 degrees about its centre.

    factor: f (the range [-f, f]) or (lower, upper), fractions of a full turn in [-1, 1].
    fill_mode 'reflect', 'wrap', 'constant' (fill_value) or 'nearest'; interpolation
    'bilinear' or 'nearest'. Params: 0.
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor(factor, "factor", self)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        shape = tuple(as_tensor(data).shape)
        batch, height, width = self._size(shape)
        lower, upper = self.factor
        angle = self._rng(seed).uniform(lower * 360.0, upper * 360.0, batch).astype(np.float32)
        matrix = affine_matrix(angle, height, width)
        return {"angle": angle, "rotation_matrix": matrix if len(shape) == 4 else matrix[0],
                "image_height": height, "image_width": width, "batch_size": batch}

    def _transform(self, x, transformation):
        return self._sample(x, transformation["rotation_matrix"])

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


class RandomTranslation(_AffineAugmentation):
    """Shift each image by fractions of its height and width drawn uniformly from
    height_factor and width_factor (f: [-f, f], or (lower, upper), each in [-1, 1]; positive
    moves down / right). fill_mode and interpolation as RandomRotation. Params: 0."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_range = _factor(height_factor, "height_factor", self)
        self.width_range = _factor(width_factor, "width_factor", self)
        self.height_factor, self.width_factor = _as_given(height_factor), _as_given(width_factor)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        shape = tuple(as_tensor(data).shape)
        batch, height, width = self._size(shape)
        rng = self._rng(seed)
        dy = rng.uniform(*self.height_range, (batch, 1)) * height
        dx = rng.uniform(*self.width_range, (batch, 1)) * width
        return {"translations": np.concatenate([dx, dy], axis=1).astype(np.float32),
                "input_shape": shape}

    def _transform(self, x, transformation):
        shift = np.asarray(transformation["translations"], dtype=np.float64)
        ones, zeros = np.ones(len(shift)), np.zeros(len(shift))
        matrix = np.stack([ones, zeros, -shift[:, 0], zeros, ones, -shift[:, 1], zeros, zeros],
                          axis=1)
        return self._sample(x, matrix)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomZoom(_AffineAugmentation):
    """Zoom each image about its centre: the sampled region is (1 + z) times the image along
    each axis, z drawn from height_factor (f: [-f, f], or (lower, upper), each in (-1, 1];
    negative zooms in) and width_factor (None: the same z for both). Params: 0."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_range = _factor(height_factor, "height_factor", self, low_open=True)
        self.width_range = None if width_factor is None else _factor(
            width_factor, "width_factor", self, low_open=True)
        self.height_factor = _as_given(height_factor)
        self.width_factor = None if width_factor is None else _as_given(width_factor)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        shape = tuple(as_tensor(data).shape)
        batch = self._size(shape)[0]
        rng = self._rng(seed)
        lower, upper = self.height_range
        height_zoom = rng.uniform(1.0 + lower, 1.0 + upper, (batch, 1)).astype(np.float32)
        width_zoom = height_zoom
        if self.width_range is not None:
            lower, upper = self.width_range
            width_zoom = rng.uniform(1.0 + lower, 1.0 + upper, (batch, 1)).astype(np.float32)
        return {"height_zoom": height_zoom, "width_zoom": width_zoom, "input_shape": shape}

    def _transform(self, x, transformation):
        _, height, width = self._size(x.shape)
        zx = np.asarray(transformation["width_zoom"], dtype=np.float64).reshape(-1)
        zy = np.asarray(transformation["height_zoom"], dtype=np.float64).reshape(-1)
        zeros = np.zeros_like(zx)
        matrix = np.stack([zx, zeros, (width - 1) / 2 * (1 - zx), zeros, zy,
                           (height - 1) / 2 * (1 - zy), zeros, zeros], axis=1)
        return self._sample(x, matrix)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor,
                "width_factor": self.width_factor}


class RandomContrast(_Augmentation):
    """y = clip((x - mean) * c + mean, *value_range), mean per image and channel over height
    and width, c drawn per image from [1 - lower, 1 + upper].

    factor: f in [0, 1] gives (lower, upper) = (0, f), as Keras 3 computes it (so c is in
    [1, 1 + f]; pass (f, f) for [1 - f, 1 + f]); value_range: (low, high) of the images.
    Params: 0.
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = _factor(factor, "factor", self, low=0.0)
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise self._error(f"value_range must be a pair (low, high), got {value_range!r}.")
        low, high = (arguments.number(v, "value_range", self) for v in value_range)
        if low >= high:
            raise self._error(f"value_range must have low < high, got {value_range!r}.")
        self.value_range = (low, high)

    def get_random_transformation(self, data, training=True, seed=None):
        shape = tuple(as_tensor(data).shape)
        batch = self._size(shape)[0]
        factor_shape = (batch, 1, 1, 1) if len(shape) == 4 else (1, 1, 1)
        if not training:
            return {"contrast_factor": np.zeros(factor_shape, dtype=np.float32)}
        lower, upper = self.factor
        factor = self._rng(seed).uniform(1.0 - lower, 1.0 + upper, factor_shape)
        return {"contrast_factor": factor.astype(np.float32)}

    def _transform(self, x, transformation):
        factor = np.asarray(transformation["contrast_factor"], dtype=x.dtype).reshape(
            -1, 1, 1, 1)
        axes = (1, 2) if self.data_format == "channels_last" else (2, 3)
        mean = ops.mean(x, axis=axes, keepdims=True)
        y = ops.add(ops.mul(ops.sub(x, mean), factor), mean)
        return ops.clip(y, *self.value_range)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor),
                "value_range": list(self.value_range)}
