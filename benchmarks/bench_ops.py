"""The core ops against PyTorch in one process: conv2d fwd+bwd (batch 32, 32x32x64, 64 filters
3x3 'same') and batch_norm fwd+bwd (64x32x32x64). Prints medians and shenjing/torch ratios.

Run: python benchmarks/bench_ops.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_batchnorm  # noqa: E402
import bench_conv  # noqa: E402
from common import print_table  # noqa: E402

if __name__ == "__main__":
    print_table(bench_conv.run() + bench_batchnorm.run())
