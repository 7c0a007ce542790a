"""A MODEL (not a measurement) of data-parallel training of the W1 CNN (bench_cnn.shenjing_cnn)
over N processes that sum their gradients with a ring allreduce after each step.

Per step, with N ranks each holding b = B / N samples of a global batch B:

    T(N)             = T_compute(B / N) + T_allreduce(S, N)
    T_allreduce(S,N) = 2 (N - 1) alpha + 2 (N - 1) / N * S / bandwidth      (0 when N = 1)

S is the gradient's size in bytes (the trainable parameters x 4 bytes, float32); alpha is the
latency of one message and bandwidth the rate of one rank's link (bytes/s). A ring allreduce
is a reduce-scatter then an allgather, each N - 1 steps in which every rank sends a 1/N chunk
to its neighbour: 2 (N - 1) messages, 2 (N - 1) / N * S bytes. No overlap is assumed: the
allreduce starts when backward has finished (frameworks that send gradient buckets while
backward still runs can hide part of it, down to max(compute, allreduce)).

    strong scaling (fixed global batch B): E(N) = T(1) / (N T(N)),  T(1) = T_compute(B)
    weak scaling (fixed per-rank batch b): E(N) = T_compute(b) / T(N)

T_compute(b) is a line, fixed + per_sample * b, through the W1 training step (train_on_batch,
Adam) timed at batch 64 and 32: the fixed part (optimizer, Python, per-op overheads) does not
shrink when a rank's share of the batch does. Other batch sizes are extrapolated along it. Given
one time only (--compute-ms MS64), T_compute is taken proportional to the batch (fixed = 0),
the most favourable case for strong scaling. When B / N < 1 a sample cannot be split: the
strong-scaling table stops there.

Networks (defaults; nominal link rates, so the model is optimistic there):
- 10 Gb/s Ethernet: 1.25 GB/s, alpha = 20 us (MPI over TCP: tens of microseconds).
- 100 Gb/s InfiniBand class (EDR): 12.5 GB/s, alpha = 2 us (RDMA: one or two microseconds).
- with --allreduce-json (from bench_allreduce.py, n >= 2): "this machine", its measured alpha
  and the bus bandwidth measured at the buffer size nearest S, as if every N had that link.
Also left out: stragglers and load imbalance, the batch-norm statistics (each rank normalizes
with its own b samples), data loading, and compute that would change with a rank's core count.
Run:
  python benchmarks/distributed_cost_model.py [--compute-ms 41 23] [--allreduce-json PATH]
"""

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `common`, `bench_cnn`
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for shenjing

RANKS = (1, 2, 4, 8, 16, 32, 64)
MEASURED_BATCHES = (64, 32)


@dataclass(frozen=True)
class Network:
    name: str
    bandwidth: float  # bytes/s through one rank's link
    alpha: float  # seconds per message

    def allreduce_s(self, nbytes, ranks):
        """Ring allreduce of nbytes over ranks processes, in seconds (the formula above)."""
        if ranks == 1:
            return 0.0
        return 2 * (ranks - 1) * self.alpha + 2 * (ranks - 1) / ranks * nbytes / self.bandwidth


DEFAULT_NETWORKS = (Network("10 Gb/s Ethernet", 10e9 / 8, 20e-6),
                    Network("100 Gb/s InfiniBand", 100e9 / 8, 2e-6))


@dataclass(frozen=True)
class Compute:
    """T_compute(b) = fixed + per_sample * b, in seconds."""
    fixed: float
    per_sample: float
    source: str

    def seconds(self, batch):
        return self.fixed + self.per_sample * batch

    @classmethod
    def fit(cls, times_ms, source):
        """times_ms: {batch: ms}, one or two batch sizes (see the module's docstring)."""
        (b1, t1), *rest = sorted(times_ms.items(), reverse=True)
        t1 /= 1e3
        if not rest:
            return cls(0.0, t1 / b1, f"{source}; proportional to the batch (one time given)")
        b2, t2 = rest[0]
        t2 /= 1e3
        per_sample = (t1 - t2) / (b1 - b2)
        fixed = t1 - per_sample * b1
        if per_sample <= 0 or fixed < 0:  # noise: the two times do not make a sensible line
            return cls(0.0, t1 / b1, f"{source}; batch {b2}'s time does not fit a line with "
                                     f"batch {b1}'s, so proportional to the batch")
        return cls(fixed, per_sample, source)


