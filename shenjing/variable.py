"""Variable: a named Tensor that a layer owns (a weight or a moving statistic)."""

import numpy as np

from .errors import ArgumentError
from .tensor import Tensor


class Variable(Tensor):
    """A layer's state. Trainable variables require grad and are updated by optimizers;
    non-trainable ones (batch-norm moving statistics) are updated by their layer.

    Args: value (array), name (``"<layer>/<weight>"``), trainable (bool).
    """

    def __init__(self, value, name: str, trainable: bool = True, dtype=None):
        super().__init__(value, dtype=dtype, requires_grad=trainable)
        if not self.data.flags.c_contiguous:  # e.g. an orthogonal init's q.T: updates in place
            self.data = self.data.copy(order="C")  # on mixed layouts run ~20x slower
        self.name, self.trainable = name, trainable

    @property
    def value(self) -> "Variable":
        """The variable's tensor (Keras's ``variable.value``): this Variable itself, so
        ``v.value.grad`` is the gradient that backward() left on it."""
        return self

    def assign(self, value) -> None:
        """Overwrite the values in place (same shape; cast to this variable's dtype)."""
        value = np.asarray(value.data if isinstance(value, Tensor) else value)
        if value.shape != self.shape:
            raise ArgumentError(
                f"Variable '{self.name}': expected a value of shape {self.shape}, "
                f"got {value.shape}."
            )
        self.data[...] = value

    def __repr__(self):
        return f"<Variable '{self.name}' shape={self.shape} dtype={self.dtype} trainable={self.trainable}>"
