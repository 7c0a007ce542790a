"""Resume fit exactly where a checkpoint was written: mid-epoch, with the callbacks' state.

A model saved during fit (by ModelCheckpoint, or model.save from any callback) records in its
``training_state`` metadata, beside ``epoch`` (epochs completed) and ``rng_state``:
- ``batch``: batches done in the epoch under way (absent at an epoch's end);
- ``epoch_rng_state``: the random state at that epoch's start, which drew its shuffle order;
- ``metrics``: the epoch's running totals ({name: [total, count]}), so its logs cover every batch;
- ``callbacks``: each callback's ``get_state()``, keyed by class name (``EarlyStopping``, then
  ``EarlyStopping_1`` for a second one); a list of arrays in a state (EarlyStopping's best
  weights) is stored as tensors ``callbacks/<key>/<field>/<i>`` and as {"tensors": count}.
``fit(initial_epoch=model.completed_epochs)`` on the loaded model, with the same data,
batch_size, shuffle and callbacks, puts it all back: it draws the same shuffle order, skips the
batches already done, continues the random stream, and each callback picks its state up, so
the run goes on as if never interrupted. (Keras 3 has no mid-epoch resume; this is ours.)
"""

from __future__ import annotations

import re

import numpy as np

from .. import arguments, utils
from ..callbacks import state_fields
from ..distribution import context as distribution_context
from ..io import FileFormatError

TENSOR_PREFIX = "callbacks/"  # callback arrays in a model file; never weights of the model


# ----- while fit runs: where it stands --------------------------------------------------------
def note_epoch_start(model, epoch):
    """Fit is about to draw epoch `epoch`'s order: remember the random state that draws it."""
    model._fit_position = {"epoch": epoch, "batch": 0, "epoch_rng_state": utils.get_rng_state()}


def note_batch_done(model, batches_done):
    model._fit_position["batch"] = batches_done


def note_fit_end(model):
    """Saves after fit carry no position or callback state of a finished run."""
    model._fit_position, model._fit_callbacks = None, None


# ----- saving ----------------------------------------------------------------------------------
def checkpoint_state(model):
    """(fields for ``training_state``, tensors) that let fit resume exactly; for save_model."""
    fields, tensors = {}, {}
    position = getattr(model, "_fit_position", None)
    if position and position["batch"] and position["epoch"] == model.completed_epochs:
        fields["batch"] = position["batch"]
        fields["epoch_rng_state"] = position["epoch_rng_state"]
        fields["metrics"] = _metric_totals(model)
    states = {}
    for key, callback in _keyed(getattr(model, "_fit_callbacks", None) or []):
        state = callback.get_state() if hasattr(callback, "get_state") else None
        if state is not None:
            states[key] = _tensors_out(key, dict(state), tensors)
    if states:
        fields["callbacks"] = states
    return fields, tensors


def _keyed(callbacks):
    """(key, callback) pairs: the class name, with _1, _2 ... for further ones of a class."""
    seen = {}
    for callback in callbacks:
        name = type(callback).__name__
        count = seen.get(name, 0)
        seen[name] = count + 1
        yield (name if count == 0 else f"{name}_{count}"), callback


def _tensors_out(key, state, tensors):
    for field, value in state.items():
        if isinstance(value, (list, tuple)) and value and all(
                isinstance(item, np.ndarray) for item in value):
            for i, array in enumerate(value):
                tensors[f"{TENSOR_PREFIX}{key}/{field}/{i}"] = array
            state[field] = {"tensors": len(value)}
    return state


def _metric_totals(model):
    """The running totals of the loss and mean metrics: of the global batches under a
    DataParallel (kept by distribution/metrics_sync.py at each batch), so that a checkpoint
    resumes under any number of ranks."""
    global_totals = getattr(model, "_global_metric_totals", None)
    if global_totals is not None and distribution_context.is_distributed():
        return dict(global_totals)
    return totals_of(model)


