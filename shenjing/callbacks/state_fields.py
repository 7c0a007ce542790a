"""Checks on the fields of a callback state read back from a checkpoint (set_state): the file
is untrusted, so a field of the wrong kind raises, and fit reports it as a FileFormatError
naming the file and the callback."""

import numpy as np


def count(state, key):
    """An int >= 0: a number of epochs or batches."""
    value = state[key]
    if type(value) is not int or value < 0:
        raise ValueError(f"{key!r} must be an int >= 0, got {value!r:.50}")
    return value


def optional_number(state, key):
    """A monitored value (a float), or None before the first one."""
    value = state[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"{key!r} must be a number or null, got {value!r:.50}")
    return value


def optional_arrays(state, key):
    """A list of arrays (weights), or None."""
    value = state[key]
    if value is not None and not (isinstance(value, list) and all(
            isinstance(item, np.ndarray) for item in value)):
        raise TypeError(f"{key!r} must be a list of arrays or null, got {value!r:.50}")
    return value
