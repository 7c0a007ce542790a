"""compile's loss and metrics for one or several outputs, as Keras 3's compile_utils.

``loss`` is one loss (for every output), a list (one per output, None for none) or a dict keyed
by output name; ``loss_weights`` a number, list or dict likewise. With more than one loss, each
output's unweighted loss is also tracked as ``<output>_loss``. ``metrics`` and
``weighted_metrics`` are a list (for one output: every metric; for n outputs: a list of n
entries, each a metric or a list of them) or a dict keyed by output name; logs name them
``<output>_<metric>`` for several outputs. ``metrics`` ignore sample weights, as in Keras 3;
``weighted_metrics`` use them. Structures are checked at compile, with Keras's messages.
"""

from __future__ import annotations

import numpy as np

from .. import arguments
from .. import losses as losses_module
from .. import metrics as metrics_module
from ..arguments import ArgumentError, ArgumentTypeError, fail
from ..tensor import Tensor


def check_keras_only(where, run_eagerly, steps_per_execution, jit_compile, auto_scale_loss):
    """Keras's compile arguments that have no meaning here: the values that describe what
    shenjing does are taken, others refused with the reason."""
    if not isinstance(run_eagerly, (bool, np.bool_)):
        raise fail(where, f"run_eagerly must be True or False, got {run_eagerly!r}.",
                   ArgumentTypeError)
    if steps_per_execution != 1 or isinstance(steps_per_execution, bool):
        raise fail(where, f"steps_per_execution={steps_per_execution!r}: shenjing runs one batch "
                          "per step, eagerly (as Keras on the torch backend, which also needs 1); "
                          "leave it at 1.")
    if not (jit_compile is False or jit_compile == "auto"):
        raise fail(where, f"jit_compile={jit_compile!r}: shenjing has no compiler, every step "
                          "runs eagerly in NumPy; leave it at 'auto' (or False).")
    if not isinstance(auto_scale_loss, (bool, np.bool_)):
        raise fail(where, f"auto_scale_loss must be True or False, got {auto_scale_loss!r} "
                          "(shenjing has no mixed-precision loss scaling, so either means no "
                          "scaling).", ArgumentTypeError)


def _is_loss_config(value):
    return isinstance(value, dict) and "class_name" in value


def _per_output(value, names, what, where, keras_dict_error):
    """A list or dict as one entry per output (None where none), or None if value is a leaf."""
    n = len(names)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise fail(where, f"{what} is a list of {len(value)} for a model with {n} output"
                              f"{'s' * (n != 1)} {names}; pass one entry per output (None for "
                              "an output without one), or a dict keyed by output name.")
        return list(value)
    if isinstance(value, dict) and not _is_loss_config(value):
        if keras_dict_error and set(value) != set(names):
            raise fail(where, f"Expected keys {names} in {what} dict, but found "
                              f"{what}.keys()={list(value)}")
        unknown = [key for key in value if key not in names]
        if unknown:
            raise fail(where, f"{what} has keys {unknown} that name no output of the model; its "
                              f"outputs are {names}.")
        return [value.get(name) for name in names]
    return None


