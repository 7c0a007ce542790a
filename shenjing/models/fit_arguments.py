"""The arguments of fit / evaluate / predict / *_on_batch, checked before any work starts.

Each check raises ArgumentError / ArgumentTypeError naming the method and the argument, with
Keras 3's wording where it has one; data is returned as NumPy arrays in the structure it came
in (one array, or a list of them for several inputs or outputs). What Keras 3 accepts we
accept (batch_size None means 32, verbose True/False); what would fail deep inside NumPy or
silently train on part of the data (a negative batch size) is refused here.
"""

from __future__ import annotations

import math

import numpy as np

from .. import arguments
from ..arguments import ArgumentError, ArgumentTypeError, fail

DEFAULT_BATCH_SIZE = 32  # Keras 3: batch_size=None means 32 for arrays


def batch_size(value, where) -> int:
    """None (Keras: 32) or a positive int; 0, negatives, bools and floats are refused."""
    if value is None:
        return DEFAULT_BATCH_SIZE
    return arguments.positive_int(value, "batch_size", where)


def verbose(value, where):
    """'auto', 0, 1 or 2; a bool is taken as 0/1 as Keras does (verbose=False is common)."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if (isinstance(value, str) and value == "auto") or (arguments.is_int(value)
                                                        and value in (0, 1, 2)):
        return value
    kind = ArgumentError if isinstance(value, (str, int, np.integer)) else ArgumentTypeError
    raise fail(where, f"verbose must be 'auto', 0, 1 or 2, got {value!r}.", kind)


def _is_array_like(value) -> bool:
    return isinstance(value, np.ndarray) or hasattr(value, "__array__") or (
        isinstance(getattr(value, "data", None), np.ndarray))


def data(value, name, where):
    """x, y or sample_weight: one array, or a list/tuple of arrays (one per input/output).

    A list holding Python numbers or lists (a list of lists) is refused as Keras 3 refuses it
    ("Unrecognized data type"): a list means several inputs here. Each array must hold numbers,
    have at least one axis and one sample, and no zero-size axis after the first."""
    if value is None:
        raise fail(where, f"{name} is required, got None.")
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise fail(where, f"{name} is an empty {type(value).__name__}; expected an array, or "
                          "one array per model input/output.")
    for item in items:
        if not _is_array_like(item):
            raise fail(where, f"Unrecognized data type: {name}={_short(value)} (of type "
                              f"{type(value).__name__}, holding {type(item).__name__}); pass a "
                              f"NumPy array (np.asarray({name})), or a list of arrays, one per "
                              "model input/output.", ArgumentTypeError)
    arrays = [_checked_array(item, name, where) for item in items]
    return arrays if isinstance(value, (list, tuple)) else arrays[0]


def _checked_array(value, name, where):
    array = arguments.as_array(value, name, where)
    if array.ndim == 0:
        raise fail(where, f"{name} must be at least rank 1 (samples first), got a scalar "
                          f"{array!r}.")
    if len(array) == 0:
        raise fail(where, f"{name} is empty: it has 0 samples (shape {array.shape}); pass at "
                          "least one sample.")
    empty = [axis for axis, size in enumerate(array.shape) if size == 0]
    if empty:
        raise fail(where, f"{name} of shape {array.shape} has a zero-size axis {empty[0]}; "
                          "every sample needs at least one value.")
    return array


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _flat(value):
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def same_samples(where, **named):
    """The common number of samples of every array given (x=..., y=..., sample_weight=...)."""
    sizes = {label: [len(a) for a in _flat(value)] for label, value in named.items()}
    distinct = {n for counts in sizes.values() for n in counts}
    if len(distinct) > 1:
        shown = "; ".join(f"'{label}' sizes: {', '.join(map(str, counts))}"
                          for label, counts in sizes.items() if counts)
        raise fail(where, "Data cardinality is ambiguous: all inputs and targets need the same "
                          f"number of samples ({shown}).")
    return distinct.pop()


def sample_weight(value, n, where):
    """None, or weights (samples,) or (samples, steps) with one row per sample."""
    if value is None:
        return None
    weights = data(value, "sample_weight", where)
    if isinstance(weights, list):
        raise fail(where, "sample_weight must be one array (samples,), got a list of "
                          f"{len(weights)}.", ArgumentTypeError)
    if weights.ndim > 2:
        raise fail(where, f"sample_weight must have shape (samples,) or (samples, steps), got "
                          f"{weights.shape}.")
    if len(weights) != n:
        raise fail(where, f"sample_weight has {len(weights)} entries for {n} samples; expected "
                          "one per sample.")
    values = weights.astype(np.float64, copy=False)
    for bad, what in ((~np.isfinite(values), "finite (no NaN or inf)"), (values < 0, ">= 0")):
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise fail(where, f"sample_weight must be {what}, got {values[index]} at index "
                              f"{index[0] if len(index) == 1 else index} ({int(bad.sum())} such "
                              "entries); a weight scales a sample's loss, so it cannot be "
                              "negative or undefined.")
    return weights


def class_weight(value, where):
    """None or {class id (int): weight (number)}."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail(where, f"class_weight must be a dict {{class id: weight}}, got "
                          f"{_short(value)}.", ArgumentTypeError)
    for label, weight in value.items():
        arguments.integer(label, "class_weight's keys (class ids)", where, 0)
        arguments.number(weight, f"class_weight[{label}]", where, 0.0)
    return value


