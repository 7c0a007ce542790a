"""Activation functions as layers, with Keras 3's arguments: ReLU, LeakyReLU, PReLU, ELU,
Softmax. Each keeps its input's mask; Softmax also applies it (masked entries get 0).

Composed of differentiable ops (relu, where, clip, leaky_relu, elu, softmax, ...), so the
gradients at the kinks are PyTorch's, as for Keras on its torch backend.
"""

import warnings

import numpy as np

from .. import arguments, initializers, ops, regularizers
from ..tensor import Tensor
from .base import Layer, format_shape


class ReLU(Layer):
    """y = min(x, max_value) for x > threshold, else negative_slope * (x - threshold).

    Keras 3's form: relu(x) thresholded, clipped to [0, max_value], minus
    negative_slope * relu(threshold - x). Args: max_value (None or >= 0), negative_slope
    (>= 0), threshold (>= 0). No weights.
    """

    single_input = True
    supports_masking = True

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = (None if max_value is None
                          else arguments.number(max_value, "max_value", self, low=0.0))
        self.negative_slope = arguments.number(negative_slope, "negative_slope", self, low=0.0)
        self.threshold = arguments.number(threshold, "threshold", self, low=0.0)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def call(self, inputs):
        slope, top, threshold = self.negative_slope, self.max_value, self.threshold
        if slope and top is None and not threshold:
            return ops.leaky_relu(inputs, slope)
        if threshold:
            y = ops.where(inputs.data > threshold, inputs, np.zeros((), inputs.dtype))
        else:
            y = ops.relu(inputs)
        if top is not None:
            y = ops.clip(y, np.asarray(0, inputs.dtype), np.asarray(top, inputs.dtype))
        if slope:
            below = ops.relu(ops.sub(np.asarray(threshold, inputs.dtype), inputs))
            y = ops.sub(y, ops.mul(below, np.asarray(slope, inputs.dtype)))
        return y

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value,
                "negative_slope": self.negative_slope, "threshold": self.threshold}


