"""ModelCheckpoint: save the model (or its weights) every epoch or every few batches."""

from __future__ import annotations

import os

from .. import progbar
from . import state_fields
from .early_stopping import MonitorCallback


class ModelCheckpoint(MonitorCallback):
    """Call ``model.save(path)`` (or ``model.save_weights(path)``) during fit.

    ``filepath`` may name the epoch (from 1) and any log entry: "ckpt-{epoch:02d}-{val_loss:.2f}
    .safetensors"; it must end in ``.safetensors`` or ``.shenjing`` (checked at construction).
    Args: filepath; monitor ("val_loss"); verbose; save_best_only (save only when the monitored
    quantity improves); save_weights_only; mode ("auto", "min", "max"); save_freq ("epoch" or a
    number of batches); initial_value_threshold (a best value to beat from the start).
    Within fit it runs after the other callbacks, so a checkpoint holds the state they reached.
    """

    saves_model = True  # see CallbackList

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, baseline=initial_value_threshold)
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(save_freq, int)
                                     or save_freq <= 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive number "
                             f"of batches, got {save_freq!r}.")
        from ..saving.paths import check_save_path  # here: saving imports the models package

        # as Keras: a filepath of the wrong kind fails now, not after the first epoch's work
        self.filepath = check_save_path(filepath, "ModelCheckpoint")
        self.verbose, self.save_best_only = verbose, save_best_only
        self.save_weights_only, self.save_freq = save_weights_only, save_freq
        self._batches_since_save = 0
        self._current_epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def get_state(self):
        return {**super().get_state(), "batches_since_save": self._batches_since_save}

    def set_state(self, state):
        super().set_state(state)
        self._batches_since_save = state_fields.count(state, "batches_since_save")

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += 1
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
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
            raise KeyError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r}: no "
                           f"{error} in the logs; they hold {sorted(fields)}.") from None

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

