"""BatchNormalization (Keras semantics: momentum 0.99, epsilon 1e-3, biased moving variance)."""

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
