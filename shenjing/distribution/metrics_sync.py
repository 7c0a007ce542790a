"""Global loss and metrics: every metric's running state summed over the ranks.

A metric's state is a few running sums (Mean: total and count, weighted by the samples each
rank saw; AUC, Precision, F-scores: confusion counts), so the state of the global batch is the
elementwise sum of the ranks' states and its ``result()`` is the number one process would log.
All the states go in one allreduce; the results are computed with the sums swapped in, then
each rank keeps its own running state, which later batches add to. A metric of your own that
keeps its state elsewhere names its summed attributes in ``distributed_state``.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..errors import ArgumentError

SUMMED_STATE = ("total", "count", "true_positives", "false_positives", "true_negatives",
                "false_negatives", "intermediate_weights")


def leaf_metrics(model):
    """The model's Metric objects that hold state (the compiled container's entries, the loss
    trackers, metrics held as attributes), each once."""
    found, seen = [], set()
    pairs = [(None, model._loss_tracker)] if getattr(model, "_loss_tracker", None) else []
    pairs += list(model._metrics or [])
    candidates = [metric for _, metric in pairs] + [
        m for m in model.metrics if m is not model._compile_metrics]
    for metric in candidates:
        if id(metric) not in seen:
            seen.add(id(metric))
            found.append(metric)
    return found


def state_names(metric):
    names = getattr(metric, "distributed_state", None)
    return tuple(names) if names else tuple(n for n in SUMMED_STATE if n in vars(metric))


def check_metrics(model, where):
    """Every metric's state must be known to sum (else its global value would be wrong)."""
    for metric in leaf_metrics(model):
        if not state_names(metric):
            raise ArgumentError(
                f"{where}: metric '{metric.name}' ({type(metric).__name__}) keeps its state in "
                f"attributes shenjing cannot sum over the ranks (it knows {', '.join(SUMMED_STATE)}"
                "); give the class `distributed_state = ('<attribute>', ...)` naming the "
                "running sums its result() is computed from.")


def _layout(metrics):
    layout, parts = [], []
    for metric in metrics:
        for name in state_names(metric):
            value = getattr(metric, name)
            if value is None:  # shaped by the first batch, none seen yet (the same on every rank)
                continue
            array = np.asarray(value, np.float64)
            layout.append((metric, name, value, array.shape, isinstance(value, np.ndarray)))
            parts.append(array.reshape(-1))
    return layout, parts


@contextlib.contextmanager
def _swapped(layout, summed):
    offset = 0
    try:
        for metric, name, _, shape, is_array in layout:
            size = int(np.prod(shape)) if shape else 1
            value = summed[offset:offset + size]
            setattr(metric, name, value.reshape(shape).copy() if is_array else float(value[0]))
            offset += size
        yield
    finally:
        for metric, name, local, *_ in layout:
            setattr(metric, name, local)


def global_logs(communicator, model, logs=None, share=1.0, batch=None):
    """The logs of the global batch so far. ``logs`` a step returned: when they are the
    metrics' results (the usual case) the global results replace them; entries of a custom
    train_step that are not metrics are averaged over ranks, weighted by ``share`` (this rank's
    part of the batch). batch: (size, digest) of this rank's view of the global batch, checked
    to be the same on every rank (in the same allreduce)."""
    check_metrics(model, "DataParallel")
    layout, parts = _layout(leaf_metrics(model))
    local = model.get_metrics_result()
    custom = [] if logs is None or set(logs) == set(local) else [
        key for key, value in logs.items() if isinstance(value, (int, float))]
    tail = [share * float(logs[key]) for key in custom]
    if batch is not None:
        tail += [float(batch[0]), batch[1], 1.0]
    summed = communicator.allreduce_sum(np.concatenate(parts + [np.asarray(tail, np.float64)]))
    if batch is not None:
        _check_same_batch(batch, *summed[-3:])
    with _swapped(layout, summed):
        result = model.get_metrics_result()
        from ..models.resume import totals_of

        model._global_metric_totals = totals_of(model)  # what a checkpoint saves
    if custom:
        values = summed[len(summed) - len(tail):][:len(custom)]
        result = dict(logs) | {key: float(values[i]) for i, key in enumerate(custom)}
    return result


def _check_same_batch(batch, sizes, digests, ranks):
    size, digest = batch
    if sizes != size * ranks:
        raise ArgumentError(
            f"the ranks hold different batches: this rank's global batch has {size} samples, "
            f"but the ranks' batches add up to {sizes:g} over {ranks:g} ranks; every rank must "
            "see the same data (each takes its own slice of every batch).")
    if digests != digest * ranks:
        raise ArgumentError(
            "the ranks hold different batches of the same size (their digests differ): every "
            "rank must read the same batches in the same order, e.g. a generator seeded alike "
            "on every rank (each takes its own slice of every batch; do not shard by rank).")


@contextlib.contextmanager
def unchanged(model):
    """Leave every metric's state as it was (a rank that runs a stand-in sample)."""
    before = leaf_metrics(model)
    saved = [(metric, name, getattr(metric, name)) for metric in before
             for name in state_names(metric)]
    copies = [(m, n, v.copy() if isinstance(v, np.ndarray) else v) for m, n, v in saved]
    try:
        yield
    finally:
        for metric, name, value in copies:
            setattr(metric, name, value)
        known = {id(metric) for metric in before}
        for metric in leaf_metrics(model):  # made by this step (its first): start empty
            if id(metric) not in known:
                metric.reset_state()
