"""Data into fit / evaluate / predict: arrays, Python generators and iterables, PyDataset.

Each kind becomes a source of batches ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)`` (Keras's
``pack_x_y_sample_weight``), with x one array or a list in the model's input order (a dict is
taken by input name), y likewise by output name. EpochIterator walks a source the way Keras 3's
does: without ``steps_per_epoch`` an epoch is one pass; with it, epochs draw batches from one
pass until it runs out, then warn ("Your input ran out of data") and start a new pass at the
next epoch (a generator cannot start again: training stops there). Everything runs in the
calling thread; PyDataset refuses Keras's parallel loading arguments.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import arguments, utils
from ..arguments import ArgumentError, ArgumentTypeError, fail
from ..data import PyDataset, class_weight_to_sample_weight, split_validation
from ..distribution import context as distribution_context
from . import fit_arguments

RAN_OUT = ("Your input ran out of data; interrupting training. Make sure that your dataset or "
           "generator can generate at least `steps_per_epoch * epochs` batches.")


# ----- one batch -------------------------------------------------------------------------------
def unpack_x_y_sample_weight(data):
    """(x, y, sample_weight) from (x,), (x, y), (x, y, sample_weight) or x alone."""
    if isinstance(data, list):
        data = tuple(data)
    if not isinstance(data, tuple):
        return data, None, None
    if len(data) in (1, 2, 3):
        return tuple(data) + (None,) * (3 - len(data))
    raise ArgumentError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or `(x, y, "
                        f"sample_weight)`, found a tuple of {len(data)}.")


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    if y is None:
        return (x,)
    return (x, y) if sample_weight is None else (x, y, sample_weight)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def by_name(value, names, what, where):
    """A dict {name: array} as a list in the model's order of ``names`` (Keras's message for a
    missing key); any other value unchanged. A key the model does not have is refused."""
    if not isinstance(value, dict):
        return value
    missing = [name for name in names if name not in value]
    if missing:
        raise fail(where, f'Missing data for {what} "{missing[0]}". You passed a data dictionary '
                          f"with keys {sorted(map(str, value))}. Expected the following keys: "
                          f"{list(names)}")
    extra = sorted(str(key) for key in value if key not in names)
    if extra:
        raise fail(where, f"the data dictionary has keys {extra} that name no model {what}; "
                          f"expected the keys {list(names)}.")
    items = [value[name] for name in names]
    return items[0] if len(items) == 1 else items


def _names(tensors, model):
    """The names of the layers making tensors; None for a subclassed model's placeholders,
    which no named layer makes."""
    layers = [t.node.layer if t.node is not None else None for t in tensors]
    if any(layer is None or layer is model for layer in layers):
        return None
    return [layer.name for layer in layers]


class Structure:
    """The model's input and output names, to put dicts of data in order (None: not known)."""

    def __init__(self, model):
        built = getattr(model, "built", False) and getattr(model, "inputs", None)
        self.inputs = _names(model.inputs, model) if built else None
        self.outputs = _names(model.outputs, model) if built else None

    def x(self, value, where):
        return by_name(value, self.inputs, "input", where) if self.inputs else value

    def y(self, value, where):
        return by_name(value, self.outputs, "output", where) if self.outputs else value


def _as_arrays(value, name, where):
    if value is None:
        return None
    return fit_arguments.data(value, name, where)


def standardize_batch(batch, structure, where, class_weight=None, kind="generator",
                      targets=True):
    """A batch from a generator or PyDataset as arrays: (x,), (x, y) or (x, y, weights)."""
    if isinstance(batch, list) and kind == "PyDataset":
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        if targets or isinstance(batch, (list, tuple)):
            raise fail(where, f"When passing a {kind} to a model, it must return a tuple, either "
                              "(input,) or (inputs, targets) or (inputs, targets, "
                              f"sample_weights). Received: {fit_arguments._short(batch)} (of "
                              f"type {type(batch).__name__})", ArgumentTypeError)
        batch = (batch,)  # predict: x alone
    x, y, weights = unpack_x_y_sample_weight(batch)
    x = _as_arrays(structure.x(x, where), "x", where)
    y = _as_arrays(structure.y(y, where), "y", where)
    n = fit_arguments.same_samples(where, x=x, y=y)
    weights = fit_arguments.sample_weight(weights, n, where)
    if class_weight is not None and y is not None:
        if weights is not None:
            raise fail(where, "You cannot specify `class_weight` and `sample_weight` at the same "
                              "time.")
        if isinstance(y, list):
            raise fail(where, "class_weight works for a model with one output; use "
                              "sample_weight.")
        weights = class_weight_to_sample_weight(y, class_weight)
    return pack_x_y_sample_weight(x, y, weights)


