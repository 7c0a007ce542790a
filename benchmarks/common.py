"""Timing helpers shared by the benchmark scripts: medians, and a ratio table vs PyTorch."""

import time

import numpy as np


def median_ms(step, repeat=20, warmup=3):
    """Median wall time of step() in milliseconds, after a few untimed warm-up calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def blocks_ms(ours, theirs, rounds=3, per_block=7):
    """Medians (ms) over rounds * per_block steps of each, timed in alternating blocks, so that
    a change in the machine's load hits both alike; single steps are not interleaved, since each
    library's idle-spinning BLAS/OpenMP threads would slow the other one down."""
    times = ([], [])
    for _ in range(rounds):
        for step, out in zip((ours, theirs), times):
            time.sleep(0.2)  # let the other library's worker threads stop spinning
            out.append(median_ms(step, repeat=per_block, warmup=2))
    return float(np.median(times[0])), float(np.median(times[1]))


def print_table(rows):
    """rows: (workload, shenjing_ms, torch_ms) -> a Markdown table with the ratio."""
    print("| workload | shenjing (ms) | PyTorch (ms) | ratio shenjing/torch |")
    print("|---|---|---|---|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
