"""BatchNormalization (Keras semantics: momentum 0.99, epsilon 1e-3, biased moving variance),
and the per-sample GroupNormalization and LayerNormalization (Keras 3 names and defaults)."""

from .. import arguments, initializers, ops, regularizers
from ..distribution import context as distribution_context
from .base import Layer, format_shape


def _initializers(layer, **named):
    """Resolve each named initializer onto layer; a bad one is an error naming it."""
    for name, value in named.items():
        setattr(layer, name, arguments.lookup(initializers.get, value, name, layer))


def _regularizers(layer, **named):
    """Resolve each named regularizer onto layer; a bad one is an error naming it."""
    for name, value in named.items():
        setattr(layer, name, arguments.lookup(regularizers.get, value, name, layer))


class BatchNormalization(Layer):
    """y = gamma * (x - mean) / sqrt(var + epsilon) + beta, one gamma and beta per channel.

    Training uses the batch statistics over every axis but ``axis`` (N x H x W for a conv map)
    and updates moving = momentum * moving + (1 - momentum) * batch; inference uses the moving
    statistics. PyTorch's momentum is 1 - this one, and it stores the unbiased variance.
    synchronized=True (Keras 3's argument): in distributed training (shenjing.distribution)
    the batch statistics are those of the global batch over all processes, not of each one's
    share; the moving statistics then agree on every process. Alone, or in inference, it
    changes nothing.
    Params: 4 * C (gamma, beta trainable; moving_mean, moving_variance not).
    """

    single_input = True
    supports_masking = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = arguments.integer(axis, "axis", self)
        self.synchronized = arguments.boolean(synchronized, "synchronized", self)
        self.momentum = arguments.number(momentum, "momentum", self, 0.0, 1.0)
        self.epsilon = arguments.number(epsilon, "epsilon", self, 0.0, low_open=True)
        self.center = arguments.boolean(center, "center", self)
        self.scale = arguments.boolean(scale, "scale", self)
        _initializers(self, beta_initializer=beta_initializer,
                      gamma_initializer=gamma_initializer,
                      moving_mean_initializer=moving_mean_initializer,
                      moving_variance_initializer=moving_variance_initializer)
        _regularizers(self, beta_regularizer=beta_regularizer,
                      gamma_regularizer=gamma_regularizer)

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
        per_channel = inputs.size // inputs.shape[self.axis]
        # synchronized over several processes, the op checks the global batch's count
        global_batch = self.synchronized and distribution_context.is_distributed()
        if training and self.trainable and per_channel < 2 and not global_batch:
            raise self._error(
                f"training needs more than one value per channel to estimate a batch variance, "
                f"got input shape {format_shape(inputs.shape)} ({per_channel} per channel on "
                f"axis {self.axis}); use a larger batch."
            )
        return ops.batch_norm(
            inputs, self.gamma, self.beta, self.moving_mean, self.moving_variance,
            training=training and self.trainable, momentum=self.momentum,
            epsilon=self.epsilon, axis=self.axis, synchronized=self.synchronized,
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
            "synchronized": self.synchronized,
        }


def _as_axes(axis):
    return list(axis) if isinstance(axis, (list, tuple)) else [axis]


class _PerSampleNorm(Layer):
    """Shared by GroupNormalization and LayerNormalization: gamma/beta, no moving statistics,
    so training and inference compute the same thing."""

    single_input = True
    supports_masking = True

    def __init__(self, axis, epsilon, center, scale, beta_initializer, gamma_initializer,
                 beta_regularizer, gamma_regularizer, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis
        self.epsilon = arguments.number(epsilon, "epsilon", self, 0.0, low_open=True)
        self.center = arguments.boolean(center, "center", self)
        self.scale = arguments.boolean(scale, "scale", self)
        _initializers(self, beta_initializer=beta_initializer,
                      gamma_initializer=gamma_initializer)
        _regularizers(self, beta_regularizer=beta_regularizer,
                      gamma_regularizer=gamma_regularizer)

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
        what = "a positive integer (or -1 for one group per channel)"
        if not (arguments.is_int(groups) and groups == -1):
            arguments.integer(groups, "groups", self, 1, what=what)
        self.groups = int(groups)
        if not arguments.is_int(axis):
            raise arguments.fail(self, f"axis must be an int (the channel axis), got {axis!r}.",
                                 arguments.ArgumentTypeError)

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
        if not all(arguments.is_int(a) for a in _as_axes(axis)) or not _as_axes(axis):
            raise arguments.fail(self, f"axis must be an int or a list of ints, got {axis!r}.",
                                 arguments.ArgumentTypeError)
        self.rms_scaling = arguments.boolean(rms_scaling, "rms_scaling", self)

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
