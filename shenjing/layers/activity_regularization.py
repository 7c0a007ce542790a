"""ActivityRegularization: the identity, adding a penalty on its output to the training loss."""

from .. import arguments, regularizers
from .base import Layer


class ActivityRegularization(Layer):
    """Returns its input; each call adds (l1 * sum|x| + l2 * sum x^2) / batch to the loss.

    As in Keras 3, the penalty is divided by the batch size, so its weight does not change
    with the batch size; fit adds it to the loss (see Layer.add_loss). No weights.
    Args: l1, l2 (factors >= 0).
    """

    supports_masking = True

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.l1 = arguments.number(l1, "l1", self, low=0.0)
        self.l2 = arguments.number(l2, "l2", self, low=0.0)
        self._penalty = regularizers.L1L2(l1=self.l1, l2=self.l2)

    def call(self, inputs):
        loss = self._penalty(inputs)
        if inputs.ndim > 0 and inputs.shape[0]:
            loss = loss * (1.0 / inputs.shape[0])
        self.add_loss(loss)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}
