"""Checks for the arguments of the public API: each returns the value normalized (an int, a
tuple of ints, a float) or raises ``ArgumentError`` / ``ArgumentTypeError`` with a message that
names where the argument went (``where``: a function name, or a layer), the argument, what is
expected and what was received, in the form ``Conv2D 'c': strides must be ..., got 1.5.``

Layers and ``fit`` call these at their boundary, so a bad value fails at once with a clear
message instead of deep inside NumPy (a float kernel size, a zero batch size, a stride of 10**30).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .errors import ArgumentError, ArgumentTypeError

# NOTE: the largest number of elements we let one weight, or one sample of a layer's (padded)
# input or output, have: 2**31 is 8 GiB in float32, far past what a NumPy model can train, and
# small enough that a typo (units=8_000_000 after 784 inputs) is refused before allocating.
MAX_ELEMENTS = 2**31


def describe(where) -> str:
    """The prefix of a message: a string as it is, a layer as ``Type 'name'``."""
    if isinstance(where, str):
        return where
    return f"{type(where).__name__} '{where.name}'"


def is_int(value) -> bool:
    """An int or NumPy integer, but not a bool (True is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A real int or float (NumPy's included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_finite_number(value) -> bool:
    """is_number and finite as a float (an int of hundreds of digits, say from a JSON file,
    overflows: not finite)."""
    if not is_number(value):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def fail(where, message, kind=ArgumentError):
    """The error to raise: ``kind(f"{where}: {message}")``."""
    return kind(f"{describe(where)}: {message}")


def integer(value, name, where, minimum=None, maximum=MAX_ELEMENTS, what=None) -> int:
    """value as an int in [minimum, maximum]; a bool, float or string is a type error."""
    what = what or ("an integer" if minimum is None else f"an integer >= {minimum}")
    if not is_int(value):
        raise fail(where, f"{name} must be {what}, got {value!r}.", ArgumentTypeError)
    if minimum is not None and value < minimum:
        raise fail(where, f"{name} must be {what}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise fail(where, f"{name} must be {what} and at most {maximum}, got {value!r}.")
    return int(value)


def positive_int(value, name, where, maximum=MAX_ELEMENTS) -> int:
    """value as an int >= 1 (units, filters, batch_size)."""
    return integer(value, name, where, 1, maximum, "a positive integer")


def non_negative_int(value, name, where, maximum=MAX_ELEMENTS) -> int:
    """value as an int >= 0 (epochs, padding)."""
    return integer(value, name, where, 0, maximum, "an integer >= 0")


def int_tuple(value, n, name, where, minimum=1) -> tuple:
    """An int, or n of them, as a tuple of n ints >= minimum (kernel_size, strides, pool_size).

    Keras's wording: "The `kernel_size` argument must be a tuple of 2 integers"."""
    what = (f"a positive int or {n} of them" if minimum == 1
            else f"an int >= {minimum} or {n} of them")
    message = f"{name} must be {what} (a tuple of {n} integers), got {value!r}."
    if is_int(value):
        values = (value,) * n
    elif isinstance(value, (tuple, list)):
        values = tuple(value)
    else:
        raise fail(where, message, ArgumentTypeError)
    if len(values) != n:
        raise fail(where, message)
    if not all(is_int(v) for v in values):
        raise fail(where, message, ArgumentTypeError)
    if any(v < minimum for v in values):
        raise fail(where, message)
    if any(v > MAX_ELEMENTS for v in values):
        raise fail(where, f"{name} must be at most {MAX_ELEMENTS} each, got {value!r}.")
    return tuple(int(v) for v in values)


def number(value, name, where, low=None, high=None, low_open=False, high_open=False) -> float:
    """value as a finite float in the interval given (open ends with low_open/high_open)."""
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    interval = f"in {left}{low}, {high}{right}" if low is not None and high is not None else (
        f"> {low}" if low_open else f">= {low}" if low is not None else "finite")
    what = "a finite number" if interval == "finite" else f"a number {interval}"
    if not is_number(value):
        raise fail(where, f"{name} must be {what}, got {value!r}.", ArgumentTypeError)
    number_value = float(value)
    below = low is not None and (number_value < low or (low_open and number_value == low))
    above = high is not None and (number_value > high or (high_open and number_value == high))
    if not math.isfinite(number_value) or below or above:
        what = interval if interval.startswith("in ") else what
        raise fail(where, f"{name} must be {what}, got {value!r}.")
    return number_value


def rate(value, name, where) -> float:
    """A dropout rate in [0, 1) (Keras: "Expected a float value between 0 and 1")."""
    return number(value, name, where, 0.0, 1.0, high_open=True)


def boolean(value, name, where) -> bool:
    """True or False (NumPy's bools too); an int or string is refused, not taken as truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise fail(where, f"{name} must be True or False, got {value!r}.", ArgumentTypeError)
    return bool(value)


def choice(value, allowed, name, where, lower=True):
    """One of the strings in allowed (case-insensitive with lower), or None if None is in it."""
    if value is None and None in allowed:
        return None
    shown = ", ".join(repr(a) for a in allowed)
    if not isinstance(value, str):
        raise fail(where, f"{name} must be one of {shown}, got {value!r}.", ArgumentTypeError)
    key = value.lower() if lower else value
    if key not in allowed:
        raise fail(where, f"{name} must be one of {shown}, got {value!r}.")
    return key


def data_format(value, where) -> str:
    """'channels_last' (the default, for None) or 'channels_first'."""
    if value is None:
        return "channels_last"
    return choice(value, ("channels_last", "channels_first"), "data_format", where)


def lookup(getter, value, name, where):
    """getter(value) (activations.get, initializers.get, ...), its errors re-raised as ours
    naming the layer and the argument (an unknown name is a value error, any other a type
    error)."""
    try:
        return getter(value)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        kind = ArgumentError if isinstance(value, (str, dict)) else ArgumentTypeError
        text = str(error)
        head, colon, rest = text.partition(": ")
        if colon and " " not in head:  # the getter's own "activation: " prefix
            text = rest
        raise fail(where, f"{name}: {text}", kind) from error


def check_elements(count, what, where, culprit):
    """Refuse a weight or a per-sample array of more than MAX_ELEMENTS values before it is
    allocated; culprit names the arguments that made it that large."""
    if count > MAX_ELEMENTS:
        raise fail(where, f"{what} would hold {count:,} values (more than {MAX_ELEMENTS:,}); "
                          f"check {culprit}.")


def array_dtype(array, name, where):
    """Refuse arrays NumPy holds but a network cannot compute with: complex, strings, bytes,
    objects, records (Keras refuses them when it converts to tensors)."""
    kind = array.dtype.kind
    if kind not in "biuf":
        raise fail(where, f"{name} must hold numbers (bool, int or float), got an array of "
                          f"dtype {array.dtype} (shape {tuple(array.shape)}).", ArgumentTypeError)


def as_array(value, name, where):
    """value (an ndarray, a Tensor, anything with __array__, nested lists) as an ndarray of
    numbers; ragged lists and non-numeric dtypes are refused naming the argument."""
    if not isinstance(value, np.ndarray):  # an ndarray's .data is a buffer (datetime64's fails)
        data = getattr(value, "data", None)
        if isinstance(data, np.ndarray):  # a Tensor or Variable
            value = data
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nesting, unconvertible objects
        raise fail(where, f"{name} could not be read as an array of numbers: {error}",
                   ArgumentTypeError) from error
    array_dtype(array, name, where)
    return array


def layer_input(value, where):
    """A layer's input as a checked ndarray: numbers only, a batch axis, and no zero-size axis
    (a sample with no features has nothing to compute with; fit and predict refuse empty data
    before it gets here, so an empty batch is a mistake too)."""
    array = as_array(value, "the input", where)
    if array.ndim == 0:
        raise fail(where, f"the input must have a batch axis, got a scalar {array!r}.")
    empty = [axis for axis, size in enumerate(array.shape) if size == 0]
    if empty:
        raise fail(where, f"the input of shape {tuple(array.shape)} has a zero-size axis "
                          f"{empty[0]}; every sample needs at least one value on each axis.")
    return array


def layer_options(where, name, trainable, dtype, input_shape):
    """The arguments every layer takes (Layer.__init__): name a string or None, trainable a
    bool, dtype one NumPy knows of numbers (float32 by default), input_shape None or sizes.
    Returns (the dtype's name, input_shape as a tuple or None)."""
    if name is not None and not isinstance(name, str):
        raise fail(where, f"name must be a string or None, got {name!r}.", ArgumentTypeError)
    boolean(trainable, "trainable", where)
    try:
        dtype = np.dtype(dtype or "float32")
    except (TypeError, ValueError) as error:
        raise fail(where, f"dtype: {error}", ArgumentTypeError) from error
    if dtype.kind not in "biuf":
        raise fail(where, f"dtype must be a numeric dtype such as 'float32', got {dtype}.",
                   ArgumentTypeError)
    if input_shape is not None:
        input_shape = shape(input_shape, "input_shape", where)
    return dtype.name, input_shape


def shape(value, name, where):
    """A shape without the batch axis: an int or a tuple/list of positive ints or None."""
    sizes = (value,) if is_int(value) else value
    if not isinstance(sizes, (tuple, list)):
        raise fail(where, f"{name} must be a tuple of positive ints or None, got {value!r}.",
                   ArgumentTypeError)
    for size in sizes:
        if size is not None:
            positive_int(size, name, where, maximum=None)
    known = math.prod(s for s in sizes if s is not None)
    if known > MAX_ELEMENTS:
        raise fail(where, f"{name} {tuple(sizes)} holds {known:,} values per sample, more than "
                          f"{MAX_ELEMENTS:,}.")
    return tuple(None if s is None else int(s) for s in sizes)
