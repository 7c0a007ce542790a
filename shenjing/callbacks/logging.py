"""Small callbacks around the logs: CSVLogger, TerminateOnNaN, LambdaCallback."""

from __future__ import annotations

import collections.abc
import csv
import math
import os

import numpy as np

from .. import progbar
from ..errors import ArgumentError
from .base import Callback


class CSVLogger(Callback):
    writes_files = True  # under a DataParallel, on rank 0 only (callbacks.base.CallbackList)
    """Write one CSV row per epoch: ``epoch`` (from 0), then the log keys sorted by name.

    When the first epoch has no validation entries, ``val_<key>`` columns are added anyway
    (filled with "NA"), as in Keras, so a later run with validation fits the same header.
    Args: filename; separator (","); append (add to an existing file instead of replacing it).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = os.fspath(filename), separator, append
        self.keys, self.writer, self.csv_file = None, None, None
        self.append_header = True

    def on_train_begin(self, logs=None):
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self.append_header = not f.readline()
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, "a" if self.append else "w",  # noqa: SIM115
                             newline="", encoding="utf-8")
        self.keys, self.writer = None, None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys += [f"val_{key}" for key in self.keys]
        if self.writer is None:
            self.writer = csv.writer(self.csv_file, delimiter=self.sep, lineterminator="\n")
            if self.append_header:
                self.writer.writerow(["epoch"] + self.keys)
        self.writer.writerow([epoch] + [_cell(logs.get(key, "NA")) for key in self.keys])
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


def _cell(value):
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, collections.abc.Iterable):
        return f"[{', '.join(map(str, value))}]"
    return value


class TerminateOnNaN(Callback):
    """Stop training at the end of the first batch whose loss is NaN or infinite.

    Args: raise_error (raise a RuntimeError at once instead of setting model.stop_training,
    which lets the epoch end and every callback's on_train_end run).
    """

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        if self.raise_error:
            raise RuntimeError(f"TerminateOnNaN: NaN or Inf loss at batch {batch} (loss {loss}); "
                               "training stopped.")
        progbar.print_msg(f"Batch {batch}: Invalid loss, terminating training")
        self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback made of functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``.

    Args: on_epoch_begin, on_epoch_end (called with epoch, logs); on_train_begin, on_train_end
    (logs); on_train_batch_begin, on_train_batch_end (batch, logs); any other hook by name.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        hooks = dict(kwargs, on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        for name, function in hooks.items():
            if function is None:
                continue
            if not name.startswith("on_") or not callable(getattr(Callback, name, None)):
                raise ArgumentError(f"LambdaCallback: {name!r} is not a callback hook; hooks are "
                                    f"on_train_begin, on_epoch_end, on_train_batch_end, ...")
            setattr(self, name, function)
