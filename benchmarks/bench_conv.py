"""conv2d forward+backward, shenjing vs PyTorch in one process (W5 of PERF-NOTES.md).

W5: batch 32, 32x32x64 input, 64 filters 3x3 'same', float32. Run:
python benchmarks/bench_conv.py [--all]   (--all adds strided, 1x1, 5x5 and first-layer cases)

Each library is timed in alternating blocks of consecutive steps (common.blocks_ms).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `common`
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for shenjing

from common import blocks_ms, print_table

import shenjing as sj
from shenjing.ops.conv import conv2d


def conv_case(n, size, c, f, k, strides=1, input_grad=True):
    """(shenjing step, torch step): conv2d 'same' forward + backward, random upstream gradient."""
    import torch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, size, size, c)).astype(np.float32)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    b = np.zeros(f, np.float32)
    out = -(-size // strides)
    gy = rng.standard_normal((n, out, out, f)).astype(np.float32)
    params = [sj.Tensor(a, requires_grad=g) for a, g in ((x, input_grad), (w, True), (b, True))]

    def ours():
        for t in params:
            t.grad = None
        conv2d(*params, strides=strides, padding="same").backward(gy)

    xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=input_grad)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    gyt = torch.tensor(gy.transpose(0, 3, 1, 2).copy())
    # torch refuses padding='same' with stride > 1: pad asymmetrically as TensorFlow does
    total = max((out - 1) * strides + k - size, 0)
    before, after = total // 2, total - total // 2

    def theirs():
        for t in (xt, wt, bt):
            t.grad = None
        if before == after:
            y = torch.nn.functional.conv2d(xt, wt, bt, stride=strides, padding=before)
        else:
            xp = torch.nn.functional.pad(xt, (before, after) * 2)
            y = torch.nn.functional.conv2d(xp, wt, bt, stride=strides)
        y.backward(gyt)

    return ours, theirs


CASES = [
    ("conv2d 3x3 64->64 fwd+bwd, b32 32x32 'same' (W5)", (32, 32, 64, 64, 3)),
]
MORE_CASES = [
    ("conv2d 3x3 32->64, b64 14x14 'same'", (64, 14, 32, 64, 3)),
    ("conv2d 3x3 1->32, b64 28x28 'same', no input grad", (64, 28, 1, 32, 3, 1, False)),
    ("conv2d 3x3 64->64 stride 2, b32 32x32 'same'", (32, 32, 64, 64, 3, 2)),
    ("conv2d 1x1 64->64, b32 32x32", (32, 32, 64, 64, 1)),
    ("conv2d 5x5 64->64, b32 32x32 'same'", (32, 32, 64, 64, 5)),
]


def run(all_cases=False):
    """Rows (workload, shenjing_ms, torch_ms); W5 only unless all_cases."""
    cases = CASES + (MORE_CASES if all_cases else [])
    return [(name, *blocks_ms(*conv_case(*args))) for name, args in cases]


if __name__ == "__main__":
    print_table(run(all_cases="--all" in sys.argv))