def totals_of(model):
    trackers = [model._loss_tracker] + [metric for _, metric in model._metrics or []]
    return {m.name: [float(m.total), float(m.count)] for m in trackers if hasattr(m, "total")}


# ----- loading ---------------------------------------------------------------------------------
class SavedPosition:
    """The checked resume fields of a loaded model file (see the module docstring). Every
    field must be one a writer makes: callback states by the callback's fields (the built-in
    ones' in full, best weights against the model's weights), metric totals as running sums,
    and each ``callbacks/...`` tensor claimed by a field."""

    def __init__(self, training, tensors, path, model, check_values=True, custom_objects=None):
        self.path, self.check_values = path, check_values
        self.rng_state = training["rng_state"]
        self.batch = training.get("batch", 0)
        if type(self.batch) is not int or not 0 <= self.batch < state_fields.MAX_COUNT:
            self._fail(f"'batch' must be an int from 0 to {state_fields.MAX_COUNT - 1}, got "
                       f"{self.batch!r:.100}")
        self.epoch_rng_state = training.get("epoch_rng_state")
        if self.batch:
            self._check_rng_state(self.epoch_rng_state)
        self.metrics = self._checked_metrics(training.get("metrics", {}))
        callbacks = training.get("callbacks", {})
        if not isinstance(callbacks, dict) or not all(
                isinstance(state, dict) for state in callbacks.values()):
            self._fail(f"'callbacks' must map names to objects, got {callbacks!r:.100}")
        claimed = set()
        self.callbacks = {key: self._callback_state(key, state, tensors, claimed, model,
                                                    custom_objects)
                          for key, state in callbacks.items()}
        check_callback_tensors(tensors, claimed, path)

    def _fail(self, problem):
        raise FileFormatError(self.path, problem, field="training_state")

    def _check_rng_state(self, state):
        generator = type(utils.get_rng().bit_generator)()  # a scratch one: the global stays
        try:
            if not isinstance(state, dict):
                raise TypeError(f"expected an object, got {state!r:.100}")
            generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            self._fail(f"'epoch_rng_state' is not a state of {type(generator).__name__} "
                       f"({error})")

    def _checked_metrics(self, metrics):
        """{name: [total, count]}: running sums of the epoch's batches so far, so a count is a
        finite number >= 0 (a sum of sample weights), 0 only with a total of 0, the total
        finite (unless check_values is off), and the loss's count a number of samples."""
        if not isinstance(metrics, dict) or not all(
                _is_pair_of_numbers(value) for value in metrics.values()):
            self._fail(f"'metrics' must map names to [total, count], got {metrics!r:.100}")
        for name, (total, count) in metrics.items():
            where = f"'metrics'[{name!r:.50}]"
            if not (arguments.is_finite_number(count) and 0 <= count < 2.0**53):
                self._fail(f"{where}: the count must be a finite number >= 0, got {count!r:.50}")
            if self.check_values and not arguments.is_finite_number(total):
                self._fail(f"{where}: the total is {total!r:.50}; pass check_values=False to load "
                           "it as it is")
            if count == 0 and total != 0:
                self._fail(f"{where}: a total of {total!r:.50} over a count of 0")
        if self.batch:
            loss = metrics.get("loss")
            if loss is None or loss[1] < 1 or not float(loss[1]).is_integer():
                self._fail(f"'metrics' must hold 'loss' as [total, samples so far] (a whole "
                           f"number >= 1) for the {self.batch} batches before the checkpoint, "
                           f"got {loss!r:.100}")
        return metrics

    def _callback_state(self, key, state, tensors, claimed, model, custom_objects):
        """A callback's saved state, its tensors put in; a built-in callback's state field by
        field, a custom one's (a class passed in custom_objects) by its own set_state later."""
        fields = state_fields.FIELDS.get(_callback_class(key, custom_objects, self._fail))
        state = self._tensors_in(key, state, tensors, claimed)
        if fields is None:
            return state
        unknown, missing = sorted(set(state) - set(fields)), sorted(set(fields) - set(state))
        if unknown or missing:
            self._fail(f"callback {key!r}: unknown fields {unknown[:5]!r:.200}, missing "
                       f"{missing!r}; its state holds {', '.join(fields)}")
        for field, check in fields.items():
            try:
                check(state, field)
            except (TypeError, ValueError) as error:
                self._fail(f"callback {key!r}: {error}")
        best = state["best"]
        if self.check_values and best is not None and not arguments.is_finite_number(best):
            self._fail(f"callback {key!r}: 'best' is {best!r:.50}; pass check_values=False to "
                       "load it as it is")
        if state.get("best_weights") is not None:
            self._check_best_weights(key, state["best_weights"], model)
        return state

    def _check_best_weights(self, key, arrays, model):
        """Weights to restore into ``model`` at the end of fit: one per model weight, each of
        its shape, floating (not cast from ints), checked as the model's weights are."""
        from ..saving.weights import check_value  # here: saving imports this module

        weights = model.weights
        if len(arrays) != len(weights):
            self._fail(f"callback {key!r}: 'best_weights' holds {len(arrays)} tensors, the model "
                       f"has {len(weights)} weights")
        for i, (array, variable) in enumerate(zip(arrays, weights)):
            name = f"{TENSOR_PREFIX}{key}/best_weights/{i}"
            if array.shape != variable.shape:
                raise FileFormatError(self.path, f"shape {array.shape}, where the model's weight "
                                      f"{variable.name!r} has shape {variable.shape}",
                                      field=f"tensor {name!r}")
            arrays[i] = check_value(self.path, name, array, variable.dtype, self.check_values)
            if (self.check_values and variable.name.endswith("moving_variance") and array.size
                    and array.min() < 0):
                raise FileFormatError(self.path, f"negative variances (down to "
                                      f"{array.min():.3g}) for {variable.name!r}; pass "
                                      "check_values=False to load them as they are",
                                      field=f"tensor {name!r}")

    def _tensors_in(self, key, state, tensors, claimed):
        state = dict(state)
        for field, value in state.items():
            if isinstance(value, dict) and set(value) == {"tensors"}:
                count = value["tensors"]
                if type(count) is not int or not 0 <= count <= len(tensors):
                    self._fail(f"callback {key!r}: field {field!r} claims {count!r:.50} tensors")
                names = [f"{TENSOR_PREFIX}{key}/{field}/{i}" for i in range(count)]
                missing = [name for name in names if name not in tensors]
                if missing:
                    self._fail(f"callback {key!r}: its field {field!r} needs tensor "
                               f"{missing[0]!r}, which the file does not hold")
                claimed.update(names)
                state[field] = [tensors[name] for name in names]
        return state

    # ----- fit puts it back ---------------------------------------------------------------------
    def restore_callbacks(self, callbacks):
        """Give each callback of this fit the state saved under its key."""
        for key, callback in _keyed(callbacks):
            if key in self.callbacks and hasattr(callback, "set_state"):
                try:
                    callback.set_state(self.callbacks[key])
                except (KeyError, TypeError, ValueError) as error:
                    self._fail(f"callback {key!r}: its saved state does not fit it ({error})")

    def draw_order(self, draw):
        """The interrupted epoch's order, drawn from the random state at its start; then the
        random stream goes on from where the checkpoint left it."""
        utils.set_rng_state(self.epoch_rng_state)
        order = draw()
        utils.set_rng_state(self.rng_state)
        return order

    def restore_metrics(self, model):
        """The epoch's running totals; metrics made at the next batch get theirs then."""
        loss = self.metrics.get("loss", (0, 0)) if distribution_context.writes_files() else (0, 0)
        model._loss_tracker.total, model._loss_tracker.count = loss
        model._pending_metric_totals = (self.path, dict(self.metrics))
        apply_pending_metric_totals(model)


