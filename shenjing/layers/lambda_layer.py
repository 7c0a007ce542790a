"""Lambda: wrap a function of tensors as a layer, as keras.layers.Lambda.

Saved files keep the function's name only, never its code: loading such a model needs the
function in ``custom_objects`` under that name (``load_model(path, custom_objects={"fn": fn})``);
without it the load is refused with a message that says so. Nothing is unpickled or evaluated.
"""

import inspect

import numpy as np

from .. import arguments as checks
from ..tensor import Tensor, no_grad
from .base import Layer, _is_symbolic


def _function_name(fn, what, layer):
    name = getattr(fn, "__name__", None)
    if not isinstance(name, str):
        raise layer._error(f"cannot save {what} {fn!r:.80}: it has no __name__ to record (a "
                           "saved Lambda keeps functions by name only); wrap it in a def.")
    return name


def _expects(fn, name):
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _placeholder(shape, size, dtype):
    """Zeros of shape with every unknown axis (the batch axis included) set to size."""
    return Tensor(np.zeros(tuple(size if d is None else d for d in shape), dtype=dtype))


class Lambda(Layer):
    """y = function(inputs, **arguments); ``function`` may also take ``mask`` and ``training``.

    Args: function (a callable of tensors, e.g. made of shenjing.ops); output_shape (None:
    found by running the function on zeros; a tuple without the batch axis; or a function of
    the input shape); mask (None, or a function(inputs, mask) giving the output's mask);
    arguments (a dict of extra keyword arguments for function). Params: 0.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise self._error_type(f"function must be callable, got {function!r:.80}.")
        if output_shape is not None and not callable(output_shape):
            if not isinstance(output_shape, (list, tuple)) or not all(
                    d is None or checks.is_int(d) and d > 0 for d in output_shape):
                raise self._error_type(f"output_shape must be a tuple of positive ints (without "
                                       f"the batch axis) or a function, got {output_shape!r:.80}.")
            output_shape = tuple(None if d is None else int(d) for d in output_shape)
        if mask is not None and not callable(mask):
            raise self._error_type(f"mask must be None or a function(inputs, mask), got "
                                   f"{mask!r:.80}.")
        if arguments is not None and not isinstance(arguments, dict):
            raise self._error_type(f"arguments must be a dict of keyword arguments, got "
                                   f"{arguments!r:.80}.")
        self.function, self.mask, self.arguments = function, mask, dict(arguments or {})
        self._output_shape = output_shape
        self._symbolic = False

    def _error_type(self, message):
        return checks.fail(self, message, checks.ArgumentTypeError)

    def __call__(self, inputs, *args, **kwargs):
        # the shape is inferred (by running the function on zeros) for symbolic calls only
        self._symbolic = _is_symbolic(inputs)
        try:
            return super().__call__(inputs, *args, **kwargs)
        finally:
            self._symbolic = False

    def compute_output_shape(self, input_shape):
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        batch = (input_shape[0] if isinstance(input_shape, list) else input_shape)[0]
        if self._output_shape is not None:
            return (batch, *self._output_shape)
        if not self._symbolic:
            return None  # an eager call computes the output anyway
        return self._infer(input_shape)

    def _infer(self, input_shape):
        """Run the function on zeros twice, unknown axes set to 2 then 3; an output axis whose
        size follows them is unknown (None)."""
        runs = []
        for size in (2, 3):
            if isinstance(input_shape, list):
                zeros = [_placeholder(s, size, self.dtype) for s in input_shape]
            else:
                zeros = _placeholder(input_shape, size, self.dtype)
            try:
                with no_grad():
                    out = self.call(zeros)
            except Exception as error:  # the user's function: any failure is explained
                raise self._error(
                    f"could not infer the output shape by calling {self.function!r:.60} on "
                    f"zeros of shape {input_shape} ({type(error).__name__}: {error}); pass "
                    "output_shape=... to Lambda.") from error
            runs.append([np.shape(o) for o in out] if isinstance(out, (list, tuple))
                        else np.shape(out))

        def merge(a, b):
            return tuple(x if x == y else None for x, y in zip(a, b))

        first, second = runs
        return [merge(a, b) for a, b in zip(first, second)] if isinstance(first, list) else \
            merge(first, second)

    def call(self, inputs, mask=None, training=False):
        kwargs = dict(self.arguments)
        if _expects(self.function, "mask"):
            kwargs["mask"] = mask
        if _expects(self.function, "training"):
            kwargs["training"] = training
        out = self.function(inputs, **kwargs)
        if isinstance(out, (list, tuple)):
            return type(out)(o if isinstance(o, Tensor) else Tensor(o) for o in out)
        return out if isinstance(out, Tensor) else Tensor(out)

    def compute_mask(self, inputs, mask=None):
        return None if self.mask is None else self.mask(inputs, mask)

    def get_config(self):
        shape = self._output_shape
        return {**super().get_config(),
                "function": _function_name(self.function, "the function", self),
                "output_shape": (_function_name(shape, "output_shape", self) if callable(shape)
                                 else None if shape is None else list(shape)),
                "mask": None if self.mask is None else _function_name(self.mask, "mask", self),
                "arguments": self.arguments}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Functions come from custom_objects by the names the config records (load_model's
        custom_objects while a model loads), never from the file."""
        from ..saving.registry import custom_objects_in_use

        known = custom_objects_in_use() if custom_objects is None else custom_objects
        config = dict(config)
        label = f"Lambda {config.get('name')!r}"
        for key in ("function", "output_shape", "mask"):
            value = config.get(key)
            if key != "function" and not isinstance(value, str):
                continue  # None or a shape
            if not isinstance(value, str):
                raise checks.ArgumentError(
                    f"{label}: the saved function must be a name, got {value!r:.80}; shenjing "
                    "never loads code from a file.")
            found = known.get(value)
            if found is None or not callable(found):
                raise checks.ArgumentError(
                    f"{label}: its {key} is the function {value!r}, which a saved Lambda keeps "
                    f"by name only (never its code). Pass it when loading: load_model(path, "
                    f"custom_objects={{{value!r}: {value if value.isidentifier() else 'fn'}}}).")
            config[key] = found
        return cls(**config)

