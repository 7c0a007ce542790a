"""Checks on the fields of a callback state read back from a checkpoint (set_state): the file
is untrusted, so a field of the wrong kind raises, and fit reports it as a FileFormatError
naming the file and the callback. ``FIELDS`` lists what each built-in callback's get_state
writes: load_model checks a file's states against it before anything runs (models/resume.py).
"""

import numbers

import numpy as np

MAX_COUNT = 2**31  # epochs and batches: more than any run takes


def count(state, key):
    """An int from 0 to MAX_COUNT - 1: a number of epochs or batches."""
    value = state[key]
    if type(value) is not int or not 0 <= value < MAX_COUNT:
        raise ValueError(f"{key!r} must be an int from 0 to {MAX_COUNT - 1}, got {value!r:.50}")
    return value


def optional_number(state, key):
    """A monitored value (a float), or None before the first one. (Whether it must be finite
    depends on load_model's check_values: models/resume.py checks that on load.)"""
    value = state[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{key!r} must be a number or null, got {value!r:.50}")
    return value


def optional_arrays(state, key):
    """A list of arrays (weights), or None."""
    value = state[key]
    if value is not None and not (isinstance(value, list) and all(
            isinstance(item, np.ndarray) for item in value)):
        raise TypeError(f"{key!r} must be a list of arrays or null, got {value!r:.50}")
    return value


def model_weights(state, key, model):
    """optional_arrays, each shaped as the model's weight at its place (a list of
    model.get_weights()'s length), so a wrong one fails now, not when fit ends."""
    value = optional_arrays(state, key)
    if value is None or model is None:
        return value
    weights = model.weights
    if len(value) != len(weights):
        raise ValueError(f"{key!r} holds {len(value)} arrays, the model has {len(weights)} "
                         "weights")
    for i, (array, weight) in enumerate(zip(value, weights)):
        if array.shape != tuple(weight.shape) or array.dtype.kind != "f":
            raise ValueError(f"{key!r}[{i}] is {array.dtype} of shape {array.shape}, the "
                             f"model's weight {weight.name!r} is floating of shape "
                             f"{tuple(weight.shape)}")
    return value


_MONITOR = {"best": optional_number}
# what each built-in callback's get_state writes, field by field
FIELDS = {
    "EarlyStopping": {**_MONITOR, "wait": count, "best_epoch": count, "stopped_epoch": count,
                      "best_weights": optional_arrays},
    "ReduceLROnPlateau": {**_MONITOR, "wait": count, "cooldown_counter": count},
    "ModelCheckpoint": {**_MONITOR, "batches_since_save": count},
}
