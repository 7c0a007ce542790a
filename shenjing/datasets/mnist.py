"""MNIST handwritten digits: 60,000 train and 10,000 test images, 28x28 grey levels 0..255.

MNIST is by Yann LeCun, Corinna Cortes and Christopher Burges, under CC BY-SA 3.0.
`load_subset` needs no download: it uses 5,000 real MNIST digits that ship with shenjing
(see shenjing/datasets/data/README.md).
"""

from importlib import resources
from pathlib import Path

import numpy as np

from . import _archives, _files

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILENAME = "mnist.npz"
SHA256 = {"mnist.npz": "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"}
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NUM_CLASSES = 10
# What mnist.npz may hold, checked from each member's header before it is read: 28x28 uint8
# images, integer labels, each split at most its size in the release (_files.MNIST_SIZES:
# 60,000 train, 10,000 test; at most, not exactly, for the reason given there).
_TRAIN, _TEST = _files.MNIST_SIZES["train"], _files.MNIST_SIZES["test"]
NPZ_SPECS = {
    "x_train": _archives.ArraySpec((28, 28), "u", 1, _TRAIN),
    "y_train": _archives.ArraySpec((), "ui", 8, _TRAIN),
    "x_test": _archives.ArraySpec((28, 28), "u", 1, _TEST),
    "y_test": _archives.ArraySpec((), "ui", 8, _TEST),
}
NPZ_PAIRS = (("x_train", "y_train"), ("x_test", "y_test"))  # one label per image


def load_data(path=None, origin=None):
    """MNIST as ((x_train, y_train), (x_test, y_test)); x uint8 (N, 28, 28), y uint8 (N,).

    Args: path (an mnist.npz file, or a folder holding mnist.npz or the four IDX files
    train-images-idx3-ubyte.gz ...; None: the cache folder ~/.shenjing/datasets/mnist,
    downloading mnist.npz once, checked by SHA-256, if it is empty); origin (base URL of
    the download, default ORIGIN).
    """
    if path is not None:
        return _load_from(Path(path))
    folder = _files.cache_dir("mnist")
    if _has_data(folder):
        return _load_from(folder)
    return _load_npz(_files.fetch("mnist", FILENAME, origin or ORIGIN, SHA256))


def load_subset(n_test=1000, seed=0):
    """5,000 real MNIST digits shipped with shenjing, split into train and test; no download.

    The split is stratified (n_test / 10 test images per class by default) and deterministic
    for a given seed; both parts come shuffled. Returns ((x_train, y_train), (x_test, y_test)),
    x uint8 (N, 28, 28), y uint8 (N,).
    Args: n_test (test images, 0 < n_test < 5000); seed (int for the shuffling generator).
    """
    x, y = _read_shipped_subset()
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)):
        raise TypeError(f"mnist.load_subset: n_test must be an int, got {type(n_test).__name__}.")
    if not 0 < n_test < len(y):
        raise ValueError(f"mnist.load_subset: n_test must be in 1..{len(y) - 1}, got {n_test}.")
    rng = np.random.default_rng(seed)
    counts = np.bincount(y, minlength=NUM_CLASSES)
    per_class = _largest_remainder(counts * n_test / len(y), n_test)
    test = []
    for c in range(NUM_CLASSES):
        members = np.flatnonzero(y == c)
        test.append(rng.permutation(members)[: per_class[c]])
    test = np.concatenate(test)
    train = np.setdiff1d(np.arange(len(y)), test)
    train, test = rng.permutation(train), rng.permutation(test)
    return (x[train], y[train]), (x[test], y[test])


def _largest_remainder(quotas, total):
    # integer counts summing to `total`, as close to the real `quotas` as possible
    counts = np.floor(quotas).astype(np.int64)
    order = np.argsort(-(quotas - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _read_shipped_subset():
    with resources.files(__package__).joinpath("data", "mnist_5k.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as data:
            return data["x"], data["y"]


def _has_data(folder):
    return (folder / FILENAME).is_file() or all(
        _files.find_file(folder, [f]) is not None for f in IDX_FILES
    )


def _load_from(path):
    if path.is_file():
        return _load_npz(path)
    if not path.is_dir():
        raise FileNotFoundError(f"mnist.load_data: no file or folder at {path}.")
    if (path / FILENAME).is_file():
        return _load_npz(path / FILENAME)
    if any(_files.find_file(path, [f]) is not None for f in IDX_FILES):
        return _files.read_idx_set(path, IDX_FILES, (28, 28), _files.MNIST_SIZES, NUM_CLASSES)
    raise FileNotFoundError(
        f"mnist.load_data: {path} holds neither {FILENAME} nor the IDX files {list(IDX_FILES)}."
    )


def _load_npz(path):
    arrays = _archives.read_npz(path, NPZ_SPECS, same_length=NPZ_PAIRS)
    for split in ("train", "test"):
        _files.check_labels(arrays[f"y_{split}"], f"{path}:y_{split}", NUM_CLASSES)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
