"""BatchNormalization (Keras semantics: momentum 0.99, epsilon 1e-3, biased moving variance),
and the per-sample GroupNormalization and LayerNormalization (Keras 3 names and defaults)."""

from .. import initializers, ops, regularizers
from .base import Layer, format_shape


class BatchNormalization(Layer):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta, one gamma and beta per channel.

    Training uses the batch statistics over every axis but ``axis`` (N x H x W for a conv map)
    and updates moving = momentum * moving + (1 - momentum) * batch; inference uses the moving
    statistics. PyTorch's momentum is 1 - this one, and it stores the unbiased variance.
    Params: 4 * C (gamma, beta trainable; moving_mean, moving_variance not).
    """

    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise self._error(f"momentum must be in [0, 1], got {momentum}.")
        if epsilon <= 0:
            raise self._error(f"epsilon must be > 0, got {epsilon}.")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = center, scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or not -rank <= self.axis < rank or self.axis % rank == 0:
            raise self._error(
                f"axis {self.axis} is not a feature axis of an input of shape "
                f"{format_shape(input_shape)}."
            )
        if input_shape[self.axis] is None:
            raise self._error(f"the axis {self.axis} of {format_shape(input_shape)} must be known.")
        return input_shape

    def build(self, input_shape):
        channels = (input_shape[self.axis],)
        self.gamma = self.beta = None
        if self.scale:
            self.gamma = self.add_weight("gamma", channels, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", channels, self.beta_initializer,
                                        regularizer=self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", channels, self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight("moving_variance", channels,
                                               self.moving_variance_initializer, trainable=False)

    def call(self, inputs, training=False):
        # a frozen layer (trainable=False) runs in inference mode, as in Keras
        return ops.batch_norm(
            inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            training=training and self.trainable, momentum=self.momentum,
            epsilon=self.epsilon, axis=self.axis,
        )

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "momentum": self.momentum,
            "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
        }


class _PerSampleNorm(Layer):
    """Shared by GroupNormalization and LayerNormalization: gamma/beta, no moving statistics,
    so training and inference compute the same thing."""

    supports_masking = True

    def __init__(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                 beta_regularizer, gamma_regularizer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon <= 0:
            raise self._error(f"epsilon must be a number > 0, got {epsilon!r}.")
        self.axis, self.epsilon = axis, float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)

    def _axes(self, input_shape):
        """The normalized axes of input_shape, as sorted non-negative ints (explained errors)."""
        rank = len(input_shape)
        axes = list(self.axis) if isinstance(self.axis, (list, tuple)) else [self.axis]
        for a in axes:
            if isinstance(a, bool) or not isinstance(a, int) or not -rank <= a < rank:
                raise self._error(
                    f"axis {self.axis!r} is out of range for an input of shape "
                    f"{format_shape(input_shape)} (rank {rank})."
                )
        axes = sorted({a % rank for a in axes})
        if any(input_shape[a] is None for a in axes):
            raise self._error(
                f"the normalized axis {self.axis!r} of {format_shape(input_shape)} must be known."
            )
        return axes

    def _add_gamma_beta(self, shape, gamma=True, beta=True):
        self.gamma = self.beta = None
        if gamma:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer,
                                         regularizer=self.gamma_regularizer)
        if beta:
            self.beta = self.add_weight("beta", shape, self.beta_initializer,
                                        regularizer=self.beta_regularizer)

    def _check_built(self, shape, input_shape):
        if not self.built:
            return
        weight = self.gamma if self.gamma is not None else self.beta
        if weight is not None and tuple(weight.shape) != tuple(shape):
            raise self._error(
                f"was built for normalized size {tuple(weight.shape)}, got {tuple(shape)} "
                f"(input shape {format_shape(input_shape)})."
            )

    def get_config(self):
        return {
            **super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
            "center": self.center, "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
        }


class GroupNormalization(_PerSampleNorm):
    """Per sample, the C channels split into ``groups`` groups of C / groups; each group is
    normalized over its channels and every other non-batch axis (H x W x C/G for a conv map).

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, gamma and beta per channel; no batch
    statistics, so it works at batch size 1 and identically in training and inference.
    groups=1: one group per sample; groups=-1 (or C): instance normalization.
    Params: 2 * C (gamma, beta).
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)
        if isinstance(groups, bool) or not isinstance(groups, int) or (groups <= 0
                                                                        and groups != -1):
            raise self._error(
                f"groups must be a positive integer (or -1 for one group per channel), got "
                f"{groups!r}."
            )
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise self._error(f"axis must be an int (the channel axis), got {axis!r}.")
        self.groups = groups

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise self._error(
                f"expected an input of rank >= 2 (batch, ..., channels), got shape "
                f"{format_shape(input_shape)}."
            )
        (axis,) = self._axes(input_shape)
        if axis == 0:
            raise self._error(
                f"axis {self.axis} is the batch axis of input shape {format_shape(input_shape)}; "
                "pass the channel axis (-1 for channels-last)."
            )
        channels = input_shape[axis]
        groups = channels if self.groups == -1 else self.groups
        if groups > channels or channels % groups:
            raise self._error(
                f"groups={groups} must divide the {channels} channels on axis {self.axis} of "
                f"input shape {format_shape(input_shape)}."
            )
        self._check_built((channels,), input_shape)
        return input_shape

    def build(self, input_shape):
        (axis,) = self._axes(input_shape)
        if self.groups == -1:  # as Keras: resolved once the channel count is known
            self.groups = input_shape[axis]
        self._add_gamma_beta((input_shape[axis],), self.scale, self.center)

    def call(self, inputs):
        return ops.group_norm(inputs, self.gamma, self.beta, groups=self.groups, axis=self.axis,
                              epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


class LayerNormalization(_PerSampleNorm):
    """Normalizes each sample over ``axis`` (an int or a list of ints; -1: the features of
    each position), independently of the rest of the batch.

    y = gamma * (x - mean) / sqrt(var + epsilon) + beta, gamma and beta shaped like the
    normalized axes; identical in training and inference. rms_scaling (Keras' deprecated
    option): y = gamma * x / sqrt(var + epsilon), no beta.
    Params: 2 * (product of the normalized sizes), e.g. 2 * C for axis=-1.
    """

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None,
                 gamma_regularizer=None, **kwargs):
        super().__init__(axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                         beta_regularizer, gamma_regularizer, **kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = list(axis)
        elif isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"LayerNormalization '{self.name}': axis must be an int or a list "
                            f"of ints, got {axis!r}.")
        self.rms_scaling = bool(rms_scaling)

    def compute_output_shape(self, input_shape):
        axes = self._axes(input_shape)
        self._check_built(tuple(input_shape[a] for a in axes), input_shape)
        return input_shape

    def build(self, input_shape):
        shape = tuple(input_shape[a] for a in self._axes(input_shape))
        self._add_gamma_beta(shape, self.scale or self.rms_scaling,
                             self.center and not self.rms_scaling)

    def call(self, inputs):
        return ops.layer_norm(inputs, self.gamma, self.beta, axis=self.axis,
                              epsilon=self.epsilon, rms_scaling=self.rms_scaling)

    def get_config(self):
        return {**super().get_config(), "rms_scaling": self.rms_scaling}
