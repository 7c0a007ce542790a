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


def print_table(rows):
    """rows: (workload, shenjing_ms, torch_ms) -> a Markdown table with the ratio."""
    print("| workload | shenjing (ms) | PyTorch (ms) | ratio shenjing/torch |")
    print("|---|---|---|---|")
    for name, ours, theirs in rows:
        print(f"| {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
