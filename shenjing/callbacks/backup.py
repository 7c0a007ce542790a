"""BackupAndRestore: fit goes on where an interrupted fit (a crash, a kill) left off.

The backup is a model file with the resume fields of shenjing/models/resume.py (weights,
optimizer slots, epochs done, the random state, the other callbacks' states and, for a
save_freq of N batches, the batch and the epoch's running metric totals). Run the same fit
again with the callback: at its start the backup's weights and state go into the model and fit
starts from the epoch (and batch) after the backup, so it ends as the uninterrupted fit would,
weights equal bit for bit. A fit that ends normally deletes the backup (delete_checkpoint).
"""

from __future__ import annotations

import os
import shutil

from .. import arguments
from ..distribution import context as distribution_context
from ..errors import ArgumentError, ArgumentTypeError
from ..io import FileFormatError
from .base import Callback
from .checkpoint import batch_save_due

LATEST, PREVIOUS = "latest.shenjing", "previous.shenjing"


class BackupAndRestore(Callback):
    """Back the model up during fit; restore the backup when the next fit starts.

    Args: backup_dir (a folder for this run's backups only; made when needed); save_freq
    ('epoch', or a number of batches: a backup after every save_freq batches, resumed at the
    next batch); double_checkpoint (keep the backup before the latest one too, and restore it
    if the latest cannot be read); delete_checkpoint (delete backup_dir when fit ends without
    an error). Resume with the same model architecture, compile arguments, data, batch_size and
    callbacks. Keras's files are .weights.h5 and JSON; ours is one model file (see module doc).
    """

    saves_model = True  # after the other callbacks, so a backup holds the state they reached

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        where = "BackupAndRestore"
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ArgumentError(f"{where}: backup_dir must be a non-empty path to a folder, "
                                f"got {backup_dir!r}.")
        if save_freq != "epoch":
            if not arguments.is_int(save_freq):
                raise ArgumentTypeError(f"{where}: save_freq must be 'epoch' or a positive "
                                        f"number of batches, got {save_freq!r}.")
            arguments.positive_int(save_freq, "save_freq", where)
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = arguments.boolean(double_checkpoint, "double_checkpoint", where)
        self.delete_checkpoint = arguments.boolean(delete_checkpoint, "delete_checkpoint", where)
        self._latest = os.path.join(self.backup_dir, LATEST)
        self._previous = os.path.join(self.backup_dir, PREVIOUS)
        self._batches_since_save = 0

    # ----- restoring ---------------------------------------------------------------------
    def restore(self, model, callbacks, initial_epoch) -> int:
        """Called by fit before its first epoch: put the backup (if any) into ``model`` and
        return the epoch to start from (``initial_epoch`` when there is no backup)."""
        paths = [self._latest] + ([self._previous] if self.double_checkpoint else [])
        paths = [p for p in paths if os.path.exists(p)]
        if not paths:
            return initial_epoch
        custom = {type(c).__name__: type(c) for c in callbacks}  # their saved states
        from ..saving import load_model  # here: saving imports the models package

        for i, path in enumerate(paths):
            try:
                saved = load_model(path, custom_objects=custom)
                break
            except (OSError, FileFormatError):
                if i == len(paths) - 1:  # no readable backup left: say so
                    raise
        _take_over(model, saved, path)
        return model.completed_epochs

    # ----- backing up ----------------------------------------------------------------------
    # no get_state: a backup is written as the batch count restarts from 0, where a resumed
    # fit starts it too
    def on_train_begin(self, logs=None):
        self._batches_since_save = 0

    def on_train_batch_end(self, batch, logs=None):
        if batch_save_due(self):
            self._back_up()

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._back_up()

    def on_train_end(self, logs=None):
        if not distribution_context.writes_files():  # rank 0 writes and deletes
            return
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir)

    def _back_up(self):
        if not distribution_context.writes_files():
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._latest):
            os.replace(self._latest, self._previous)
        self.model.save(self._latest)  # written to a temporary file, then renamed


def restore_from_backup(callbacks, model, initial_epoch) -> int:
    """For fit: the epoch to start from, after the BackupAndRestore among ``callbacks`` (at
    most one) restored its backup into ``model``."""
    backups = [c for c in callbacks if isinstance(c, BackupAndRestore)]
    if len(backups) > 1:
        raise ArgumentError(f"fit: expected at most one BackupAndRestore callback, got "
                            f"{len(backups)}.")
    return backups[0].restore(model, callbacks, initial_epoch) if backups else initial_epoch


def _take_over(model, saved, path):
    """Weights, optimizer state and resume fields of the loaded ``saved`` into ``model``.
    Variables are matched by position: the layer names of a model made again in another
    process may differ from the saved ones (dense_3 instead of dense)."""
    if model.optimizer is None or type(model.optimizer) is not type(saved.optimizer):
        raise FileFormatError(path, f"the backup was trained with "
                              f"{type(saved.optimizer).__name__}, but this model is compiled "
                              f"with {type(model.optimizer).__name__}", field="compile_config")
    try:
        model.set_weights(saved.get_weights())
    except (ValueError, TypeError) as error:
        raise FileFormatError(path, f"the backup's weights do not fit this model ({error}); "
                              "resume with the same architecture", field="weights") from None
    if not callable(model.optimizer._learning_rate):  # as a scheduler callback had set it
        model.optimizer.learning_rate = saved.optimizer.learning_rate
    names = {v.name: w.name for v, w in zip(saved.trainable_weights, model.trainable_weights,
                                             strict=True)}
    state = {}
    for key, value in saved.optimizer.get_state().items():
        variable, _, slot = key.rpartition("/")
        state[f"{names[variable]}/{slot}" if variable in names else key] = value
    model.optimizer.set_state(state, model.trainable_weights)
    model.completed_epochs = saved.completed_epochs
    model._saved_rng_state = saved._saved_rng_state
    model._saved_position = getattr(saved, "_saved_position", None)


__all__ = ["BackupAndRestore", "restore_from_backup"]
