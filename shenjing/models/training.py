"""compile / fit / evaluate / predict and the per-batch steps, as in Keras 3 (torch backend).

fit, evaluate and predict hand each batch ``data`` ((x,), (x, y) or (x, y, sample_weight); see
data_adapters) to ``train_step`` / ``test_step`` / ``predict_step``, which a subclass may
override as in Keras's "Customizing what happens in fit()": ``self.zero_grad()``,
``y_pred = self(x, training=True)``, ``loss = self.compute_loss(...)``, ``loss.backward()``,
``self.optimizer.apply(grads, self.trainable_weights)``; the dict a step returns is the logs.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import arguments, memory, optimizers
from .. import metrics as metrics_module
from ..callbacks.base import CallbackList, History
from ..distribution import context as distribution_context
from ..distribution.failures import guarded
from ..errors import ArgumentError
from ..progbar import is_dynamic
from ..tensor import Tensor, no_grad
from . import fit_arguments, resume
from .compile_utils import (
    CompileLoss,
    CompileMetrics,
    check_keras_only,
    flatten_in_order,
    pythonify_logs,
)
from .data_adapters import (
    ArraySource,
    EpochIterator,
    Structure,
    fit_sources,
    make_source,
    unpack_x_y_sample_weight,
)


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _arrays(value):
    """Targets or predictions as arrays (a list or dict of them kept as such)."""
    if isinstance(value, (list, tuple)):
        return [np.asarray(item) for item in value]
    if isinstance(value, dict):
        return {key: np.asarray(item) for key, item in value.items()}
    return np.asarray(value)


def _is_config(value):
    return isinstance(value, dict) and "class_name" in value


def _distributed():
    """The DataParallel in use when several processes train together, else None."""
    return distribution_context.active() if distribution_context.is_distributed() else None


def _fingerprint(source):
    """A digest of an ArraySource's arrays, to check every rank reads the same (None for a
    generator or PyDataset)."""
    if not isinstance(source, ArraySource):
        return None
    from ..distribution.data_parallel import data_fingerprint

    return data_fingerprint([*source.xs, *(source.ys or []), source.sample_weight])


def _batch_size_of(x):
    first = next(item for item in _as_list(x) if item is not None)
    return int(np.shape(first)[0])


class TrainingMixin:
    """Adds Keras's training loop to Model."""

    def _init_training(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.completed_epochs = 0  # saved in checkpoints, for fit(initial_epoch=...)
        self.loss = None
        self._compile_loss = self._compile_metrics = self._loss_tracker = None

    # ----- compile -----------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, the loss and the metrics, with Keras 3's forms for several
        outputs (see compile_utils); each is checked now, so a mistake fails here rather than
        at the first batch. run_eagerly, steps_per_execution, jit_compile and auto_scale_loss
        are Keras's; shenjing always runs eagerly, one batch a step."""
        where = f"Model '{self.name}'.compile"
        check_keras_only(where, run_eagerly, steps_per_execution, jit_compile, auto_scale_loss)
        optimizer = arguments.lookup(optimizers.get, optimizer, "optimizer", where)
        names = self._output_names()
        compile_loss = None if loss is None else CompileLoss(loss, loss_weights, names, where)
        compile_metrics = None
        if metrics is not None or weighted_metrics is not None:
            compile_metrics = CompileMetrics(metrics, weighted_metrics, names, where)
        self.optimizer = optimizer
        # NOTE: a dict keyed by output name is kept as the equivalent list in output order (what
        # Keras's CompileLoss does inside), so that saving/model_io.py can write it
        self.loss = ([loss.get(name) for name in names]
                     if isinstance(loss, dict) and set(loss) == set(names) else loss)
        self._compile_loss, self._compile_metrics = compile_loss, compile_metrics
        self._loss_tracker = metrics_module.Mean(name="loss")
        self.run_eagerly, self.jit_compile = bool(run_eagerly), False
        self.steps_per_execution = 1
        # what saving/model_io.py writes: the per-output losses and weights, the metrics
        self._losses = compile_loss.losses if compile_loss else []
        self._loss_weights = compile_loss.weights if compile_loss else None
        # model_io saves a flat list of metrics; the dict and nested forms and weighted_metrics
        # are not in that format yet (compile again after load_model)
        flat = isinstance(metrics, (list, tuple)) and not any(
            isinstance(m, (list, tuple, dict)) and not _is_config(m) for m in metrics)
        self._metric_specs = list(metrics) if flat else None
        self._weighted_metric_specs = weighted_metrics
        self.compiled = True

    def _output_names(self):
        if not self.built or not getattr(self, "outputs", None):
            return [self.name]  # a Sequential without its input yet: one output
        return [t.node.layer.name for t in self.outputs]

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"Model '{self.name}': call compile(optimizer, loss) before "
                               f"{what}.")

    # ----- metrics -----------------------------------------------------------------------
    @property
    def metrics(self):
        """Keras 3's order: the loss tracker, the compiled metrics, each output's loss, then
        Metrics held as attributes of the model."""
        out = []
        if self.compiled:
            out.append(self._loss_tracker)
            if self._compile_metrics is not None:
                out.append(self._compile_metrics)
            if self._compile_loss is not None:
                out.extend(self._compile_loss.metrics)
        held = [value for key, value in vars(self).items()
                if isinstance(value, metrics_module.Metric) and key != "_loss_tracker"]
        return out + [m for m in held if all(m is not seen for seen in out)]

    @property
    def metrics_names(self):
        return [m.name for m in self.metrics]

    @property
    def _metrics(self):
        """(output index, metric) of the compiled metrics and per-output losses, None until
        the metrics are made (models/resume.py keeps their running totals)."""
        compiled = self._compile_metrics
        if compiled is not None and not compiled.built:
            return None
        pairs = [(i, metric) for i, _, metric, _ in compiled.entries] if compiled else []
        trackers = self._compile_loss.trackers if self._compile_loss else {}
        return pairs + list(trackers.items())

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def get_metrics_result(self):
        """{name: value} of self.metrics; a metric whose result is a dict adds its entries."""
        out = {}
        for metric in self.metrics:
            result = metric.result()
            if isinstance(result, dict):
                out.update(result)
            else:
                out[metric.name] = result
        return pythonify_logs(out)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Update the compiled metrics with this batch; returns get_metrics_result()."""
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(_arrays(y), _arrays(y_pred), sample_weight)
        return self.get_metrics_result()

    def _flatten_metrics_in_order(self, logs):
        return flatten_in_order(self.metrics, logs)

    # ----- one batch ---------------------------------------------------------------------
    def zero_grad(self):
        """Clear the gradients of the trainable weights (torch.nn.Module.zero_grad)."""
        for variable in self.trainable_weights:
            variable.grad = None

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss of (y, y_pred) plus the layers' regularization losses."""
        losses = []
        if self._compile_loss is not None:
            loss = self._compile_loss(y, y_pred, sample_weight)
            if loss is not None:
                losses.append(loss)
        losses += self.regularization_losses()
        if not losses:
            raise ArgumentError(f"Model '{self.name}': No loss to compute. Provide a `loss` "
                                "argument in `compile()`.")
        total = losses[0]
        for term in losses[1:]:
            total = total + term
        return total

    def train_step(self, data):
        """One optimizer step on one batch; returns the logs (Keras's torch train_step)."""
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=True)
        self.zero_grad()
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight)
        self._loss_tracker.update_state(float(loss.data), sample_weight=_batch_size_of(x))
        variables = self.trainable_weights
        if variables:
            loss.backward()
            self.optimizer.apply([v.value.grad for v in variables], variables)
        else:
            warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def test_step(self, data):
        x, y, sample_weight = unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                 training=False)
        self._loss_tracker.update_state(float(loss.data), sample_weight=_batch_size_of(x))
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def predict_step(self, data):
        x, _, _ = unpack_x_y_sample_weight(data)
        return self(x, training=False)

    def _prepare_step(self, data):
        """Make the compiled metrics from the first batch's targets and the model's output
        shapes before any update, then give a resumed epoch its running totals."""
        compiled = self._compile_metrics
        if compiled is not None and not compiled.built and self.built:
            y = unpack_x_y_sample_weight(data)[1]
            if y is not None:
                compiled.build(y, [tuple(t.shape) for t in self.outputs])
        resume.apply_pending_metric_totals(self)

    @memory.at_batch  # keeps the malloc setting within its limit (shenjing/memory.py)
    def _run_train_step(self, data):
        dp = _distributed()  # this rank's slice of the global batch, and the global logs
        return (self._train_logs(data) if dp is None
                else dp.train_step(self, data, self._train_logs))

    def _train_logs(self, data):
        self._prepare_step(data)
        return pythonify_logs(self.train_step(data))

    @memory.at_batch
    def _run_test_step(self, data):
        dp = _distributed()
        return (self._test_logs(data) if dp is None
                else dp.test_step(self, data, self._test_logs))

    def _test_logs(self, data):
        self._prepare_step(data)
        with no_grad():
            return pythonify_logs(self.test_step(data))

    @memory.at_batch  # *_on_batch keep the setting between calls; memory.release() ends it
    def _run_predict_step(self, data):
        with no_grad():
            out = self.predict_step(data)
        return [np.asarray(o.data if isinstance(o, Tensor) else o) for o in _as_list(out)]

    def _on_batch(self, where, x, y, sample_weight):
        self._require_compiled(where)
        structure = Structure(self)
        x, y, sample_weight = fit_arguments.check_batch(
            where, structure.x(x, where), structure.y(y, where), sample_weight)
        self._check_structure(where, x, y)
        self.reset_metrics()
        return x, y, sample_weight

    @guarded("train_on_batch")
    def train_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics) of that batch."""
        data = self._on_batch("train_on_batch", x, y, sample_weight)
        logs = self._run_train_step(tuple(item for item in data if item is not None))
        return logs if return_dict else self._flatten_metrics_in_order(logs)

    @guarded("test_on_batch")
    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        data = self._on_batch("test_on_batch", x, y, sample_weight)
        logs = self._run_test_step(tuple(item for item in data if item is not None))
        return logs if return_dict else self._flatten_metrics_in_order(logs)

    @guarded("predict_on_batch")
    def predict_on_batch(self, x):
        """Outputs for one batch; under a DataParallel every rank computes the whole batch."""
        x = Structure(self).x(x, "predict_on_batch")
        x = fit_arguments.check_batch("predict_on_batch", x, targets=False)[0]
        self._check_structure("predict_on_batch", x)
        out = self._run_predict_step((x,))
        return out[0] if len(out) == 1 else out

    def _epoch_logs(self, logs):
        """The metrics' results if the step logs name the same entries, else the last step's
        logs (a custom train_step returning other entries), as Keras does."""
        dp = _distributed()
        metric_logs = self.get_metrics_result() if dp is None else dp.global_logs(self)
        return metric_logs if set(logs) == set(metric_logs) else dict(logs)

    # ----- loops -------------------------------------------------------------------------
    @guarded("fit")
    @memory.session  # the malloc setting while it runs, handed back at the end
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` passes over the data; returns a History of per-epoch logs.

        x: arrays (a dict by input name too), a Python generator or iterable of batches, or a
        PyDataset. To resume a loaded checkpoint, pass ``initial_epoch=model.completed_epochs``:
        with arrays (and no steps_per_epoch) it goes on at the batch after a mid-epoch
        checkpoint with the same shuffle order (models/resume.py). A generator, PyDataset or
        steps_per_epoch cannot be rewound: their checkpoints resume at an epoch's start, and
        the source must hand out the remaining epochs' batches itself.
        """
        self._require_compiled("fit")
        opts = fit_arguments.check_loop("fit", epochs, initial_epoch, verbose, steps_per_epoch,
                                        validation_steps, validation_batch_size, validation_freq)
        source, validation = fit_sources(self, x, y, batch_size, shuffle, class_weight,
                                         sample_weight, validation_split, validation_data, opts)
        iterator = EpochIterator(source, steps_per_epoch)
        val_iterator = None if validation is None else EpochIterator(validation,
                                                                     validation_steps)
        verbose = opts["verbose"]
        if verbose == "auto":  # a bar where it can be redrawn (terminal, notebook), else lines
            verbose = 1 if is_dynamic(sys.stdout) else 2
        dp = _distributed()
        verbose = verbose if distribution_context.writes_files() else 0  # rank 0 prints
        history = History()
        callback_list = CallbackList(callbacks, model=self, history=history, verbose=verbose,
                                     params={"epochs": epochs, "steps": iterator.num_batches,
                                             "verbose": verbose}, where="fit")
        self.stop_training = False
        self.optimizer._warned_missing = False  # unreached weights: warned once per fit
        from ..callbacks.backup import restore_from_backup
        from ..saving.loading import restore_saved_rng

        # BackupAndRestore: the backup's state into this model, and the epoch it stopped at
        initial_epoch = restore_from_backup(callback_list.callbacks, self, initial_epoch)
        restore_saved_rng(self, initial_epoch)  # a loaded checkpoint resumes its random stream
        saved = resume.take_saved_position(self, initial_epoch)  # mid-epoch, callback states
        rewindable = isinstance(source, ArraySource) and steps_per_epoch is None
        # the same model, data and start on every rank; then rank 0's weights
        self._begin_on_ranks("fit", iterator, epochs=epochs, initial_epoch=initial_epoch,
                             resume_batch=saved.batch if saved is not None else 0)
        if saved is not None and saved.batch and not rewindable:
            raise ArgumentError("fit: the checkpoint was written in the middle of an epoch, "
                                "which only resumes with arrays (and no steps_per_epoch); a "
                                "generator or PyDataset cannot be rewound to that batch.")
        self._fit_callbacks = callback_list.callbacks  # checkpoints save their states
        callback_list.on_train_begin()
        if saved is not None:
            saved.restore_callbacks(callback_list.callbacks)
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            self.reset_metrics()
            first, batches = 0, None
            if rewindable:
                order, first = resume.start_epoch(  # (0, a fresh order) unless resuming
                    self, epoch, source.num_batches, source.draw_order,
                    saved if epoch == initial_epoch else None)
                batches = source.passes(order, first)
            else:
                resume.note_epoch_start(self, epoch)
            logs = {}
            for step, data in iterator.epoch(batches, first):
                callback_list.on_train_batch_begin(step)
                logs = self._run_train_step(data)
                if rewindable:
                    resume.note_batch_done(self, step + 1)
                callback_list.on_train_batch_end(step, logs)
                if dp is not None:  # a callback's decision on one rank holds for all
                    self.stop_training = dp.any_rank(self.stop_training)
                if self.stop_training:
                    break
            if iterator.exhausted:  # a generator with nothing left: Keras's warning was given
                self.stop_training = True
                break
            logs = self._epoch_logs(logs)
            if val_iterator is not None and fit_arguments.should_validate(epoch,
                                                                          validation_freq):
                logs.update(self._evaluate_iterator(val_iterator, prefix="val_"))
            self.completed_epochs = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
            if dp is not None:
                self.stop_training = dp.any_rank(self.stop_training)
            if self.stop_training:
                break
        callback_list.on_train_end()
        resume.note_fit_end(self)
        self.history = history
        return history

    def _evaluate_iterator(self, iterator, hooks=None, prefix=""):
        iterator.reset()
        self.reset_metrics()
        if hooks:
            hooks.on_test_begin()
        logs = {}
        for step, data in iterator.epoch():
            if hooks:
                hooks.on_test_batch_begin(step)
            logs = self._run_test_step(data)
            if hooks:
                hooks.on_test_batch_end(step, logs)
        logs = self._epoch_logs(logs)
        if hooks:
            hooks.on_test_end(logs)
        return {prefix + name: value for name, value in logs.items()}

    def _begin_on_ranks(self, where, iterator, **facts):
        """Under a DataParallel: the same model, data and facts on every rank (dp.begin)."""
        dp = _distributed()
        if dp is not None:
            source = iterator.source
            dp.begin(self, where, samples=getattr(source, "n", None), data=_fingerprint(source),
                     batch_size=getattr(source, "batch_size", None),
                     steps=iterator.num_batches, **facts)

    def _check_structure(self, where, x, y=None):
        fit_arguments.check_structure(self, where, x, y)

    def _hooks(self, callbacks, verbose, steps, where):
        """Callbacks for evaluate/predict, with a progress bar when verbose."""
        if verbose == "auto":
            verbose = 1 if is_dynamic(sys.stdout) else 2
        verbose = verbose if distribution_context.writes_files() else 0  # rank 0 prints
        return CallbackList(callbacks, model=self, verbose=verbose,
                            params={"steps": steps, "verbose": verbose}, where=where)

    @guarded("evaluate")
    @memory.session
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics over the data in inference mode (arrays, a generator or a
        PyDataset; steps: at most this many batches)."""
        self._require_compiled("evaluate")
        verbose = fit_arguments.verbose(verbose, "evaluate")
        steps = fit_arguments.optional_steps(steps, "steps", "evaluate")
        iterator = EpochIterator(make_source("evaluate", self, x, y, sample_weight, batch_size),
                                 steps)
        self._begin_on_ranks("evaluate", iterator)
        hooks = self._hooks(callbacks, verbose, iterator.num_batches, "evaluate")
        logs = self._evaluate_iterator(iterator, hooks=hooks)
        return logs if return_dict else self._flatten_metrics_in_order(logs)

    @guarded("predict")
    @memory.session
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Outputs for x, computed batch by batch in inference mode, as NumPy arrays. Under a
        DataParallel each rank computes its slice of every batch, and every rank returns the
        whole result in the original order."""
        verbose = fit_arguments.verbose(verbose, "predict")
        steps = fit_arguments.optional_steps(steps, "steps", "predict")
        iterator = EpochIterator(make_source("predict", self, x, batch_size=batch_size,
                                             targets=False), steps)
        self._begin_on_ranks("predict", iterator)
        hooks = self._hooks(callbacks, verbose, iterator.num_batches, "predict")
        hooks.on_predict_begin()
        dp = _distributed()
        gather = None if dp is None else dp.prediction_gather()
        chunks = []
        for step, data in iterator.epoch():
            hooks.on_predict_batch_begin(step)
            chunks.append(self._run_predict_step(data) if gather is None
                          else gather.run(data, self._run_predict_step))
            hooks.on_predict_batch_end(step, {"outputs": chunks[-1]})
        hooks.on_predict_end()
        outputs = [np.concatenate(parts) for parts in zip(*chunks)]
        if gather is not None:
            outputs = gather.whole(outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    def summary(self, print_fn=None, line_length=None, explain=False, show_macs=False,
                show_memory=False, expand_nested=False):
        """Print the layer table; explain adds each layer's shape and parameter formulas,
        show_macs a multiply-adds column, show_memory parameter and activation MB columns,
        expand_nested the layers of nested models and custom layers, indented."""
        from .summary import summary_text

        (print_fn or print)(summary_text(self, line_length=line_length, explain=explain,
                                         show_macs=show_macs, show_memory=show_memory,
                                         expand_nested=expand_nested))
