"""DataParallel: the same model on every rank, each rank a slice of every global batch.

One training step of a global batch of B samples on R ranks, rank r holding b_r of them
(contiguous slices, sizes as even as possible: B = sum b_r):

    loss   = sum_r (b_r / B) loss_r           (loss_r: the mean over rank r's b_r samples)
    grad   = sum_r (b_r / B) grad loss_r      (one allreduce of sums, in a few flat buffers)

so R ranks take exactly the step one process takes on the whole batch. Backward of loss_r is
seeded with b_r / B (context.loss_share), so each rank's gradients are its term of the sum and
the optimizer gets the allreduced total. A rank whose slice is empty (a last batch smaller than
R) runs the step on a stand-in sample with share 0: it joins every collective and adds nothing.
The weights and optimizer state start as rank 0's (broadcast when fit starts), and every rank
then applies the same summed gradients, so they stay identical. The moving statistics of
unsynchronized batch normalization are averaged (weighted by b_r / B) in the same allreduce;
synchronized ones are computed from the global batch and need nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import weakref

import numpy as np

from .. import arguments, utils
from ..errors import ArgumentError, ArgumentTypeError
from ..models.fit_arguments import _short
from ..tensor import no_grad
from . import context, failures, metrics_sync
from .communicator import Communicator

BUCKET_BYTES = 32 << 20  # gradients go in flat buffers of up to this size (one allreduce each)


def _flat(value):
    """The arrays of x, y or sample_weight (one array, or a list/tuple of them)."""
    if value is None:
        return []
    return [a for a in value if a is not None] if isinstance(value, (list, tuple)) else [value]


def samples_in(data) -> int:
    """The number of samples in a batch (x,), (x, y) or (x, y, sample_weight)."""
    return len(_flat(data[0])[0])


def _take(value, lo, hi):
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return type(value)(_take(item, lo, hi) for item in value)
    return value[lo:hi]


class DataParallel:
    """Data-parallel training over MPI, with Keras 3's name: one process per rank, started by
    ``mpiexec -n R python train.py``; ``set_distribution(DataParallel())`` turns it on.

    rank / size (also process_id / num_processes): this process and how many train together.
    abort_on_error: an exception on one rank ends the whole job (MPI_Abort) after printing it,
    instead of leaving the others blocked in a collective. bucket_mb: the size of the flat
    buffers gradients are summed in. device_mesh / devices are Keras's, for accelerators:
    shenjing runs one process per rank on CPUs, so they must be left out.
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True,
                 abort_on_error=True, bucket_mb=32, communicator=None):
        where = "DataParallel"
        if device_mesh is not None or devices is not None:
            raise ArgumentError(f"{where}: device_mesh and devices choose accelerators in "
                                "Keras; shenjing runs one process per rank (mpiexec -n R), so "
                                "leave them out.")
        if auto_shard_dataset is not True:
            raise ArgumentError(f"{where}: auto_shard_dataset must be True: every rank reads "
                                "the same data and takes its slice of each batch.")
        self.abort_on_error = arguments.boolean(abort_on_error, "abort_on_error", where)
        self.bucket_bytes = int(arguments.number(bucket_mb, "bucket_mb", where, 0.0,
                                                 low_open=True) * (1 << 20))
        self.communicator = communicator if communicator is not None else Communicator()
        self.rank, self.size = self.communicator.rank, self.communicator.size
        self._synced = weakref.WeakSet()  # models whose weights came from rank 0
        if self.size > 1:
            from ..ops import parallel

            parallel.share_cores(self.communicator.local_size)
            if self.abort_on_error:
                failures.install_excepthook(self)

    process_id = property(lambda self: self.rank)
    num_processes = property(lambda self: self.size)

    @property
    def is_chief(self) -> bool:
        """Whether this rank prints and writes files (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (e.g. before loading a file rank 0 has just saved)."""
        self.communicator.barrier()

    def __repr__(self):
        return f"<DataParallel rank={self.rank} size={self.size}>"

    # ----- the global batch ----------------------------------------------------------------
    def slice_of(self, n: int) -> tuple[int, int]:
        """[lo, hi) of a batch of n samples that this rank takes."""
        base, extra = divmod(n, self.size)
        lo = self.rank * base + min(self.rank, extra)
        return lo, lo + base + (self.rank < extra)

    def local_batch(self, data):
        """(this rank's part of data, its share b_r / B, and whether it is a stand-in)."""
        n = samples_in(data)
        lo, hi = self.slice_of(n)
        if hi == lo:
            return tuple(_take(item, 0, 1) for item in data), 0.0, True
        return tuple(_take(item, lo, hi) for item in data), (hi - lo) / n, False

    # ----- training and evaluation steps ------------------------------------------------------
    def train_step(self, model, data, run):
        """run(local data) under this rank's share; returns the global logs."""
        return self._step(model, data, run, training=True)

    def test_step(self, model, data, run):
        return self._step(model, data, run, training=False)

    def _step(self, model, data, run, training):
        local, share, stand_in = self.local_batch(data)
        averaged = []
        if training:
            self.ensure_synced(model, local)
            averaged = _moving_statistics(model)
        # a stand-in runs too, so that it joins every collective and the metrics exist on
        # every rank alike, and adds nothing; the share also makes a masked loss's mean that
        # of the global batch
        keep = metrics_sync.unchanged(model) if stand_in else contextlib.nullcontext()
        with context.step(share, 0.0 if stand_in else 1.0, averaged) as step, keep:
            logs = run(local)
            if averaged and not step.reduced:  # no optimizer.apply in this train_step
                self.reduce_gradients([])
        return metrics_sync.global_logs(self.communicator, model, logs, share,
                                        (samples_in(data), batch_digest(data)))

    def global_logs(self, model, logs=None):
        return metrics_sync.global_logs(self.communicator, model, logs)

    def any_rank(self, flag: bool) -> bool:
        """Whether flag holds on some rank (stop_training: every rank stops together)."""
        return self.communicator.allreduce_max(float(bool(flag))) > 0

    # ----- gradients ---------------------------------------------------------------------
    def reduce_gradients(self, grads):
        """The gradients (arrays) summed over ranks, in flat buffers of up to bucket_mb; the
        step's averaged arrays (moving statistics) are averaged in place in the same buffers,
        weighted by this rank's share."""
        step = context.current_step()
        share = 1.0 / self.size if step is None else step.share
        averaged = [] if step is None else step.averaged
        arrays = list(grads) + [a * share for a in averaged]
        summed = list(arrays)
        for i, part in _through_buckets(arrays, self.bucket_bytes,
                                        self.communicator.allreduce_sum_):
            summed[i] = part
        for target, value in zip(averaged, summed[len(grads):]):
            target[...] = value
        if step is not None:
            step.reduced = True
        return summed[:len(grads)]

    # ----- the same start on every rank -----------------------------------------------------
    def ensure_synced(self, model, local_data=None):
        """Rank 0's weights and optimizer state on every rank (once per fit, or at the first
        train_on_batch); a model not built yet is built by a call on this rank's data."""
        if model in self._synced:
            return
        if not model.built and local_data is not None:
            with no_grad():
                model(local_data[0], training=False)
        if model.built:
            self.check_same(model, "fit")
            self._start_from_rank_0(model)

    def begin(self, model, where, **facts):
        """Start of fit / evaluate / predict: the model and the data must be the same on every
        rank (weight shapes, and the facts given: sample counts, batch size, epochs ...);
        fit then takes rank 0's weights."""
        self.check_same(model, where, **facts)
        if where == "fit":
            _check_reductions(model)
            self._synced.discard(model)
            if model.built:
                self._start_from_rank_0(model)

    def _start_from_rank_0(self, model):
        self.broadcast_state(model)
        self._synced.add(model)
        self.own_random_stream()

    def own_random_stream(self):
        """Rank r > 0 draws its dropout masks and augmentations from a stream of its own,
        derived from the shared generator's state and r (rank 0's, the one a single process
        would use, is left as it is; shuffle orders are rank 0's anyway). Without it, ranks
        seeded alike would give each half of a batch the same masks."""
        if self.rank == 0:
            return
        state = json.dumps(utils.get_rng_state(), sort_keys=True).encode()
        entropy = int.from_bytes(hashlib.sha256(state).digest()[:16], "little")
        generator = np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(self.rank,)))
        utils.set_rng_state(generator.bit_generator.state)

    def check_same(self, model, where, **facts):
        signature = {"weights": [[list(w.shape), str(w.dtype)] for w in model.weights]
                     if model.built else "not built", **facts}
        everyone = self.communicator.allgather_object(signature)
        for rank, theirs in enumerate(everyone):
            for key in signature:
                if theirs.get(key) != everyone[0].get(key):
                    what = {"weights": "the model's weights (shapes, dtypes)",
                            "data": "the data it reads (a digest of 256 rows)"}.get(
                                key, f"'{key}'")
                    raise ArgumentError(
                        f"{where}: rank {rank} differs from rank 0 in {what}: "
                        f"{_short(theirs.get(key), 120)} vs {_short(everyone[0].get(key), 120)}"
                        "; every "
                        "rank must build the same model and read the same, whole data (each "
                        "takes its own slice of every batch: do not shard the data by rank).")

    def broadcast_state(self, model):
        """Overwrite the weights and the optimizer's state with rank 0's."""
        arrays = [w.data for w in model.weights]
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "_slots"):
            slots = [(v, optimizer._slots[id(v)][1]) for v in model.trainable_weights
                     if id(v) in optimizer._slots]
            counts = self.communicator.allgather_object([optimizer.iterations, len(slots)])
            if any(c[1] != counts[0][1] for c in counts):
                raise ArgumentError("fit: the ranks' optimizers have state for different "
                                    "variables; load the same checkpoint on every rank.")
            optimizer.iterations = counts[0][0]
            arrays += [slot[name] for _, slot in slots for name in sorted(slot)]
        for i, part in _through_buckets(arrays, self.bucket_bytes, self.communicator.broadcast_):
            arrays[i][...] = part

    # ----- prediction --------------------------------------------------------------------
    def prediction_gather(self):
        return _PredictionGather(self)