def gradient_bytes():
    """(trainable parameters, count_params(), bytes of a float32 gradient) of the W1 CNN."""
    from bench_cnn import shenjing_cnn

    model = shenjing_cnn()
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    return trainable, model.count_params(), trainable * 4


def measure_compute_ms(repeat):
    """Median ms of one W1 train_on_batch (Adam, as bench_cnn) at batch 64 and 32, here, timed
    in alternating blocks of `repeat` steps (common.blocks_ms) so load changes hit both alike."""
    from bench_cnn import shenjing_cnn
    from common import blocks_ms

    import shenjing as sj

    rng = np.random.default_rng(0)
    steps = []
    for batch in MEASURED_BATCHES:
        model = shenjing_cnn()
        model.compile(optimizer=sj.optimizers.Adam(),
                      loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        steps.append(lambda m=model, x=x, y=y: m.train_on_batch(x, y))
    return dict(zip(MEASURED_BATCHES, blocks_ms(*steps, rounds=3, per_block=repeat)))


def machine_network(path, nbytes):
    """The network measured by bench_allreduce.py --json: its alpha, and the bus bandwidth of
    the buffer size nearest nbytes (on a log scale)."""
    with open(path) as file:
        record = json.load(file)
    ranks = record.get("ranks", 1)
    if ranks < 2 or record.get("alpha_us") is None:
        sys.exit(f"{path}: measured with {ranks} rank(s), where nothing is sent; run "
                 "bench_allreduce.py under mpiexec -n 2 or more")
    row = min(record["rows"], key=lambda r: abs(math.log(r["bytes"] / nbytes)))
    name = (f"this machine, shared memory ({record.get('host', '?')}, {ranks} ranks measured, "
            f"busbw at {row['mb']:g} MB)")
    return Network(name, row["busbw_GBps"] * 1e9, record["alpha_us"] * 1e-6)


def strong_rows(global_batch, nbytes, compute, networks):
    """(N, per-rank batch, compute s, [(allreduce s, step s, efficiency) per network]) for a
    fixed global batch, and a note where it stops or splits unevenly."""
    rows, notes = [], []
    step_one = compute.seconds(global_batch)
    for ranks in RANKS:
        if global_batch < ranks:
            notes.append(f"N >= {ranks}: B / N < 1, a sample cannot be split: stopped.")
            break
        batch = math.ceil(global_batch / ranks)  # the slowest rank's share
        if global_batch % ranks:
            notes.append(f"N = {ranks}: B / N is not whole; the ranks holding {batch} set the "
                         "pace.")
        cells = []
        for net in networks:
            step = compute.seconds(batch) + net.allreduce_s(nbytes, ranks)
            cells.append((net.allreduce_s(nbytes, ranks), step, step_one / (ranks * step)))
        rows.append((ranks, batch, compute.seconds(batch), cells))
    return rows, notes


def weak_rows(batch, nbytes, compute, networks):
    rows = []
    for ranks in RANKS:
        cells = []
        for net in networks:
            step = compute.seconds(batch) + net.allreduce_s(nbytes, ranks)
            cells.append((net.allreduce_s(nbytes, ranks), step, compute.seconds(batch) / step))
        rows.append((ranks, batch, compute.seconds(batch), cells))
    return rows


def print_table(title, rows, networks, notes=()):
    print(f"\n{title}")
    head = "| N | batch/rank | compute ms |"
    for i in range(1, len(networks) + 1):
        head += f" net{i} allreduce ms | net{i} step ms | net{i} efficiency |"
    print(head)
    print("|---" * (3 + 3 * len(networks)) + "|")
    for ranks, batch, compute_s, cells in rows:
        line = f"| {ranks} | {batch} | {compute_s * 1e3:.1f} |"
        for allreduce_s, step_s, efficiency in cells:
            line += f" {allreduce_s * 1e3:.2f} | {step_s * 1e3:.1f} | {efficiency:.2f} |"
        print(line)
    for note in notes:
        print(f"  {note}")


def _network(text):
    """NAME:GBITS:ALPHA_US -> Network (Gb/s are 10**9 bits per second)."""
    try:
        name, gbits, alpha_us = text.rsplit(":", 2)
        net = Network(name, float(gbits) * 1e9 / 8, float(alpha_us) * 1e-6)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected NAME:GBITS_PER_S:ALPHA_US, e.g. '25 GbE:25:10', got {text!r}") from None
    if not (net.bandwidth > 0 and net.alpha >= 0):
        raise argparse.ArgumentTypeError(f"bandwidth must be > 0 and alpha >= 0, got {text!r}")
    return net


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compute-ms", type=float, nargs="+", metavar=("MS64", "MS32"),
                        help="one W1 training step per rank in ms at batch 64 (and, optionally, "
                             "32); default: measured here with shenjing, one process")
    parser.add_argument("--repeat", type=int, default=7,
                        help="when measuring: timed steps per block, 3 blocks per batch size "
                             "(default: %(default)s)")
    parser.add_argument("--network", type=_network, action="append", metavar="NAME:GBITS:US",
                        help="a network to model instead of the defaults (repeatable)")
    parser.add_argument("--allreduce-json", metavar="PATH",
                        help="bench_allreduce.py --json output: adds this machine's link")
    parser.add_argument("--global-batch", type=int, nargs="+", default=[64, 128],
                        help="strong scaling's global batches (default: %(default)s)")
    parser.add_argument("--weak-batch", type=int, default=64,
                        help="weak scaling's per-rank batch (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.compute_ms is not None and (len(args.compute_ms) > 2
                                        or min(args.compute_ms) <= 0):
        parser.error("--compute-ms takes one or two positive times (batch 64, then 32)")
    if args.repeat < 1 or args.weak_batch < 1 or min(args.global_batch) < 1:
        parser.error("--repeat, --global-batch and --weak-batch must be positive integers")
    return args