# ----- sources of batches ----------------------------------------------------------------------
class ArraySource:
    """Arrays sliced into batches of batch_size, in a new (shuffled) order each pass."""

    resumable = True

    def __init__(self, x, y, sample_weight, batch_size, shuffle):
        self.xs = x if isinstance(x, list) else [x]
        self.ys = None if y is None else (y if isinstance(y, list) else [y])
        self.multi_x, self.multi_y = isinstance(x, list), isinstance(y, list)
        self.sample_weight, self.batch_size, self.shuffle = sample_weight, batch_size, shuffle
        self.n = len(self.xs[0])
        self.num_batches = max(1, -(-self.n // batch_size))

    def draw_order(self):
        if not self.shuffle:
            return np.arange(self.n)
        # under a DataParallel, rank 0's order: every rank slices the same global batches
        return distribution_context.same_on_all_ranks(utils.get_rng().permutation(self.n))

    def batch(self, index):
        x = [a[index] for a in self.xs]
        x = x if self.multi_x else x[0]
        if self.ys is None:
            return (x,)
        y = [a[index] for a in self.ys]
        weights = None if self.sample_weight is None else self.sample_weight[index]
        return pack_x_y_sample_weight(x, y if self.multi_y else y[0], weights)

    def passes(self, order=None, first=0):
        """One pass: the batches in `order` (drawn now if None) from batch `first` on."""
        order = self.draw_order() if order is None else order
        for step in range(first, self.num_batches):
            yield self.batch(order[step * self.batch_size:(step + 1) * self.batch_size])

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class IterSource:
    """A Python generator or iterator (one pass only) or an iterable (a new pass each time)."""

    resumable = False
    num_batches = None

    def __init__(self, data, structure, where, class_weight=None, targets=True):
        self.data, self.structure, self.where = data, structure, where
        self.class_weight, self.targets = class_weight, targets
        self.kind = "Python generator" if hasattr(data, "__next__") else "Python iterable"

    def passes(self):
        for batch in iter(self.data):
            yield standardize_batch(batch, self.structure, self.where, self.class_weight,
                                    self.kind, self.targets)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class PyDatasetSource:
    """A PyDataset: len(dataset) batches a pass, in a shuffled order with shuffle=True."""

    resumable = False

    def __init__(self, dataset, structure, where, shuffle, class_weight=None, targets=True):
        self.dataset, self.structure, self.where = dataset, structure, where
        self.shuffle, self.class_weight, self.targets = shuffle, class_weight, targets
        self.num_batches = arguments.non_negative_int(dataset.num_batches,
                                                      "the PyDataset's len()", where)
        if self.num_batches == 0:
            raise fail(where, "The PyDataset has length 0; it must hold at least one batch.")

    def passes(self):
        order = range(self.num_batches)
        if self.shuffle:
            order = distribution_context.same_on_all_ranks(
                utils.get_rng().permutation(self.num_batches))
        for index in order:
            yield standardize_batch(self.dataset[int(index)], self.structure, self.where,
                                    self.class_weight, "PyDataset", self.targets)

    def on_epoch_begin(self):
        self.dataset.on_epoch_begin()

    def on_epoch_end(self):
        self.dataset.on_epoch_end()


def is_data_source(x) -> bool:
    """A generator, iterator, iterable or PyDataset (not arrays, lists of them or a dict)."""
    if isinstance(x, PyDataset):
        return True
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)) or x is None:
        return False
    if hasattr(x, "__array__") or isinstance(getattr(x, "data", None), np.ndarray):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__")


def make_source(where, model, x, y=None, sample_weight=None, batch_size=None, shuffle=False,
                class_weight=None, targets=True):
    """The source of batches for x (and y, sample_weight), checked as Keras checks them."""
    structure = Structure(model)
    if is_data_source(x):
        kind = "a PyDataset" if isinstance(x, PyDataset) else "a generator"
        for name, value, what in (("y", y, "the targets"),
                                  ("sample_weight", sample_weight, "the sample weights")):
            if value is not None:
                raise fail(where, f"When providing `x` as {kind}, `{name}` should not be "
                                  f"passed. Instead, {what} should be included as part of "
                                  f"{kind}.")
        if batch_size is not None:
            raise fail(where, f"batch_size={batch_size!r} was given with x as {kind}, which "
                              "makes its own batches; leave batch_size out.")
        if isinstance(x, PyDataset):
            return PyDatasetSource(x, structure, where, shuffle, class_weight, targets)
        return IterSource(x, structure, where, class_weight, targets)
    x = fit_arguments.data(structure.x(x, where), "x", where)
    if not targets:
        fit_arguments.same_samples(where, x=x)
        model._check_structure(where, x)
        return ArraySource(x, None, None, fit_arguments.batch_size(batch_size, where), False)
    y = fit_arguments.data(structure.y(y, where), "y", where)
    n = fit_arguments.same_samples(where, x=x, y=y)
    model._check_structure(where, x, y)
    sample_weight = fit_arguments.sample_weight(sample_weight, n, where)
    if class_weight is not None:
        if sample_weight is not None:
            raise fail(where, "pass class_weight or sample_weight, not both (Keras refuses both "
                              "too); fold the class weights into sample_weight.")
        if isinstance(y, list):
            raise fail(where, f"class_weight works for a model with one output; this one has "
                              f"{len(y)} targets. Use sample_weight.")
        sample_weight = class_weight_to_sample_weight(y, class_weight)
    return ArraySource(x, y, sample_weight, fit_arguments.batch_size(batch_size, where), shuffle)