class _PredictionGather:
    """predict: each rank computes its slice of every batch, noting the global positions of
    its rows; whole() puts every rank's rows back in the original order, on every rank."""

    def __init__(self, dp):
        self.dp, self.positions, self.seen = dp, [], 0

    def run(self, data, predict_step):
        n = samples_in(data)
        lo, hi = self.dp.slice_of(n)
        local, _, stand_in = self.dp.local_batch(data)
        outputs = predict_step(local)
        if stand_in:  # run so that this rank knows the outputs' shapes; it holds no row
            outputs = [out[:0] for out in outputs]
        self.positions.append(np.arange(self.seen + lo, self.seen + hi))
        self.seen += n
        return outputs

    def whole(self, outputs):
        communicator = self.dp.communicator
        where = communicator.allgather_rows(np.concatenate(self.positions))
        result = []
        for local in outputs:
            out = np.empty((self.seen, *local.shape[1:]), local.dtype)
            for part, index in zip(communicator.allgather_rows(local), where):
                out[index] = part
            result.append(out)
        return result


def _weighted_word_sum(array, rows) -> int:
    """sum of word * (position + 1) modulo 2^64 over up to `rows` rows spread over the array
    (first and last included), its bytes read as 64-bit words: exact and order-sensitive."""
    array = np.asarray(array)
    index = np.unique(np.linspace(0, len(array) - 1, min(len(array), rows)).astype(np.int64))
    sample = np.ascontiguousarray(array[index]).view(np.uint8).reshape(-1)
    sample = np.concatenate([sample, np.zeros(-len(sample) % 8, np.uint8)]).view(np.uint64)
    return int(np.sum(sample * np.arange(1, len(sample) + 1, dtype=np.uint64), dtype=np.uint64))