class CompileLoss:
    """The compiled loss: the sum over outputs of weight * loss(y_true, y_pred, sample_weight)."""

    def __init__(self, loss, loss_weights, output_names, where):
        names, n = list(output_names), len(output_names)
        entries = _per_output(loss, names, "loss", where, keras_dict_error=True)
        single = entries is None
        entries = [loss] * n if single else entries
        self.losses = [None if item is None else
                       arguments.lookup(losses_module.get, item, "loss", where) for item in entries]
        if all(item is None for item in self.losses):
            raise fail(where, f"every entry of loss is None, got loss={loss!r}; give a loss for "
                              "at least one output.")
        self.weights = self._weights(loss_weights, names, single, where)
        active = [i for i, item in enumerate(self.losses) if item is not None]
        self.names = names
        # each output's unweighted loss, tracked when there is more than one (Keras 3)
        self.trackers = {i: metrics_module.Mean(name=f"{names[i]}_loss") for i in active} \
            if len(active) > 1 else {}

    def _weights(self, value, names, single, where):
        n = len(names)
        if value is None:
            return [1.0] * n
        if arguments.is_number(value):
            if not single and n > 1:
                raise fail(where, f"`loss_weights` must match the number of losses, got {n} "
                                  "losses and 1 weights.")
            return [arguments.number(value, "loss_weights", where)] * n
        if not isinstance(value, (list, tuple, dict)):
            raise fail(where, "Expected `loss_weights` argument to be a float (single output "
                              "case) or a list, tuple, or dict (multiple output case). Received "
                              f"instead: loss_weights={value!r} of type {type(value)}",
                       ArgumentTypeError)
        if single and len(value) == 1:  # one loss for every output, one weight for it
            weight = next(iter(value.values())) if isinstance(value, dict) else value[0]
            return [arguments.number(weight, "loss_weights[0]", where)] * n
        losses = n if not single else 1
        if len(value) != losses:
            raise fail(where, f"`loss_weights` must match the number of losses, got {losses} "
                              f"losses and {len(value)} weights.")
        entries = _per_output(value, names, "loss_weights", where, keras_dict_error=False)
        return [1.0 if w is None else arguments.number(w, f"loss_weights[{names[i]!r}]", where)
                for i, w in enumerate(entries)]

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The total loss (a Tensor), or None if no output has a loss."""
        n = len(self.losses)
        y_true, y_pred = as_outputs(y_true, n, self.names), as_outputs(y_pred, n, self.names)
        active = [i for i, item in enumerate(self.losses) if item is not None]
        if len(y_true) == len(active) < n:  # targets for the outputs with a loss only (Keras)
            y_true = dict(zip(active, y_true))
        elif len(y_true) != n:
            raise ArgumentError(f"got {len(y_true)} targets for {n} outputs {self.names}.")
        weights = per_output_weights(sample_weight, n, self.names)
        total = None
        for i in active:
            value = self.losses[i](y_true[i], y_pred[i], sample_weight=weights[i])
            if i in self.trackers:
                self.trackers[i].update_state(float(value.data), sample_weight=len(y_pred[i]))
            term = value * self.weights[i] if self.weights[i] != 1.0 else value
            total = term if total is None else total + term
        return total

    @property
    def metrics(self):
        return list(self.trackers.values())


def as_outputs(value, n, names):
    """One entry per output: a list as is, a dict by output name, one value for one output."""
    if isinstance(value, dict):
        return [value[name] for name in names]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def per_output_weights(sample_weight, n, names):
    """sample_weight for each output: one array for all, or a list / dict by output name."""
    if isinstance(sample_weight, (list, tuple, dict)):
        return as_outputs(sample_weight, n, names)
    return [sample_weight] * n


def _flatten(value):
    if isinstance(value, dict):
        return [leaf for key in sorted(value) for leaf in _flatten(value[key])]
    if isinstance(value, (list, tuple)):
        return [leaf for item in value for leaf in _flatten(item)]
    return [value]


def check_metric_spec(spec, name, where):
    """A metric name (looked up now; 'accuracy' picks its kind at the first batch), a Metric
    (or class), a config dict or a callable(y_true, y_pred)."""
    if spec is None:
        raise fail(where, f"Expected metric, received `None` ({name}).")
    if isinstance(spec, str):
        if spec.lower() not in ("accuracy", "acc"):
            arguments.lookup(metrics_module.get, spec, name, where)
    elif not (isinstance(spec, (metrics_module.Metric, dict)) or callable(spec)):
        raise fail(where, f"{name} must be a metric name, a Metric or a callable(y_true, "
                          f"y_pred), got {spec!r:.80}.", ArgumentTypeError)


class CompileMetrics(metrics_module.Metric):
    """The compiled metrics and weighted metrics, one list per output; result() is the dict of
    their values under their log names."""

    def __init__(self, metrics, weighted_metrics, output_names, where):
        self.output_names = list(output_names)
        self._specs = [self._structure(value, arg, where) for arg, value in
                       (("metrics", metrics), ("weighted_metrics", weighted_metrics))]
        self.built = False
        self.entries = []  # (output index, weighted?, Metric, log name)
        self.base_names = []  # each metric's name before the output prefix (Keras's name)
        super().__init__(name="compile_metrics")

    def _structure(self, value, arg, where):
        """Per output, the list of metric specs (Keras 3's rules for lists and dicts)."""
        n, names = len(self.output_names), self.output_names
        if not value:
            return [[] for _ in names]
        if not isinstance(value, (list, tuple, dict)):
            raise fail(where, f"Expected `{arg}` argument to be a list, tuple, or dict. Received "
                              f"instead: {arg}={value!r} of type {type(value)}",
                       ArgumentTypeError if not isinstance(value, str) else ArgumentError)
        if n == 1:
            per_output = [_flatten(value)]
        elif isinstance(value, (list, tuple)) and len(value) == n:
            per_output = [[] if item is None else _flatten(item) for item in value]
        elif isinstance(value, dict) and set(value) <= set(names):
            per_output = [[] if value.get(name) is None else _flatten(value[name])
                          for name in names]
        else:
            raise fail(where, f"Invalid `{arg}`. `{arg}` should contain metrics objects and "
                              "either be a dict or a list matching the output names of the "
                              f"functional model {names} or match the output structure of the "
                              f"model: {['X'] * n}.\nReceived: {arg}={value!r:.200}")
        for i, specs in enumerate(per_output):
            for j, spec in enumerate(specs):
                check_metric_spec(spec, f"{arg}[{j}]" if n == 1 else f"{arg}[{names[i]!r}][{j}]",
                                  where)
        return per_output

    def build(self, y_true, y_pred):
        """Make the metrics ('accuracy' picks its kind from y_true and y_pred's shapes)."""
        n = len(self.output_names)
        y_true, y_pred = as_outputs(y_true, n, self.output_names), as_outputs(
            y_pred, n, self.output_names)
        seen = set()
        for weighted, per_output in enumerate(self._specs):
            for i, specs in enumerate(per_output):
                for spec in specs:
                    metric = metrics_module.get(spec, y_true=y_true[i],
                                                y_pred=_shaped(y_pred[i]))
                    base = spec if isinstance(spec, str) else metric.name
                    prefix = f"{self.output_names[i]}_" if n > 1 else ""
                    # NOTE: the metric takes its log name (Keras keeps the bare name and adds
                    # the prefix in result()): checkpoints key running totals by metric name
                    metric.name = _unique(prefix, base, weighted, seen)
                    self.base_names.append(base)
                    self.entries.append((i, bool(weighted), metric, metric.name))
        self.built = True

    @property
    def metrics(self):
        return [metric for _, _, metric, _ in self.entries]

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = len(self.output_names)
        if not self.built:
            self.build(y_true, y_pred)
        y_true, y_pred = as_outputs(y_true, n, self.output_names), as_outputs(
            y_pred, n, self.output_names)
        weights = per_output_weights(sample_weight, n, self.output_names)
        for i, weighted, metric, _ in self.entries:
            metric.update_state(y_true[i], y_pred[i], weights[i] if weighted else None)

    def reset_state(self):
        for metric in self.metrics if getattr(self, "entries", None) else []:
            metric.reset_state()

    def result(self):
        return {log: metric.result() for _, _, metric, log in self.entries}


def _shaped(value):
    """y_pred as an array (a Tensor's data; a shape tuple as zeros) for choosing 'accuracy'."""
    if isinstance(value, tuple):
        return np.zeros((1,) + tuple(1 if d is None else d for d in value[1:]), np.float32)
    return getattr(value, "data", value)


def _unique(prefix, base, weighted, seen):
    """Keras 3's log names: a repeat gets _1, _2 ...; a weighted repeat 'weighted_' first."""
    name = prefix + base
    if name in seen and weighted:
        name = f"{prefix}weighted_{base}"
    index, candidate = 1, name
    while candidate in seen:
        candidate, index = f"{name}_{index}", index + 1
    seen.add(candidate)
    return candidate


def pythonify_logs(logs):
    """Logs as {name: float}: nested dicts (compile_metrics) flattened, tensors made floats."""
    out = {}
    for key, value in (logs or {}).items():
        if isinstance(value, dict):
            out.update(pythonify_logs(value))
            continue
        try:
            out[key] = float(np.asarray(value.data if isinstance(value, Tensor) else value))
        except (TypeError, ValueError):
            out[key] = value
    return out


def flatten_in_order(metrics, logs):
    """Keras's list order: the metrics' names in order, then the other logs sorted."""
    names = []
    for metric in metrics:
        names += (metric.base_names if isinstance(metric, CompileMetrics)
                  else [metric.name])
    values = [logs[name] for name in names if name in logs]
    values += [logs[key] for key in sorted(logs) if key not in names]
    return values[0] if len(values) == 1 else values