class EpochIterator:
    """Batches epoch by epoch, as Keras 3's EpochIterator hands them to fit (see the module
    docstring); ``exhausted`` is set once a source that cannot start again has run dry."""

    def __init__(self, source, steps_per_epoch=None):
        self.source, self.steps_per_epoch = source, steps_per_epoch
        self._batches, self._seen = None, 0
        self.exhausted, self.total = False, 0  # total: batches handed out so far
        self.num_batches = steps_per_epoch or source.num_batches

    def reset(self):
        """Start the next epoch on a new pass (evaluate does, each time, as Keras)."""
        self._batches, self._seen = None, 0

    def epoch(self, first_pass=None, first_step=0):
        """(step, batch) of one epoch; first_pass (an iterator of the batches from first_step
        on, for a resumed epoch of arrays) replaces a new pass."""
        source = self.source
        source.on_epoch_begin()
        known = source.num_batches
        if first_pass is not None:
            self._batches, self._seen = first_pass, first_step
        elif self._batches is None or self.steps_per_epoch is None:
            self._batches, self._seen = iter(source.passes()), 0
        step, limit = first_step, self.steps_per_epoch or known
        while limit is None or step < limit:
            if known and self._seen >= known:
                warnings.warn(RAN_OUT, stacklevel=3)
                break
            try:
                batch = next(self._batches)
            except StopIteration:
                self._batches = None
                if self.total == 0:
                    raise fail(source.where, f"When passing a {source.kind} to a model, it must "
                                             "yield at least one batch. Received an empty "
                                             f"{source.kind.split()[-1]}.") from None
                one_shot = hasattr(getattr(source, "data", None), "__next__")
                if known is None:
                    self.num_batches = self.num_batches or self._seen
                self.exhausted = step == 0 and one_shot
                if self.steps_per_epoch or step == 0 or (known is None and one_shot):
                    warnings.warn(RAN_OUT, stacklevel=3)
                break
            self.total += 1
            self._seen += 1
            yield step, batch
            step += 1
        if known and self._seen >= known:
            self._batches = None
        source.on_epoch_end()


def fit_sources(model, x, y, batch_size, shuffle, class_weight, sample_weight,
                 validation_split, validation_data, opts):
    """(training source, validation source or None), every argument checked."""
    where, structure = "fit", Structure(model)
    val_batch = opts["validation_batch_size"]
    validation = None
    if is_data_source(validation_data):
        validation = make_source(where, model, validation_data, batch_size=val_batch)
        validation_data = None
    elif isinstance(validation_data, (list, tuple)) and len(validation_data) in (2, 3):
        validation_data = (structure.x(validation_data[0], where),
                           structure.y(validation_data[1], where), *validation_data[2:])
    if is_data_source(x):
        fit_arguments.check_source_fit(where, x, validation_split, shuffle, class_weight)
        source = make_source(where, model, x, y, sample_weight, batch_size, shuffle,
                             class_weight)
        if validation_data is not None:
            validation = make_source(where, model, *validation_data[:2], *validation_data[2:],
                                     batch_size=val_batch or fit_arguments.DEFAULT_BATCH_SIZE)
        return source, validation
    x, y, sample_weight, batch_size, _, validation_split, validation_data = (
        fit_arguments.check_fit(where, structure.x(x, where), structure.y(y, where),
                                batch_size, opts["epochs"], opts["verbose"],
                                validation_split, validation_data, shuffle, class_weight,
                                sample_weight, opts["initial_epoch"]))
    model._check_structure(where, x, y)
    fit_arguments.class_weight_keys(class_weight, fit_arguments.classes(model), where)
    xs, ys = _as_list(x), _as_list(y)
    if class_weight is not None and len(ys) != 1:
        raise ArgumentError(f"fit: class_weight works for a model with one output; this one "
                            f"has {len(ys)} targets. Use sample_weight.")
    if validation_split and validation_data is None:
        # Keras's rule: the last fraction of the samples, taken before any shuffling; the
        # held-out samples keep their sample weights (class_weight weighs training only)
        train, held_out = split_validation([*xs, *ys, sample_weight], validation_split)
        validation_data = (list(held_out[:len(xs)]), list(held_out[len(xs):-1]), held_out[-1])
        xs, ys, sample_weight = list(train[:len(xs)]), list(train[len(xs):-1]), train[-1]
    if class_weight is not None:
        sample_weight = class_weight_to_sample_weight(ys[0], class_weight)
    source = ArraySource(xs if isinstance(x, list) else xs[0],
                         ys if isinstance(y, list) else ys[0], sample_weight, batch_size,
                         shuffle)
    if validation_data is not None and validation is None:
        val_x, val_y = (_as_list(part) for part in validation_data[:2])
        validation = ArraySource(val_x if isinstance(x, list) else val_x[0],
                                 val_y if isinstance(y, list) else val_y[0],
                                 next(iter(validation_data[2:]), None),
                                 val_batch or batch_size, False)
    return source, validation
