"""Where the reference training steps spend their time: each op kind's forward and backward, in
milliseconds per step, for W1 (the reference CNN, train_on_batch, batch 64) and W3 (the LSTM
step of bench_lstm), plus what runs outside the ops (the optimizer, the autograd walk, layers).
Profile before optimizing; compare changes with an in-process A/B (common.blocks_ms), not with
these totals, which drift with the machine.
Run: python benchmarks/profile_steps.py
"""

import os
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_cnn import shenjing_cnn
from bench_lstm import shenjing_step

import shenjing as sj
from shenjing.tensor import Op


def _op_classes():
    found, stack = [], [Op]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return found


def _timed(method, key, totals):
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    return wrapper


def profile(step, steps=100, warmup=10):
    """({'Kind.forward' | 'Kind.backward': ms per step}, total ms per step) for step()."""
    totals = defaultdict(float)
    patched = []
    for cls in _op_classes():
        for name in ("forward", "backward"):
            if name in vars(cls):
                patched.append((cls, name, vars(cls)[name]))
                setattr(cls, name, _timed(vars(cls)[name], f"{cls.__name__}.{name}", totals))
    try:
        for _ in range(warmup):
            step()
        totals.clear()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - start) * 1e3 / steps
    finally:
        for cls, name, method in patched:
            setattr(cls, name, method)
    return {key: seconds * 1e3 / steps for key, seconds in totals.items()}, total


def _report(title, per_op, total):
    print(f"\n{title}: {total:.1f} ms per step")
    print("| op | ms |\n|---|---|")
    for key, ms in sorted(per_op.items(), key=lambda item: -item[1]):
        if ms >= 0.05:
            print(f"| {key} | {ms:.2f} |")
    print(f"| outside the ops | {total - sum(per_op.values()):.2f} |")


def main():
    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    cnn = shenjing_cnn()
    cnn.compile(optimizer=sj.optimizers.Adam(),
                loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))
    _report("W1 CNN training step, batch 64", *profile(lambda: cnn.train_on_batch(x, y)))
    _report("W3 LSTM training step, batch 64, T = 50", *profile(shenjing_step(rng)))


if __name__ == "__main__":
    main()