def apply_pending_metric_totals(model):
    """Set the running totals saved for the metrics once they exist (made at the first batch),
    before that batch adds to them: the same additions in the same order as without a pause.
    The file must hold the totals of exactly the model's metrics (a missing one would restart
    from 0, an unknown one would be dropped: either way a wrong log)."""
    pending = getattr(model, "_pending_metric_totals", None)
    if not pending or model._metrics is None:
        return
    path, totals = pending
    model._pending_metric_totals = None
    if not distribution_context.writes_files():  # the global totals go on once, on rank 0
        totals = {name: [0.0, 0.0] for name in totals}
    tracked = {metric.name: metric for _, metric in model._metrics if hasattr(metric, "total")}
    if set(totals) != {"loss", *tracked}:
        raise FileFormatError(path, f"'metrics' holds the running totals of {sorted(totals)}, "
                              f"but the model's metrics are {sorted({'loss', *tracked})}; resume "
                              "with the model compiled as it was saved", field="training_state")
    for name, metric in tracked.items():
        metric.total, metric.count = totals[name]


def _is_pair_of_numbers(value):
    return isinstance(value, list) and len(value) == 2 and all(
        arguments.is_number(v) for v in value)


def _callback_class(key, custom_objects, fail):
    """The class name a callback key stands for (``EarlyStopping_1``: the second
    EarlyStopping): a built-in callback with a state, or a Callback subclass the caller passed
    in custom_objects; any other key is refused."""
    from ..callbacks import Callback

    custom_objects = custom_objects or {}
    for name in (key, re.sub(r"_[1-9][0-9]*$", "", key)):
        custom = custom_objects.get(name)
        if name in state_fields.FIELDS or (isinstance(custom, type)
                                            and issubclass(custom, Callback)):
            return name
    fail(f"callback {key!r:.100}: no known callback saves a state under that name (the "
         f"built-in ones that do: {', '.join(state_fields.FIELDS)}); for a callback of your "
         "own, pass its class in custom_objects")


