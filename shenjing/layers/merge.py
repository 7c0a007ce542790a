"""Layers that merge a list of inputs: Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate, Dot, and Keras's functional forms add([a, b]), concatenate([a, b]), dot(...).

Elementwise merges follow Keras's broadcasting: inputs of lower rank get axes of size 1 after
the batch axis until the ranks agree, then sizes must match or be 1. Masks: the output is
masked where any input is (None if an input has none); Multiply, Maximum and Minimum also
leave masked values out of the result, as Keras does.
"""

import numpy as np

from .. import arguments, ops
from .base import Layer, format_shape


def _shapes(layer, input_shape, count=None):
    """The list of input shapes, checked: a list of at least 2 (or exactly count) shapes."""
    if not isinstance(input_shape, list) or not all(isinstance(s, tuple) for s in input_shape):
        raise layer._error(f"expected a list of inputs, got one input of shape {input_shape}.")
    wanted = "at least 2" if count is None else f"exactly {count}"
    if len(input_shape) < 2 or (count is not None and len(input_shape) != count):
        raise layer._error(f"expected a list of {wanted} inputs, got {len(input_shape)}.")
    if any(len(s) < 1 for s in input_shape):
        raise layer._error("inputs need a batch axis, got shapes "
                           + ", ".join(format_shape(s) for s in input_shape) + ".")
    return input_shape


def _listed(shapes):
    return ", ".join(format_shape(s) for s in shapes)


def _batch(layer, shapes):
    sizes = {s[0] for s in shapes} - {None}
    if len(sizes) > 1:
        raise layer._error(f"inputs have different batch sizes: {_listed(shapes)}.")
    return sizes.pop() if sizes else None


def _as_bool(mask):
    return None if mask is None else np.asarray(getattr(mask, "data", mask), dtype=bool)


def _mask_list(layer, inputs, mask):
    """mask as a list with one entry (None or a bool array) per input."""
    if mask is None:
        return [None] * len(inputs)
    if not isinstance(mask, (list, tuple)) or len(mask) != len(inputs):
        raise layer._error(f"mask must be a list with one entry per input ({len(inputs)}), got "
                           f"{mask!r:.100}.")
    return [_as_bool(m) for m in mask]


def _or_masks(masks):
    """Keras: the output is masked only if every input has a mask; then it is their OR."""
    if not masks or any(m is None for m in masks):
        return None
    result = masks[0]
    for m in masks[1:]:
        result = np.logical_or(result, m)
    return result


class _Merge(Layer):
    """Elementwise merge of a list of inputs whose shapes broadcast as in Keras."""

    supports_masking = True
    count = None  # the exact number of inputs, if fixed

    def compute_output_shape(self, input_shape):
        shapes = _shapes(self, input_shape, self.count)
        out = shapes[0][1:]
        for shape in shapes[1:]:
            tail = shape[1:]
            if len(tail) > len(out):
                out, tail = tail, out
            lead, merged = out[:len(out) - len(tail)], []
            for a, b in zip(out[len(out) - len(tail):], tail):
                if a is not None and b is not None and a != b and 1 not in (a, b):
                    raise self._error("inputs must have the same shape, or shapes that "
                                      f"broadcast (sizes equal or 1), got {_listed(shapes)}.")
                merged.append(None if a is None or b is None else b if a == 1 else a)
            out = (*lead, *merged)
        return (_batch(self, shapes), *out)

    def call(self, inputs, mask=None):
        rank = max(x.ndim for x in inputs)
        # Keras's rule for lower ranks: new axes of size 1 right after the batch axis
        inputs = [x if x.ndim == rank else
                  ops.reshape(x, (x.shape[0], *(1,) * (rank - x.ndim), *x.shape[1:]))
                  for x in inputs]
        return self.merge(inputs, _mask_list(self, inputs, mask))

    def compute_mask(self, inputs, mask=None):
        return _or_masks(_mask_list(self, inputs, mask))


def _feature_mask(mask, x, layer):
    """A (batch, time) mask spread over x's last axis, as Keras broadcasts it."""
    try:
        return np.broadcast_to(mask[..., None], x.shape)
    except ValueError:
        raise layer._error(f"a mask of shape {mask.shape} does not fit an input of shape "
                           f"{x.shape} (expected the input's shape without its last axis)."
                           ) from None


class Add(_Merge):
    """y = x1 + x2 + ... (residual connections)."""

    def merge(self, inputs, masks):
        result = inputs[0]
        for x in inputs[1:]:
            result = ops.add(result, x)
        return result


class Subtract(_Merge):
    """y = x1 - x2, for exactly two inputs."""

    count = 2

    def merge(self, inputs, masks):
        return ops.sub(inputs[0], inputs[1])


class Average(_Merge):
    """y = (x1 + x2 + ... + xn) / n."""

    def merge(self, inputs, masks):
        return ops.div(Add.merge(self, inputs, masks), float(len(inputs)))


class Multiply(_Merge):
    """y = x1 * x2 * ...; a masked value counts as 1, and where every input is masked y = 0."""

    def merge(self, inputs, masks):
        every = all(m is not None for m in masks)
        result, seen = None, None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                mask = _feature_mask(mask, x, self)
                x = ops.where(mask, x, 1.0)
                seen = mask if seen is None else np.logical_or(seen, mask)
            result = x if result is None else ops.mul(result, x)
        return ops.where(seen, result, 0.0) if every else result


