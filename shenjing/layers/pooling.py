"""Pooling (sub-sampling) layers: max and average over windows, and global pooling."""

from .. import arguments, ops
from ..ops.conv import conv_output_length
from ..ops.pool import pool_geometry
from .base import Layer, format_shape
from .conv import check_window_sizes


class _Pooling(Layer):
    """Shared by the windowed pooling layers; strides default to pool_size (Keras)."""

    single_input = True
    rank = 2
    op = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = arguments.int_tuple(pool_size, self.rank, "pool_size", self)
        self.strides = self.pool_size if strides is None else arguments.int_tuple(
            strides, self.rank, "strides", self)
        self.padding = arguments.choice(padding, ("valid", "same"), "padding", self)
        self.data_format = arguments.data_format(data_format, self)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise self._error(f"expected input of rank {self.rank + 2}, got shape "
                              f"{format_shape(input_shape)}.")
        first = self.data_format == "channels_first"
        spatial = input_shape[2:] if first else input_shape[1:-1]
        channels = input_shape[1] if first else input_shape[-1]
        window, padding = self.pool_size, self.padding
        if self.padding == "same" and None not in spatial:
            # the op cuts a 'same' window reaching past the input to what it can read (see
            # ops.pool.pool_geometry): MaxPooling1D(10**9, padding='same') pools 8 steps fast
            window, padding, _ = pool_geometry(type(self).__name__, spatial, self.pool_size,
                                               self.strides, "same")
        check_window_sizes(self, input_shape, spatial, channels, window, self.strides,
                           (1,) * self.rank, padding, f"pool_size {self.pool_size}")
        sizes = []
        for n, k, s in zip(spatial, self.pool_size, self.strides):
            size = None if n is None else conv_output_length(n, k, s, self.padding, 1)
            if size is not None and size < 1:
                raise self._error(
                    f"input shape {format_shape(input_shape)} is smaller than pool_size "
                    f"{self.pool_size} with padding 'valid'; use padding='same' or a smaller pool."
                )
            sizes.append(size)
        if first:
            return (input_shape[0], input_shape[1], *sizes)
        return (input_shape[0], *sizes, input_shape[-1])

    def call(self, inputs, relu=False):
        """relu (max pooling): relu(pool(x)) in one op (models.fusion asks for it in place of
        a ReLU layer that feeds this one)."""
        first = self.data_format == "channels_first"
        if first:
            inputs = ops.transpose(inputs, (0, *range(2, self.rank + 2), 1))
        pool = self.pool_size if self.rank > 1 else self.pool_size[0]
        strides = self.strides if self.rank > 1 else self.strides[0]
        extra = {"relu": True} if relu else {}
        y = type(self).op(inputs, pool, strides, self.padding, **extra)
        if first:
            y = ops.transpose(y, (0, self.rank + 1, *range(1, self.rank + 1)))
        return y

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size),
                "strides": list(self.strides), "padding": self.padding,
                "data_format": self.data_format}


class MaxPooling2D(_Pooling):
    """Max over each pool_size window of (batch, height, width, channels)."""

    rank, op = 2, staticmethod(ops.max_pool2d)


class AveragePooling2D(_Pooling):
    """Mean over each window; with 'same' padding only real pixels are counted (Keras)."""

    rank, op = 2, staticmethod(ops.avg_pool2d)


class MaxPooling1D(_Pooling):
    """Max over each window of (batch, steps, channels)."""

    rank, op = 1, staticmethod(ops.max_pool1d)


class AveragePooling1D(_Pooling):
    """Mean over each window of (batch, steps, channels)."""

    rank, op = 1, staticmethod(ops.avg_pool1d)


class _GlobalPooling(Layer):
    """Reduce every spatial axis: (batch, ..., channels) -> (batch, channels)."""

    single_input = True
    rank = 2
    op = None

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = arguments.data_format(data_format, self)
        self.keepdims = arguments.boolean(keepdims, "keepdims", self)

    def _axes(self):
        first = self.data_format == "channels_first"
        return tuple(range(2, self.rank + 2)) if first else tuple(range(1, self.rank + 1))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise self._error(f"expected input of rank {self.rank + 2}, got shape "
                              f"{format_shape(input_shape)}.")
        axes = self._axes()
        if self.keepdims:
            return tuple(1 if i in axes else n for i, n in enumerate(input_shape))
        return tuple(n for i, n in enumerate(input_shape) if i not in axes)

    def call(self, inputs):
        return type(self).op(inputs, axis=self._axes(), keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling):
    rank, op = 2, staticmethod(ops.mean)


class GlobalMaxPooling2D(_GlobalPooling):
    rank, op = 2, staticmethod(ops.max)


class GlobalAveragePooling1D(_GlobalPooling):
    rank, op = 1, staticmethod(ops.mean)


class GlobalMaxPooling1D(_GlobalPooling):
    rank, op = 1, staticmethod(ops.max)
