"""compile / fit / evaluate / predict and the per-batch steps, as in Keras.

The ``training`` flag is passed explicitly into every layer call: ``fit`` and
``train_on_batch`` run layers in training mode, ``evaluate``/``predict`` in inference mode.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import arguments, memory, optimizers, utils
from .. import losses as losses_module
from .. import metrics as metrics_module
from ..callbacks.base import CallbackList, History
from ..data import class_weight_to_sample_weight, split_validation
from ..errors import ArgumentError, ArgumentTypeError
from ..progbar import is_dynamic
from ..tensor import no_grad
from . import fit_arguments, resume


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _num_samples(arrays) -> int:
    sizes = {len(a) for a in arrays if a is not None}
    if len(sizes) != 1:
        raise ArgumentError(f"fit: all inputs and targets need the same number of samples, got "
                            f"{sorted(sizes)}.")
    return sizes.pop()


def _take(arrays, index):
    return [None if a is None else a[index] for a in arrays]


def _epoch_order(n, shuffle):
    return utils.get_rng().permutation(n) if shuffle else np.arange(n)


class TrainingMixin:
    """Adds Keras's training loop to Model."""

    def _init_training(self):
        self.optimizer = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self.completed_epochs = 0  # saved in checkpoints, for fit(initial_epoch=...)

    # ----- compile -----------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """Set the optimizer, the loss (one, or a list per output) and the metrics; each is
        checked here (an unknown name, a loss of None, a metric that is not a name, Metric or
        callable), so a mistake fails now rather than at the first batch."""
        where = f"Model '{self.name}'.compile"
        optimizer = arguments.lookup(optimizers.get, optimizer, "optimizer", where)
        n_out = len(self.outputs) if self.built else 1
        loss_list = loss if isinstance(loss, (list, tuple)) else [loss] * max(n_out, 1)
        if loss is None or any(item is None for item in loss_list) or not loss_list:
            raise ArgumentError(f"{where}: a loss is required, e.g. "
                                f"loss='sparse_categorical_crossentropy', got loss={loss!r}.")
        if self.built and isinstance(loss, (list, tuple)) and len(loss_list) != n_out:
            raise ArgumentError(f"{where}: loss is a list of {len(loss_list)} for a model with "
                                f"{n_out} output{'s' if n_out > 1 else ''}; pass one per output.")
        losses = [arguments.lookup(losses_module.get, item, "loss", where) for item in loss_list]
        weights = self._checked_loss_weights(loss_weights, len(losses), where)
        specs = self._checked_metrics(metrics, where)
        self.optimizer, self.loss, self._losses = optimizer, loss, losses
        self._loss_weights, self._metric_specs = weights, specs
        self._build_metrics()
        self.compiled = True

    @staticmethod
    def _checked_loss_weights(value, n, where):
        """None (all 1.0) or one finite number per loss (Keras sets no sign)."""
        if value is None:
            return [1.0] * n
        if not isinstance(value, (list, tuple)) or len(value) != n:
            raise arguments.fail(where, f"loss_weights must be a list of {n} number"
                                        f"{'s' if n > 1 else ''} (one per loss), got "
                                        f"{value!r:.80}.", ArgumentTypeError)
        return [arguments.number(w, f"loss_weights[{i}]", where) for i, w in enumerate(value)]

    @staticmethod
    def _checked_metrics(value, where):
        """None or a list/tuple of metric names, Metrics (or classes) and callables; names are
        looked up now ('accuracy' picks its kind at the first batch, as in Keras 3)."""
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise arguments.fail(where, f"Expected `metrics` argument to be a list or tuple, got "
                                        f"{value!r:.80}.", ArgumentTypeError)
        for index, spec in enumerate(value):
            name = f"metrics[{index}]"
            if isinstance(spec, str):
                if spec.lower() not in ("accuracy", "acc"):
                    arguments.lookup(metrics_module.get, spec, name, where)
            elif not (isinstance(spec, (metrics_module.Metric, dict)) or callable(spec)):
                raise arguments.fail(where, f"{name} must be a metric name, a Metric or a "
                                            f"callable(y_true, y_pred), got {spec!r:.80}.",
                                     ArgumentTypeError)
        return list(value)

    def _build_metrics(self):
        self._loss_tracker = metrics_module.Mean(name="loss")
        self._metrics = None  # (output index, metric), made at the first batch as in Keras 3

    def _resolve_metrics(self, y_true, y_pred):
        """'accuracy' picks its kind from the first batch's shapes, as Keras 3 does."""
        self._metrics = []
        specs = _as_list(self._metric_specs) if self._metric_specs else []
        for index, (loss, target, pred) in enumerate(zip(self._losses, y_true, y_pred)):
            for spec in specs:
                metric = metrics_module.get(spec, loss=loss, y_true=target, y_pred=pred)
                if len(self._losses) > 1:
                    metric.name = f"{self._output_name(index)}_{metric.name}"
                self._metrics.append((index, metric))

    def _output_name(self, index):
        return self.outputs[index].node.layer.name

    @property
    def metrics_names(self):
        return ["loss"] + [m.name for _, m in self._metrics or []]

    def _require_compiled(self, what):
        if not self.compiled:
            raise RuntimeError(f"Model '{self.name}': call compile(optimizer, loss) before "
                               f"{what}.")

    # ----- one batch ---------------------------------------------------------------------
    def _inputs(self, x):
        x = _as_list(x)
        return x[0] if len(x) == 1 else x

    def _total_loss(self, y_true, y_pred, sample_weight):
        y_true, y_pred = _as_list(y_true), _as_list(y_pred)
        if len(y_true) != len(self._losses):
            raise ArgumentError(f"Model '{self.name}': got {len(y_true)} targets for "
                                f"{len(self._losses)} outputs.")
        total = None
        for loss, weight, target, pred in zip(self._losses, self._loss_weights, y_true, y_pred):
            term = loss(target, pred, sample_weight=sample_weight) * weight
            total = term if total is None else total + term
        return total

    def _update_metrics(self, loss_value, y_true, y_pred, sample_weight, n):
        self._loss_tracker.update_state(loss_value, sample_weight=n)
        y_true, y_pred = _as_list(y_true), [np.asarray(p) for p in _as_list(y_pred)]
        if self._metrics is None:
            self._resolve_metrics(y_true, y_pred)
            resume.apply_pending_metric_totals(self)  # a resumed epoch's totals so far
        for index, metric in self._metrics:
            metric.update_state(y_true[index], y_pred[index], sample_weight)

    def _logs(self, prefix=""):
        logs = {prefix + "loss": self._loss_tracker.result()}
        for _, metric in self._metrics or []:
            logs[prefix + metric.name] = metric.result()
        return logs

    def _reset_metrics(self):
        self._loss_tracker.reset_state()
        for _, metric in self._metrics or []:
            metric.reset_state()

    @memory.at_batch  # keeps the malloc setting within its limit (shenjing/memory.py)
    def _train_step(self, x, y, sample_weight):
        y_pred = self(self._inputs(x), training=True)
        variables = self.trainable_weights  # after the call, which builds an unbuilt model
        for v in variables:
            v.grad = None
        loss = self._total_loss(y, y_pred, sample_weight)
        penalties = self.regularization_losses()
        total = loss
        for penalty in penalties:
            total = total + penalty
        total.backward()
        self.optimizer.apply(variables)
        self._update_metrics(float(total.data), y, y_pred, sample_weight, len(_as_list(x)[0]))

    @memory.at_batch
    def _test_step(self, x, y, sample_weight):
        with no_grad():
            y_pred = self(self._inputs(x), training=False)
            loss = self._total_loss(y, y_pred, sample_weight)
            for penalty in self.regularization_losses():
                loss = loss + penalty
        self._update_metrics(float(loss.data), y, y_pred, sample_weight, len(_as_list(x)[0]))

    def train_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """One optimizer step on one batch; returns the loss (and metrics) of that batch."""
        self._require_compiled("train_on_batch")
        x, y, sample_weight = fit_arguments.check_batch("train_on_batch", x, y, sample_weight)
        self._check_structure("train_on_batch", x, y)
        self._reset_metrics()
        self._train_step(x, y, sample_weight)
        return self._result(return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        x, y, sample_weight = fit_arguments.check_batch("test_on_batch", x, y, sample_weight)
        self._check_structure("test_on_batch", x, y)
        self._reset_metrics()
        self._test_step(x, y, sample_weight)
        return self._result(return_dict)

    @memory.at_batch  # *_on_batch keep the setting between calls; memory.release() ends it
    def predict_on_batch(self, x):
        x = fit_arguments.check_batch("predict_on_batch", x, targets=False)[0]
        self._check_structure("predict_on_batch", x)
        with no_grad():
            out = self(self._inputs(x), training=False)
        return [o.numpy() for o in out] if isinstance(out, list) else out.numpy()

    def _result(self, return_dict, logs=None):
        logs = self._logs() if logs is None else logs
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ----- loops -------------------------------------------------------------------------
    @memory.session  # the malloc setting while it runs, handed back at the end
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y); returns a History of per-epoch logs.

        class_weight ({class id: weight}) weighs each training sample by its class, as Keras
        does (one output only; not together with sample_weight). To resume a loaded
        checkpoint, pass ``initial_epoch=model.completed_epochs``: that also restores the random
        state saved with it (load_model leaves the process's random state alone), goes on at
        the batch after a mid-epoch checkpoint with the same shuffle order, and gives the
        callbacks their saved state (same data, batch_size and callbacks; see models/resume.py).
        """
        self._require_compiled("fit")
        x, y, sample_weight, batch_size, verbose, validation_split, validation_data = (
            fit_arguments.check_fit("fit", x, y, batch_size, epochs, verbose, validation_split,
                                    validation_data, shuffle, class_weight, sample_weight,
                                    initial_epoch))
        self._check_structure("fit", x, y)
        fit_arguments.class_weight_keys(class_weight, self._classes(), "fit")
        xs, ys = _as_list(x), _as_list(y)
        if class_weight is not None:
            if sample_weight is not None:
                raise ArgumentError("fit: pass class_weight or sample_weight, not both (Keras "
                                    "refuses both too); fold the class weights into "
                                    "sample_weight.")
            if len(ys) != 1:
                raise ArgumentError(f"fit: class_weight works for a model with one output; "
                                    f"this one has {len(ys)} targets. Use sample_weight.")
        if validation_split and validation_data is None:
            # Keras's rule: the last fraction of the samples, taken before any shuffling; the
            # held-out samples keep their sample weights (class_weight weighs training only)
            train, held_out = split_validation([*xs, *ys, sample_weight], validation_split)
            validation_data = (held_out[:len(xs)], held_out[len(xs):-1], held_out[-1])
            xs, ys, sample_weight = train[:len(xs)], train[len(xs):-1], train[-1]
        if class_weight is not None:
            sample_weight = class_weight_to_sample_weight(ys[0], class_weight)
        n = _num_samples(xs + ys)
        steps = max(1, math.ceil(n / batch_size))
        if verbose == "auto":  # a bar where it can be redrawn (terminal, notebook), else lines
            verbose = 1 if is_dynamic(sys.stdout) else 2
        history = History()
        callback_list = CallbackList(callbacks, model=self, history=history, verbose=verbose,
                                     params={"epochs": epochs, "steps": steps, "verbose": verbose},
                                     where="fit")
        self.stop_training = False
        from ..saving.loading import restore_saved_rng

        restore_saved_rng(self, initial_epoch)  # a loaded checkpoint resumes its random stream
        saved = resume.take_saved_position(self, initial_epoch)  # mid-epoch, callback states
        self._fit_callbacks = callback_list.callbacks  # checkpoints save their states
        callback_list.on_train_begin()
        if saved is not None:
            saved.restore_callbacks(callback_list.callbacks)
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            self._reset_metrics()
            order, first_step = resume.start_epoch(  # (0, a fresh order) unless resuming
                self, epoch, steps, lambda: _epoch_order(n, shuffle),
                saved if epoch == initial_epoch else None)
            for step in range(first_step, steps):
                index = order[step * batch_size:(step + 1) * batch_size]
                callback_list.on_train_batch_begin(step)
                batch_x, batch_y = _take(xs, index), _take(ys, index)
                weights = None if sample_weight is None else sample_weight[index]
                self._train_step(batch_x, batch_y, weights)
                resume.note_batch_done(self, step + 1)
                callback_list.on_train_batch_end(step, self._logs())
                if self.stop_training:
                    break
            logs = self._logs()
            if validation_data is not None:
                val_x, val_y, *val_weights = validation_data  # (x, y) or (x, y, weights)
                logs.update(self._evaluate_logs(val_x, val_y, batch_size, prefix="val_",
                                                sample_weight=next(iter(val_weights), None)))
            self.completed_epochs = epoch + 1
            callback_list.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        callback_list.on_train_end()
        resume.note_fit_end(self)
        self.history = history
        return history

    def _evaluate_logs(self, x, y, batch_size, sample_weight=None, prefix="", hooks=None):
        xs, ys = _as_list(x), _as_list(y)
        n = _num_samples(xs + ys)
        self._reset_metrics()
        if hooks:
            hooks.on_test_begin()
        for step, start in enumerate(range(0, n, batch_size)):
            index = slice(start, start + batch_size)
            weights = None if sample_weight is None else sample_weight[index]
            if hooks:
                hooks.on_test_batch_begin(step)
            self._test_step(_take(xs, index), _take(ys, index), weights)
            if hooks:
                hooks.on_test_batch_end(step, self._logs())
        logs = self._logs(prefix)
        if hooks:
            hooks.on_test_end(logs)
        return logs

    def _check_structure(self, where, x, y=None):
        """As many input arrays as the model has inputs (and targets as outputs), before any
        work: a tuple (x1, x2) given to a one-input model is refused naming x."""
        if not self.built:
            return
        for name, data, expected in (("x", x, len(self.inputs)), ("y", y, len(self.outputs))):
            got = len(data) if isinstance(data, (list, tuple)) else 1
            if data is not None and got != expected:
                what = "input" if name == "x" else "output"
                raise ArgumentError(f"{where}: {name} holds {got} array{'s' * (got != 1)} for a "
                                    f"model with {expected} {what}(s); a list or tuple of arrays means one "
                                    f"per model {what} (one array for one {what}: pass "
                                    f"np.asarray({name}) if it is nested).")

    def _classes(self):
        """The number of classes of a one-output model (2 for one sigmoid unit), else None."""
        if not self.built or len(self.outputs) != 1:
            return None
        last = self.outputs[0].shape[-1] if self.outputs[0].shape else None
        return None if last is None else max(int(last), 2)

    def _hooks(self, callbacks, verbose, n, batch_size, where):
        """Callbacks for evaluate/predict, with a progress bar when verbose."""
        if verbose == "auto":
            verbose = 1 if is_dynamic(sys.stdout) else 2
        steps = max(1, math.ceil(n / batch_size))
        return CallbackList(callbacks, model=self, verbose=verbose,
                            params={"steps": steps, "verbose": verbose}, where=where)

    @memory.session
    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", sample_weight=None,
                 return_dict=False, callbacks=None):
        """Loss and metrics over (x, y) in inference mode."""
        self._require_compiled("evaluate")
        x, y, sample_weight, batch_size, verbose = fit_arguments.check_evaluate(
            "evaluate", x, y, batch_size, verbose, sample_weight)
        self._check_structure("evaluate", x, y)
        hooks = self._hooks(callbacks, verbose, _num_samples(_as_list(x)), batch_size,
                            "evaluate")
        logs = self._evaluate_logs(x, y, batch_size, sample_weight, hooks=hooks)
        return self._result(return_dict, logs)

    @memory.session
    def predict(self, x, batch_size=32, verbose="auto", callbacks=None):
        """Outputs for x, computed batch by batch in inference mode, as NumPy arrays."""
        x, batch_size, verbose = fit_arguments.check_predict("predict", x, batch_size, verbose)
        xs = _as_list(x)
        n = _num_samples(xs)
        self._check_structure("predict", x)
        hooks = self._hooks(callbacks, verbose, n, batch_size, "predict")
        hooks.on_predict_begin()
        chunks = []
        for step, start in enumerate(range(0, n, batch_size)):
            hooks.on_predict_batch_begin(step)
            batch = _take(xs, slice(start, start + batch_size))
            chunks.append(_as_list(self.predict_on_batch(batch)))
            hooks.on_predict_batch_end(step, {"outputs": chunks[-1]})
        hooks.on_predict_end()
        outputs = [np.concatenate(parts) for parts in zip(*chunks)]
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