def class_weight_keys(value, classes, where):
    """class_weight's keys within 0..classes-1, classes taken from the model's output (Keras's
    wording; a key past the last class would weigh no sample, silently)."""
    if value is None or classes is None:
        return
    outside = sorted(k for k in value if not 0 <= k < classes)
    if outside:
        raise fail(where, f"Expected `class_weight` to be a dict with keys from 0 to one less "
                          f"than the number of classes, found {value}: the model's output has "
                          f"{classes} classes, and {', '.join(map(str, outside))} "
                          f"{'are' if len(outside) > 1 else 'is'} not one of 0..{classes - 1}.")


def validation_split(value, n, where) -> float:
    """A float in [0, 1) that leaves both parts at least one sample (Keras's message)."""
    split = arguments.number(value, "validation_split", where, 0.0, 1.0, high_open=True)
    if split:
        split_at = math.floor(n * (1.0 - split))
        if split_at in (0, n):
            raise fail(where, f"Training data contains {n} samples, which is not sufficient to "
                              "split it into a validation and training set as specified by "
                              f"`validation_split={value}`. Either provide more data, or a "
                              "different value for the `validation_split` argument.")
    return split


def validation_data(value, where):
    """None or (x_val, y_val) or (x_val, y_val, sample_weight_val), each checked."""
    if value is None:
        return None
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise fail(where, "validation_data is expected to be in format `(x, y)` or `(x, y, "
                          f"sample_weight)`, got {_short(value)}.", ArgumentTypeError)
    x = data(value[0], "validation_data's x", where)
    y = data(value[1], "validation_data's y", where)
    n = same_samples(where, x=x, y=y)
    weights = sample_weight(value[2], n, where) if len(value) == 3 else None
    return (x, y) if len(value) == 2 else (x, y, weights)


def epochs(epochs_value, initial_epoch, where):
    """epochs (the index of the last epoch, >= 0) and initial_epoch (0..epochs)."""
    last = arguments.non_negative_int(epochs_value, "epochs", where)
    first = arguments.non_negative_int(initial_epoch, "initial_epoch", where)
    if first > last:
        raise fail(where, f"initial_epoch={first} is past epochs={last}: epochs is the index of "
                          "the last epoch (as in Keras), not a number of epochs to add; pass "
                          f"epochs > {first} to train further.")
    return last, first


def check_fit(where, x, y, batch, epochs_value, verbose_value, split, validation, shuffle,
              classes, weights, initial_epoch):
    """Every fit argument checked; returns (x, y, sample_weight, batch_size, verbose, split,
    validation_data) normalized."""
    x, y = data(x, "x", where), data(y, "y", where)
    n = same_samples(where, x=x, y=y)
    weights = sample_weight(weights, n, where)
    if classes is not None and weights is not None:
        raise fail(where, "pass class_weight or sample_weight, not both (Keras refuses both "
                          "too); fold the class weights into sample_weight.")
    class_weight(classes, where)
    batch = batch_size(batch, where)
    epochs(epochs_value, initial_epoch, where)
    verbose_value = verbose(verbose_value, where)
    arguments.boolean(shuffle, "shuffle", where)
    validation = validation_data(validation, where)
    split = validation_split(split, n, where) if validation is None else arguments.number(
        split, "validation_split", where, 0.0, 1.0, high_open=True)
    return x, y, weights, batch, verbose_value, split, validation


