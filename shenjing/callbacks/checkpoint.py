"""ModelCheckpoint: save the model (or its weights) every epoch or every few batches."""

from __future__ import annotations

import os
import string

from .. import arguments, progbar
from ..errors import ArgumentError, ArgumentTypeError
from . import state_fields
from .early_stopping import MonitorCallback


def batch_save_due(callback) -> bool:
    """After a train batch: count it, and say whether callback's save_freq (a number of
    batches; never for "epoch") has come round, restarting the count then."""
    if callback.save_freq == "epoch":
        return False
    callback._batches_since_save += 1
    if callback._batches_since_save < callback.save_freq:
        return False
    callback._batches_since_save = 0
    return True


class MissingLogError(ArgumentError, KeyError):
    """A filepath field that the logs do not hold at save time: ours (an ArgumentError), and a
    KeyError as Keras raises there."""

    def __str__(self):  # a KeyError would print its message in quotes
        return ValueError.__str__(self)


class ModelCheckpoint(MonitorCallback):
    """Call ``model.save(path)`` (or ``model.save_weights(path)``) during fit.

    ``filepath`` may name the epoch (from 1) and any log entry: "ckpt-{epoch:02d}-{val_loss:.2f}
    .safetensors"; it must end in ``.safetensors`` or ``.shenjing`` (shenjing's files, which
    resume exactly), or ``.keras`` (``.weights.h5`` with save_weights_only) for Keras 3's files,
    which hold no training state (checked at construction).
    Args: filepath; monitor ("val_loss"); verbose; save_best_only (save only when the monitored
    quantity improves); save_weights_only; mode ("auto", "min", "max"); save_freq ("epoch" or a
    number of batches); initial_value_threshold (a best value to beat from the start).
    Within fit it runs after the other callbacks, so a checkpoint holds the state they reached.
    """

    saves_model = True  # see CallbackList

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        where = "ModelCheckpoint"
        if not isinstance(monitor, str):
            raise ArgumentTypeError(f"{where}: monitor must be the name of a log entry such as "
                                    f"'val_loss', got {monitor!r}.")
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        if save_freq != "epoch":
            kind = ArgumentError if isinstance(save_freq, str) or arguments.is_int(
                save_freq) else ArgumentTypeError
            if not arguments.is_int(save_freq) or save_freq <= 0:
                raise kind(f"{where}: save_freq must be 'epoch' or a positive number of "
                           f"batches, got {save_freq!r}.")
        arguments.boolean(save_best_only, "save_best_only", where)
        arguments.boolean(save_weights_only, "save_weights_only", where)
        if not (isinstance(verbose, (bool, int)) and verbose in (0, 1, 2)):
            raise ArgumentError(f"{where}: verbose must be 0 or 1, got {verbose!r}.")
        from ..saving.paths import check_save_path  # here: saving imports the models package

        # as Keras: a filepath of the wrong kind fails now, not after the first epoch's work
        self.filepath = check_save_path(filepath, where,
                                        keras_kind="weights" if save_weights_only else "model")
        self._fields = filepath_fields(self.filepath)
        if "batch" in self._fields and save_freq == "epoch":  # Keras fails at the first save
            raise ArgumentError(f"{where}: filepath {self.filepath!r} names {{batch}}, which "
                                "only save_freq=N (a number of batches) fills; saves at each "
                                "epoch's end have no batch.")
        self.verbose, self.save_best_only = verbose, save_best_only
        self.save_weights_only, self.save_freq = save_weights_only, save_freq
        self._batches_since_save = 0
        self._current_epoch = 0

    def on_train_begin(self, logs=None):
        """Refuse, before the first batch, a filepath field that no log entry of this model
        will fill (a typo, or a metric it does not compile): Keras fails only at the save."""
        keys = log_names(self.model)
        missing = sorted(self._fields - {"epoch", "batch"} - keys) if keys else []
        if missing:
            raise ArgumentError(
                f"ModelCheckpoint: filepath {self.filepath!r} names "
                f"{', '.join('{' + name + '}' for name in missing)}, which no log entry of "
                f"model '{self.model.name}' fills; it can use {{epoch}}, {{batch}} and "
                f"{', '.join('{' + key + '}' for key in sorted(keys))}.")

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def get_state(self):
        return {**super().get_state(), "batches_since_save": self._batches_since_save}

    def set_state(self, state):
        super().set_state(state)
        self._batches_since_save = state_fields.count(state, "batches_since_save")

    def on_train_batch_end(self, batch, logs=None):
        if batch_save_due(self):
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _file_path(self, epoch, batch, logs) -> str:
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields.setdefault("batch", batch + 1)
        try:
            return self.filepath.format(**fields)
        except KeyError as error:
            raise MissingLogError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r}: "
                                  f"no {error} in the logs (val_ entries need validation "
                                  f"data); they hold {sorted(fields)}.") from None

    def _should_save(self, epoch, logs, filepath) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                progbar.print_msg(f"Epoch {epoch + 1}: saving model to {filepath}")
            return True
        current = self._get_monitor_value(logs, "saving the best model")
        if current is None:
            return True  # as Keras: save rather than lose the model
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                progbar.print_msg(f"Epoch {epoch + 1}: {self.monitor} improved from {best} to "
                                  f"{current:.5f}, saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            progbar.print_msg(f"Epoch {epoch + 1}: {self.monitor} did not improve from {best}")
        return False

    def _save(self, epoch, batch, logs):
        filepath = self._file_path(epoch, batch, logs)
        if os.path.isdir(filepath):
            raise IsADirectoryError(f"ModelCheckpoint: filepath {filepath!r} is a directory; give "
                                    "the path of a file inside it.")
        if not self._should_save(epoch, logs, filepath):
            return
        folder = os.path.dirname(filepath)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath)
        else:
            self.model.save(filepath)