def check_callback_tensors(tensors, claimed, path):
    """Every ``callbacks/...`` tensor of the file must belong to a saved callback field."""
    stray = sorted(name for name in tensors if name.startswith(TENSOR_PREFIX)
                   and name not in claimed)
    if stray:
        raise FileFormatError(path, f"tensors {stray[:5]!r:.300} belong to no field of a saved "
                              "callback state", field="training_state")


def keep_saved_position(model, training, tensors, path, check_values=True,
                        custom_objects=None):
    """For load_model: check the resume fields of ``training_state`` and keep them on the model
    until ``fit(initial_epoch=model.completed_epochs)`` takes them."""
    model._saved_position = SavedPosition(training, tensors, path, model, check_values,
                                          custom_objects)


def take_saved_position(model, initial_epoch):
    """The kept position if this fit resumes the loaded model where it stopped (once), or None."""
    position = getattr(model, "_saved_position", None)
    if position is None or initial_epoch != model.completed_epochs:
        return None
    model._saved_position = None
    return position


def start_epoch(model, epoch, steps, draw_order, saved=None):
    """(order, first batch) of an epoch of fit; with `saved` (the loaded model's position, on
    the first epoch of the resumed fit) the interrupted epoch's order and the batch after the
    checkpoint. draw_order() draws the epoch's order from the global random generator."""
    if saved is None or not saved.batch:
        note_epoch_start(model, epoch)
        return draw_order(), 0
    if saved.batch > steps:
        raise FileFormatError(saved.path, f"the checkpoint was written after batch {saved.batch} "
                              f"of epoch {epoch + 1}, but this fit has {steps} batches an epoch; "
                              "resume with the same data and batch_size",
                              field="training_state")
    model._fit_position = {"epoch": epoch, "batch": saved.batch,
                           "epoch_rng_state": saved.epoch_rng_state}
    order = saved.draw_order(draw_order)
    saved.restore_metrics(model)
    return order, saved.batch
