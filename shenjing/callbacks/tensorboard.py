"""TensorBoard: the logs of fit as event files TensorBoard reads (tensorboard --logdir logs).

Written with tensorboardX, an optional extra (pip install "shenjing[tensorboard]"), into
``log_dir/train`` and ``log_dir/validation`` under Keras 3's tags: ``epoch_<name>`` per epoch
(val_ entries go to validation/ without their prefix; train/ also gets ``epoch_learning_rate``),
``batch_<name>`` every update_freq batches, ``evaluation_<name>_vs_iterations`` after an
evaluate that is given the callback, ``<layer>/<weight>/histogram`` (and ``/image``) of every
weight every histogram_freq epochs. Only logs that are single numbers are written.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from .. import arguments
from ..errors import ArgumentError, ArgumentTypeError
from .base import Callback


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ImportError(
            "TensorBoard: writing TensorBoard event files needs the tensorboardX package, "
            "which is an optional extra of shenjing: pip install \"shenjing[tensorboard]\" "
            "(or pip install tensorboardX)."
        ) from None
    return SummaryWriter


class TensorBoard(Callback):
    writes_files = True  # under a DataParallel, on rank 0 only (callbacks.base.CallbackList)
    """Write fit's logs (and weight histograms) for TensorBoard.

    Args: log_dir ('logs'); histogram_freq (every how many epochs to write the weights'
    histograms; 0: never); write_graph (write the model's config as text under tag 'keras':
    a NumPy model has no graph to draw); write_images (weights of rank 1-3 as images, with
    histogram_freq); write_steps_per_second; update_freq ('epoch', 'batch', or write the
    batch logs every N batches). profile_batch, embeddings_freq and embeddings_metadata exist
    for Keras's signature and only take their off values (no profiler, no projector here).
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        where = "TensorBoard"
        if profile_batch not in (0, None, (0, 0)):
            raise ArgumentError(f"{where}: profile_batch must be 0: shenjing has no profiler "
                                f"to trace batches with, got profile_batch={profile_batch!r}.")
        if embeddings_freq != 0 or embeddings_metadata is not None:
            raise ArgumentError(f"{where}: embeddings_freq and embeddings_metadata are not "
                                "supported (the embedding projector needs TensorFlow "
                                "checkpoints); got embeddings_freq="
                                f"{embeddings_freq!r}, embeddings_metadata={embeddings_metadata!r}.")
        if not isinstance(log_dir, (str, os.PathLike)) or not os.fspath(log_dir):
            raise ArgumentError(f"{where}: log_dir must be a non-empty path, got {log_dir!r}.")
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = arguments.non_negative_int(histogram_freq, "histogram_freq", where)
        self.write_graph = arguments.boolean(write_graph, "write_graph", where)
        self.write_images = arguments.boolean(write_images, "write_images", where)
        self.write_steps_per_second = arguments.boolean(
            write_steps_per_second, "write_steps_per_second", where)
        if update_freq == "batch":
            update_freq = 1
        elif update_freq != "epoch":
            if not arguments.is_int(update_freq):
                raise ArgumentTypeError(f"{where}: update_freq must be 'epoch', 'batch' or a "
                                        f"positive number of batches, got {update_freq!r}.")
            update_freq = arguments.positive_int(update_freq, "update_freq", where)
        self.update_freq = update_freq
        self._writer_class = _summary_writer()  # fails now if the extra is missing
        self._writers = {}
        self._global_train_batch = 0
        self._training = False

    # ----- writers ---------------------------------------------------------------------------
    def _writer(self, kind):
        """The SummaryWriter of log_dir/train or log_dir/validation, made on first use."""
        if kind not in self._writers:
            self._writers[kind] = self._writer_class(logdir=os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def _scalars(self, kind, logs, prefix, step):
        writer = self._writer(kind)
        for name, value in logs.items():
            if np.ndim(value) == 0 and arguments.is_number(value):
                writer.add_scalar(f"{prefix}{name}", float(value), global_step=step)

    def _close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # ----- hooks -----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._global_train_batch, self._training = 0, True
        if self.write_graph:
            config = self.model.get_config() if hasattr(self.model, "get_config") else {}
            self._writer("train").add_text("keras", json.dumps(config, default=str), 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_start_iterations = self._iterations()

    def on_train_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        step = self._global_train_batch
        if self.update_freq == "epoch" or step % self.update_freq:
            return
        logs = dict(logs or {})
        if self.write_steps_per_second:
            logs["steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_start, 1e-9)
        self._scalars("train", logs, "batch_", step)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        validation = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            train["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second:
            seconds = max(time.perf_counter() - self._epoch_start, 1e-9)
            train["steps_per_second"] = (self._iterations() - self._epoch_start_iterations) / seconds
        if train:
            self._scalars("train", train, "epoch_", epoch)
        if validation:
            self._scalars("validation", validation, "epoch_", epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and logs:
            self._scalars("validation", {f"evaluation_{k}_vs_iterations": v
                                         for k, v in logs.items()}, "", optimizer.iterations)
        if not self._training:  # evaluate on its own: no on_train_end will close the files
            self._close()

    def on_train_end(self, logs=None):
        self._training = False
        self._close()

    # ----- weights ---------------------------------------------------------------------------
    def _iterations(self):
        optimizer = getattr(self.model, "optimizer", None)
        return 0 if optimizer is None else optimizer.iterations

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for weight in self.model.weights:
            tag = weight.name.replace(":", "_")
            values = np.asarray(weight.data)
            writer.add_histogram(f"{tag}/histogram", values, global_step=epoch)
            if self.write_images:
                image = _weight_image(values)
                if image is not None:
                    writer.add_images(f"{tag}/image", image, global_step=epoch,
                                      dataformats="NHWC")


def _weight_image(w):
    """Keras's layout of a weight as images (N, H, W, 1): a bias as one row, a kernel with its
    longer side across, a 3-D kernel (channels last) one image per channel; else None."""
    w = np.squeeze(w)
    if w.ndim == 1:
        return w.reshape(1, -1, 1, 1)
    if w.ndim == 2:
        w = w.T if w.shape[0] > w.shape[1] else w
        return w.reshape(1, *w.shape, 1)
    if w.ndim == 3:
        return np.transpose(w, (2, 0, 1))[..., None]
    return None


__all__ = ["TensorBoard"]