def filepath_fields(filepath) -> set:
    """The names of filepath's format fields, each checked as Keras fills them (epoch and batch
    ints from 1, log entries floats): a positional field, an attribute or index, or a format
    spec that cannot format such a value is refused now, not at the end of the first epoch."""
    where = "ModelCheckpoint"
    try:
        parsed = list(string.Formatter().parse(filepath))
    except ValueError as error:
        raise ArgumentError(f"{where}: filepath {filepath!r} is not a valid format string: "
                            f"{error} (write a literal brace as '{{{{' or '}}}}').") from None
    names = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise ArgumentError(
                f"{where}: filepath {filepath!r} has the field {{{field}}}; fields must name "
                "the epoch, the batch or a log entry, e.g. {epoch:02d} or {val_loss:.2f}.")
        dummy = 1 if field in ("epoch", "batch") else 0.5
        try:
            if "{" in (spec or ""):
                raise ValueError("nested fields are not filled in")
            value = {"r": repr, "s": str, "a": ascii, None: lambda v: v}[conversion](dummy)
            format(value, spec or "")
        except (ValueError, TypeError, KeyError) as error:
            what = "an int" if dummy == 1 else "a float"
            raise ArgumentError(
                f"{where}: filepath {filepath!r}: the field {{{field}:{spec}}} cannot format "
                f"{what} (as {field} is filled in): {error}.") from None
        names.add(field)
    return names


def log_names(model) -> set:
    """The keys of the epoch logs fit gives model: loss, each compiled metric's name (prefixed
    by the output's name for several outputs), learning_rate (the schedule callbacks add it),
    and their val_ forms; empty if the model is not compiled."""
    from .. import metrics as metrics_module

    if not getattr(model, "compiled", False):
        return set()
    names = {"loss", "learning_rate"}
    outputs = getattr(model, "outputs", None) or [None]
    nested = (getattr(model, "_compile_metrics", None) is not None
              and getattr(model, "_metric_specs", []) is None)
    if len(outputs) > 1 or nested or getattr(model, "_weighted_metric_specs", None):
        # per-output losses and metrics, dict or nested metrics, weighted_metrics: their log
        # names are made at the first batch; a name the logs lack is refused when saving
        return set()
    for spec in model._metric_specs or []:
        if isinstance(spec, str):
            name = spec
        elif isinstance(spec, metrics_module.Metric):
            name = spec.name
        elif isinstance(spec, type) and issubclass(spec, metrics_module.Metric):
            name = spec().name
        elif isinstance(spec, dict):
            name = (spec.get("config") or {}).get("name") or str(spec.get("class_name"))
        else:
            name = getattr(spec, "__name__", None)
        if name is None:
            return set()  # a metric whose log name cannot be told: check nothing
        if len(outputs) > 1:
            names |= {f"{output.node.layer.name}_{name}" for output in outputs}
        else:
            names.add(name)
    return names | {f"val_{name}" for name in names - {"learning_rate"}}