def check_evaluate(where, x, y, batch, verbose_value, weights):
    """evaluate's arguments; returns (x, y, sample_weight, batch_size, verbose)."""
    x, y = data(x, "x", where), data(y, "y", where)
    n = same_samples(where, x=x, y=y)
    return (x, y, sample_weight(weights, n, where), batch_size(batch, where),
            verbose(verbose_value, where))


def check_predict(where, x, batch, verbose_value):
    """predict's arguments; returns (x, batch_size, verbose)."""
    x = data(x, "x", where)
    same_samples(where, x=x)
    return x, batch_size(batch, where), verbose(verbose_value, where)


def check_batch(where, x, y=None, weights=None, targets=True):
    """train_on_batch / test_on_batch (targets) and predict_on_batch: (x, y, sample_weight)."""
    x = data(x, "x", where)
    if not targets:
        same_samples(where, x=x)
        return x, None, None
    y = data(y, "y", where)
    n = same_samples(where, x=x, y=y)
    return x, y, sample_weight(weights, n, where)


def optional_steps(value, name, where):
    """None (as many batches as the data holds) or a positive int."""
    return None if value is None else arguments.positive_int(value, name, where)


def validation_freq(value, where):
    """An int >= 1 (validate every that many epochs) or a list of 1-based epochs (Keras)."""
    if isinstance(value, list):
        for item in value:
            arguments.positive_int(item, "validation_freq's epochs", where)
        return value
    if not arguments.is_int(value):
        raise fail(where, "Expected `validation_freq` to be a list or int. Received: "
                          f"validation_freq={value!r} of the type {type(value)}.",
                   ArgumentTypeError)
    return arguments.positive_int(value, "validation_freq", where)


def should_validate(epoch, freq) -> bool:
    """Whether epoch (0-based) ends with validation under validation_freq."""
    return (epoch + 1) % freq == 0 if isinstance(freq, int) else (epoch + 1) in freq


def check_loop(where, epochs_value, initial_epoch, verbose_value, steps_per_epoch,
               validation_steps, validation_batch_size, freq):
    """fit's arguments that hold whatever the data is; returns them normalized by name."""
    epochs(epochs_value, initial_epoch, where)
    return {"epochs": epochs_value, "initial_epoch": initial_epoch,
            "verbose": verbose(verbose_value, where),
            "steps_per_epoch": optional_steps(steps_per_epoch, "steps_per_epoch", where),
            "validation_steps": optional_steps(validation_steps, "validation_steps", where),
            "validation_batch_size": optional_steps(validation_batch_size,
                                                    "validation_batch_size", where),
            "validation_freq": validation_freq(freq, where)}


def check_source_fit(where, x, split, shuffle, classes):
    """fit with a generator or PyDataset: validation_split needs arrays (Keras's message)."""
    arguments.boolean(shuffle, "shuffle", where)
    class_weight(classes, where)
    if arguments.number(split, "validation_split", where, 0.0, 1.0, high_open=True):
        raise fail(where, "Argument `validation_split` is only supported for tensors or NumPy "
                          f"arrays. Found incompatible type in the input: [{type(x)}]")


def check_structure(model, where, x, y=None):
    """As many input arrays as the model has inputs (and targets as outputs), before any
    work: a tuple (x1, x2) given to a one-input model is refused naming x."""
    if not model.built:
        return
    for name, data, expected in (("x", x, len(model.inputs)), ("y", y, len(model.outputs))):
        got = len(data) if isinstance(data, (list, tuple)) else 1
        if data is not None and got != expected:
            what = "input" if name == "x" else "output"
            raise ArgumentError(f"{where}: {name} holds {got} array{'s' * (got != 1)} for a "
                                f"model with {expected} {what}(s); a list or tuple of arrays "
                                f"means one per model {what} (one array for one {what}: "
                                f"pass np.asarray({name}) if it is nested).")

def classes(model):
    """The number of classes of a one-output model (2 for one sigmoid unit), else None."""
    if not model.built or len(model.outputs) != 1:
        return None
    last = model.outputs[0].shape[-1] if model.outputs[0].shape else None
    return None if last is None else max(int(last), 2)