def batch_digest(data, rows=8) -> float:
    """A digest of a global batch (a few rows of each array), below 2^32 so that the sum of the
    ranks' digests is exact in float64: every rank must see the same batch."""
    total = sum(_weighted_word_sum(a, rows) for item in data for a in _flat(item)) % (1 << 64)
    return float((total >> 32) ^ (total & 0xFFFFFFFF))  # float data's low bits are often 0


def data_fingerprint(arrays, rows=256) -> str:
    """A digest of the data's shapes and of up to `rows` rows spread over it (first and last
    included), exact and order-sensitive: the bytes as 64-bit words, sum of word * (position +
    1) modulo 2^64. Cheap at fit start (~1 ms), and it tells apart ranks that read different
    data, such as a shard each (DataParallel slices the batches itself)."""
    digest = hashlib.sha256()
    for array in arrays:
        if array is not None:
            array = np.asarray(array)
            total = _weighted_word_sum(array, rows)
            digest.update(f"{array.shape}{array.dtype}{total}".encode())
    return digest.hexdigest()[:16]


def _check_reductions(model):
    """Each rank's loss must be a mean over its samples for sum_r (b_r / B) loss_r to be the
    loss of the global batch: 'sum' and 'mean_with_sample_weight' are refused."""
    for loss in getattr(model, "_losses", None) or []:
        reduction = getattr(loss, "reduction", "sum_over_batch_size")
        if reduction not in ("sum_over_batch_size", "mean", None, "none"):
            raise ArgumentError(
                f"fit: the loss {getattr(loss, 'name', loss)!r} has reduction={reduction!r}; "
                "DataParallel weighs each rank's loss by its share of the global batch, which "
                "is the global loss for a mean over the batch only: use the default "
                "reduction 'sum_over_batch_size'.")


