"""The W1 CNN training step (bench_cnn.shenjing_cnn, Adam, train_on_batch with the global
batch) on the same cores used two ways: 1 process x 2 threads, and 2 MPI ranks x 1 thread
(shenjing.distribution.DataParallel, each rank half of every batch), at global batch 64 and 128;
also 1 process x 1 thread, the base of the parallel efficiencies.

    parallel efficiency E = T(1 x 1) / (2 x T(config))    (1.0: twice as fast on 2 cores)

Each configuration runs in its own process(es) (thread counts are set when a process starts:
SHENJING_NUM_THREADS). Times are medians of blocks of steps; under MPI a step ends with the
gradient allreduce, which synchronizes the ranks, and rank 0's times are reported. W1 is timed
with its plain BatchNormalization (per-rank statistics under DataParallel, as PyTorch's DDP and
Keras do by default) and again with synchronized=True (two more small collectives per layer).
Run: python benchmarks/bench_data_parallel.py     (needs the distributed extra's mpiexec)
"""

import functools
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
BATCHES = (64, 128)
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def measure(distributed, synchronized):
    """ms per W1 step for each global batch, in this process (rank 0 prints them as JSON)."""
    from bench_cnn import shenjing_cnn
    from common import median_ms

    import shenjing as sj

    if distributed:
        sj.distribution.set_distribution(sj.distribution.DataParallel())
    rng = np.random.default_rng(0)
    times = {}
    for batch in BATCHES:
        model = shenjing_cnn()
        if synchronized:
            for layer in model.layers:
                if isinstance(layer, sj.layers.BatchNormalization):
                    layer.synchronized = True  # read by call on each step
        model.compile(optimizer=sj.optimizers.Adam(),
                      loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, batch)
        step = functools.partial(model.train_on_batch, x, y)
        runs = [median_ms(step, repeat=15, warmup=3) for _ in range(3)]
        times[batch] = float(np.median(runs))
    dp = sj.distribution.distribution()
    if dp is None or dp.rank == 0:
        print(json.dumps(times))


def _run(processes, threads, synchronized=False):
    env = {**os.environ, **ROOT_OK, "SHENJING_NUM_THREADS": str(threads),
           "PYTHONPATH": os.path.dirname(HERE)}
    command = [sys.executable, __file__, "--measure", str(processes > 1), str(synchronized)]
    if processes > 1:
        mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
        command = [mpiexec, "-n", str(processes), "--oversubscribe", "--bind-to", "none",
                   *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def main():
    base = _run(1, 1)
    rows = [("1 process x 1 thread", base), ("1 process x 2 threads", _run(1, 2)),
            ("2 ranks x 1 thread", _run(2, 1)),
            ("2 ranks x 1 thread, synchronized BN", _run(2, 1, synchronized=True))]
    print(f"W1 CNN training step, ms (median) and parallel efficiency vs 1 x 1; "
          f"{os.cpu_count()} cores here")
    print(f"{'configuration':<38}" + "".join(f"{'B=' + str(b):>10}{'E':>7}" for b in BATCHES))
    for name, times in rows:
        print(f"{name:<38}" + "".join(
            f"{times[b]:>10.1f}{base[b] / (2 * times[b]) if times is not base else 1 / 2:>7.2f}"
            for b in BATCHES))


if __name__ == "__main__":
    if "--measure" in sys.argv:
        flags = sys.argv[sys.argv.index("--measure") + 1:]
        measure(flags[0] == "True", flags[1] == "True")
    else:
        main()