class LeakyReLU(Layer):
    """y = x for x > 0, else negative_slope * x. Keras 3's default slope is 0.3 (the op's, and
    the 'leaky_relu' activation's, is 0.2). No weights."""

    single_input = True
    supports_masking = True

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name, still accepted by Keras 3 with a warning
            negative_slope = kwargs.pop("alpha")
            warnings.warn("LeakyReLU: argument `alpha` is deprecated; use `negative_slope`.",
                          DeprecationWarning, stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = arguments.number(negative_slope, "negative_slope", self, low=0.0)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


def _shared_axes(value, layer):
    """None, an int or a list of ints >= 1 (axes of the input; 0, the batch, is always shared)."""
    if value is None:
        return None
    values = [value] if arguments.is_int(value) else value
    if not isinstance(values, (tuple, list)):
        raise arguments.fail(layer, f"shared_axes must be None, an int or a list of ints >= 1, "
                                    f"got {value!r}.", arguments.ArgumentTypeError)
    return [arguments.positive_int(axis, "shared_axes", layer) for axis in values]


class PReLU(Layer):
    """Parametric ReLU: y = x for x > 0, else alpha * x, with a learned alpha per input entry.

    Weight alpha has the input's shape without the batch axis, size 1 on shared_axes (e.g.
    shared_axes=[1, 2] for one alpha per channel of (batch, h, w, c)). Params: its size.
    Args: alpha_initializer ('zeros'), alpha_regularizer, alpha_constraint (None only),
    shared_axes.
    """

    single_input = True
    supports_masking = True

    def __init__(self, alpha_initializer="zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = arguments.lookup(initializers.get, alpha_initializer,
                                                  "alpha_initializer", self)
        self.alpha_regularizer = arguments.lookup(regularizers.get, alpha_regularizer,
                                                  "alpha_regularizer", self)
        if alpha_constraint is not None:
            raise self._error(f"alpha_constraint is not supported (shenjing has no weight "
                              f"constraints yet); pass None, got {alpha_constraint!r}.")
        self.alpha_constraint = None
        self.shared_axes = _shared_axes(shared_axes, self)

    def _alpha_shape(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            shape[axis - 1] = 1
        return tuple(shape)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._error(f"expected input of rank >= 2 (batch, ...), got shape "
                              f"{format_shape(input_shape)}.")
        bad = [a for a in self.shared_axes or () if a >= len(input_shape)]
        if bad:
            raise self._error(f"shared_axes {self.shared_axes} name axis {bad[0]}, but the input "
                              f"of shape {format_shape(input_shape)} has axes 1..."
                              f"{len(input_shape) - 1} after the batch.")
        alpha_shape = self._alpha_shape(input_shape)
        if None in alpha_shape:
            raise self._error(f"needs every axis not in shared_axes known to size alpha, got "
                              f"input shape {format_shape(input_shape)}.")
        if self.built and alpha_shape != self.alpha.shape:
            raise self._error(f"alpha of shape {self.alpha.shape} was built for another input; "
                              f"got shape {format_shape(input_shape)}.")
        return input_shape

    def build(self, input_shape):
        self.alpha = self.add_weight("alpha", self._alpha_shape(input_shape),
                                     self.alpha_initializer, regularizer=self.alpha_regularizer)

    def call(self, inputs):
        # relu(x) - alpha * relu(-x), as Keras: the gradient of alpha is -relu(-x)
        return ops.sub(ops.relu(inputs), ops.mul(self.alpha, ops.relu(ops.neg(inputs))))

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": None, "shared_axes": self.shared_axes}


class ELU(Layer):
    """y = x for x > 0, else alpha * (exp(x) - 1). Args: alpha (1.0). No weights."""

    single_input = True
    supports_masking = True

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = arguments.number(alpha, "alpha", self)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def call(self, inputs):
        return ops.elu(inputs, self.alpha)

    def get_config(self):
        # NOTE: Keras 3's ELU leaves alpha out of its config (so a saved ELU(0.5) reloads as
        # ELU(1.0)); ours keeps it, so the round trip holds.
        return {**super().get_config(), "alpha": self.alpha}


def _axes(value, layer):
    if arguments.is_int(value):
        return int(value)
    if isinstance(value, (tuple, list)) and value and all(arguments.is_int(a) for a in value):
        return [int(a) for a in value]
    raise arguments.fail(layer, f"axis must be an int or a non-empty list of ints, got "
                                f"{value!r}.", arguments.ArgumentTypeError)


class Softmax(Layer):
    """y = exp(x) / sum(exp(x)) along axis (an int, or a list of axes normalised together).

    With a mask (broadcastable to the input; True or > 0.5 keeps), masked entries count as
    -1e9 before the softmax and are 0 after it, as Keras 3. No weights.
    """

    single_input = True
    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axes(axis, self)

    def _resolved_axes(self, rank):
        axes = [self.axis] if isinstance(self.axis, int) else self.axis
        if any(not -rank <= a < rank for a in axes):
            raise self._error(f"axis {self.axis} is out of range for an input of rank {rank}.")
        resolved = sorted({a % rank for a in axes})
        if len(resolved) != len(axes):
            raise self._error(f"axis {self.axis} names one axis twice.")
        return tuple(resolved)

    def compute_output_shape(self, input_shape):
        self._resolved_axes(len(input_shape))
        return input_shape

    def _check_mask(self, mask, shape):
        mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask.ndim > len(shape) or any(m not in (1, n) for m, n in
                                         zip(mask.shape[::-1], shape[::-1])):
            raise self._error(f"the mask of shape {mask.shape} must broadcast to the input of "
                              f"shape {shape} (each mask axis 1 or the input's, aligned right).")
        return mask if mask.dtype == bool else mask > 0.5

    def call(self, inputs, mask=None):
        axes = self._resolved_axes(inputs.ndim)
        if mask is not None:
            mask = self._check_mask(mask, inputs.shape)
            # NOTE: Keras's large negative number (-3e4 in float16), not -inf: a fully masked
            # row then gives a uniform softmax that the final where zeroes, never NaN
            low = -3e4 if inputs.dtype == np.float16 else -1e9
            inputs = ops.where(mask, inputs, np.asarray(low, inputs.dtype))
        if len(axes) == 1:
            outputs = ops.softmax(inputs, axes[0])
        else:  # exp(x - logsumexp(x)) over several axes, shifted by a constant max
            shifted = ops.sub(inputs, inputs.data.max(axis=axes, keepdims=True))
            exps = ops.exp(shifted)
            outputs = ops.div(exps, ops.sum(exps, axis=axes, keepdims=True))
        if mask is not None:
            outputs = ops.where(mask, outputs, np.zeros((), inputs.dtype))
        return outputs

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