def _moving_statistics(model):
    """The moving mean and variance of the unsynchronized BatchNormalization layers that train
    (each rank's differ after a step; the allreduce averages them)."""
    from ..layers.normalization import BatchNormalization
    from ..layers.tracking import walk

    arrays = []
    for layer, frozen in walk(model):
        if (isinstance(layer, BatchNormalization) and layer.trainable and not frozen
                and not getattr(layer, "synchronized", False) and layer.built):
            arrays += [layer.moving_mean.data, layer.moving_variance.data]
    return arrays


def _buckets(arrays, limit):
    """Lists of indices into arrays, grouped by dtype and cut at about limit bytes."""
    groups = {}
    for i, array in enumerate(arrays):
        groups.setdefault(np.dtype(array.dtype), []).append(i)
    for indices in groups.values():
        bucket, size = [], 0
        for i in indices:
            if bucket and size + arrays[i].nbytes > limit:
                yield bucket
                bucket, size = [], 0
            bucket.append(i)
            size += arrays[i].nbytes
        if bucket:
            yield bucket


def _through_buckets(arrays, limit, collective):
    """(index, result) for each array after `collective` (an in-place allreduce or broadcast)
    ran on the flat buffers of its bucket: one call a bucket, not one a variable."""
    for bucket in _buckets(arrays, limit):
        flat = np.concatenate([arrays[i].reshape(-1) for i in bucket])
        collective(flat)
        offset = 0
        for i in bucket:
            yield i, flat[offset:offset + arrays[i].size].reshape(arrays[i].shape)
            offset += arrays[i].size


def check_distribution(value):
    if value is not None and not isinstance(value, DataParallel):
        raise ArgumentTypeError(f"set_distribution: expected a DataParallel or None, got "
                                f"{type(value).__name__}.")
    return value
