"""Layers that merge several inputs: Add, Multiply, Concatenate."""

from .. import arguments, ops
from .base import Layer, format_shape


class _Merge(Layer):
    """Elementwise merge of a list of same-shaped inputs."""

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise self._error(f"expected a list of at least 2 inputs, got {input_shape}.")
        first = input_shape[0]
        for shape in input_shape[1:]:
            if len(shape) != len(first) or any(
                a is not None and b is not None and a != b for a, b in zip(shape[1:], first[1:])
            ):
                raise self._error(
                    "inputs must have the same shape, got "
                    + ", ".join(format_shape(s) for s in input_shape) + "."
                )
        return first

    def call(self, inputs):
        result = inputs[0]
        for x in inputs[1:]:
            result = self.merge(result, x)
        return result


class Add(_Merge):
    """y = x1 + x2 + ... (residual connections)."""

    merge = staticmethod(ops.add)


class Multiply(_Merge):
    """y = x1 * x2 * ..."""

    merge = staticmethod(ops.mul)


class Concatenate(Layer):
    """Join inputs along axis (default the last: channels)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = arguments.integer(axis, "axis", self)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise self._error(f"expected a list of at least 2 inputs, got {input_shape}.")
        rank = len(input_shape[0])
        if not -rank <= self.axis < rank:
            raise self._error(f"axis {self.axis} is out of range for inputs of rank {rank}, got "
                              + ", ".join(format_shape(s) for s in input_shape) + ".")
        axis = self.axis % rank
        if axis == 0:
            raise self._error("cannot concatenate along the batch axis.")
        for shape in input_shape:
            rest_ok = len(shape) == rank and all(
                a is None or b is None or a == b
                for i, (a, b) in enumerate(zip(shape, input_shape[0])) if i not in (0, axis)
            )
            if not rest_ok:
                raise self._error(
                    f"inputs must match except along axis {self.axis}, got "
                    + ", ".join(format_shape(s) for s in input_shape) + "."
                )
        sizes = [s[axis] for s in input_shape]
        total = None if None in sizes else sum(sizes)
        return tuple(total if i == axis else d for i, d in enumerate(input_shape[0]))

    def call(self, inputs):
        return ops.concatenate(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