def main(argv=None):
    args = _parse(argv)
    trainable, total, nbytes = gradient_bytes()
    if args.compute_ms is None:
        import shenjing as sj

        times = measure_compute_ms(args.repeat)
        source = (f"measured here: median of shenjing train_on_batch, one process, "
                  f"{sj.config.get_num_threads()} thread(s)")
    else:
        times = dict(zip(MEASURED_BATCHES, args.compute_ms))
        source = "given with --compute-ms"
    compute = Compute.fit(times, source)
    networks = list(args.network or DEFAULT_NETWORKS)
    if args.allreduce_json:
        networks.append(machine_network(args.allreduce_json, nbytes))

    print("MODEL, not a measurement: data-parallel W1 CNN, ring allreduce after backward, "
          "no overlap.")
    print(f"S = {trainable:,} trainable parameters x 4 bytes = {nbytes / 1e6:.3f} MB "
          f"(count_params() = {total:,}; the batch-norm statistics are not gradients)")
    print("T_compute(b) = " + ", ".join(f"{ms:.1f} ms at batch {b}" for b, ms in times.items())
          + f" ({compute.source}) -> {compute.fixed * 1e3:.2f} ms + "
          f"{compute.per_sample * 1e3:.3f} ms x b")
    for i, net in enumerate(networks, 1):
        print(f"net{i} = {net.name}: {net.bandwidth / 1e9:.3g} GB/s per rank, "
              f"alpha {net.alpha * 1e6:.3g} us per message")
    for batch in args.global_batch:
        rows, notes = strong_rows(batch, nbytes, compute, networks)
        print_table(f"MODEL, strong scaling: global batch B = {batch}, E = T(1) / (N T(N))",
                    rows, networks, notes)
    print_table(f"MODEL, weak scaling: batch {args.weak_batch} per rank, "
                "E = T_compute(b) / T(N)",
                weak_rows(args.weak_batch, nbytes, compute, networks), networks)


if __name__ == "__main__":
    main()