class _Extreme(_Merge):
    """Elementwise max or min; a masked value takes the other operand's value (Keras's rule).
    NOTE: at ties the gradient goes to the first operand (a valid subgradient; torch splits)."""

    def merge(self, inputs, masks):
        result, result_mask = None, None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                mask = _feature_mask(mask, x, self)
            if result is None:
                result, result_mask = x, mask
                continue
            if mask is not None:
                x = ops.where(mask, x, result)
            if result_mask is not None:
                result = ops.where(result_mask, result, x)
            both = mask is not None and result_mask is not None
            result_mask = np.logical_or(result_mask, mask) if both else None
            result = ops.where(self.pick(result.data, x.data), result, x)
        return result


class Maximum(_Extreme):
    """y = elementwise max(x1, x2, ...)."""

    pick = staticmethod(np.greater_equal)


class Minimum(_Extreme):
    """y = elementwise min(x1, x2, ...)."""

    pick = staticmethod(np.less_equal)


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

    def compute_mask(self, inputs, mask=None):
        """Keras's rule: each input's mask spread over its shape (all True if it has none),
        joined along axis, then any() over the last axis."""
        masks = _mask_list(self, inputs, mask)
        if all(m is None for m in masks):
            return None
        full = [np.ones(x.shape, bool) if m is None else
                m if m.ndim == x.ndim else _feature_mask(m, x, self)
                for x, m in zip(inputs, masks)]
        return np.concatenate(full, axis=self.axis).any(axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _dot_axes(value, layer):
    """Dot's axes: an int or a pair of ints (Keras's check)."""
    if arguments.is_int(value):
        return int(value)
    if not isinstance(value, (list, tuple)):
        raise arguments.fail(layer, f"axes must be an int or a pair of ints, got {value!r}.",
                             arguments.ArgumentTypeError)
    if len(value) != 2 or not all(arguments.is_int(a) for a in value):
        raise layer._error(f"axes must be an int or a pair of ints, got {value!r}.")
    return [int(a) for a in value]


class Dot(Layer):
    """Batchwise dot product of two inputs along axes[0] of the first and axes[1] of the
    second (an int: the same axis in both); normalize=True L2-normalizes both along those
    axes first (cosine proximity). Output: the first input's other axes, then the second's
    other non-batch axes; (batch, 1) if nothing is left."""

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        self.axes = _dot_axes(axes, self)
        self.normalize = arguments.boolean(normalize, "normalize", self)

    def _axes_for(self, ranks):
        axes = [self.axes] * 2 if isinstance(self.axes, int) else self.axes
        if any(not -r <= a < r for a, r in zip(axes, ranks)):
            raise self._error(f"axes {self.axes} are out of range for inputs of ranks {ranks}.")
        return [a % r for a, r in zip(axes, ranks)]

    def compute_output_shape(self, input_shape):
        first, second = _shapes(self, input_shape, 2)
        if len(first) < 2 or len(second) < 2:
            raise self._error(f"inputs must have rank >= 2, got {_listed(input_shape)}.")
        a0, a1 = self._axes_for((len(first), len(second)))
        if 0 in (a0, a1):
            raise self._error(f"cannot take the dot product over the batch axis (axes "
                              f"{self.axes}).")
        d0, d1 = first[a0], second[a1]
        if d0 is not None and d1 is not None and d0 != d1:
            raise self._error(f"the dot axes differ in size: axis {a0} of the first input is "
                              f"{d0}, axis {a1} of the second {d1}; shapes {_listed(input_shape)}.")
        batch = _batch(self, input_shape)
        rest = [d for i, d in enumerate(first[1:], 1) if i != a0] + [
            d for i, d in enumerate(second[1:], 1) if i != a1]
        return (batch, *(rest or [1]))

    def call(self, inputs):
        x, y = inputs
        a0, a1 = self._axes_for((x.ndim, y.ndim))
        if self.normalize:
            x, y = _l2_normalize(x, a0), _l2_normalize(y, a1)
        # x: contracted axis last, the rest flattened; y: contracted axis first after batch
        x = ops.transpose(x, [i for i in range(x.ndim) if i != a0] + [a0])
        y = ops.transpose(y, [0, a1] + [i for i in range(1, y.ndim) if i != a1])
        x_rest, y_rest = x.shape[1:-1], y.shape[2:]
        n, d = x.shape[0], x.shape[-1]
        product = ops.matmul(ops.reshape(x, (n, -1, d)), ops.reshape(y, (n, d, -1)))
        return ops.reshape(product, (n, *x_rest, *y_rest) if x_rest or y_rest else (n, 1))

    def compute_mask(self, inputs, mask=None):
        return None  # as Keras: a dot product has no time axis left to mask

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _l2_normalize(x, axis, epsilon=1e-7):
    """x / max(||x||, epsilon) along axis (Keras's ops.normalize with its epsilon)."""
    squares = ops.sum(ops.mul(x, x), axis=axis, keepdims=True)
    return ops.div(x, ops.sqrt(ops.clip(squares, min=epsilon * epsilon)))


def add(inputs, **kwargs):
    """Functional form of Add: ``add([a, b])`` makes the layer and calls it."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """Functional form of Subtract."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """Functional form of Multiply."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """Functional form of Average."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """Functional form of Maximum."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """Functional form of Minimum."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """Functional form of Concatenate."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """Functional form of Dot."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)
