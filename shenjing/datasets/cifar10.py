"""CIFAR-10: 50,000 train and 10,000 test 32x32 colour images in 10 classes.

CIFAR-10 is by Alex Krizhevsky, Vinod Nair and Geoffrey Hinton (University of Toronto).
Only the binary release is read (cifar-10-binary.tar.gz), never the pickled Python batches.
"""

from pathlib import Path

import numpy as np

from . import _archives, _files

ORIGIN = "https://www.cs.toronto.edu/~kriz/"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
SHA256 = {
    "cifar-10-binary.tar.gz": "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
}
# records per batch file: the release's batches hold 10,000 each, and a file may hold at most
# that (a smaller one is a legitimate subset, as for MNIST in _files.MNIST_SIZES); a file or
# archive member over it is refused before it is read or inflated
MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = MAX_BATCH_RECORDS * _files.CIFAR_RECORD_BYTES
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def load_data(path=None, origin=None):
    """CIFAR-10 as ((x_train, y_train), (x_test, y_test)); x uint8 (N, 32, 32, 3), y (N, 1).

    Records are a label byte then the red, green and blue planes, converted to channels-last.
    Args: path (a folder holding data_batch_1.bin ... test_batch.bin, or holding
    cifar-10-batches-bin/ or cifar-10-binary.tar.gz, or the archive itself; None: the cache
    folder ~/.shenjing/datasets/cifar10, downloading the archive once, checked by SHA-256);
    origin (base URL of the download, default ORIGIN).
    """
    if path is not None:
        return _load_from(Path(path))
    folder = _files.cache_dir("cifar10")
    if _find_source(folder) is None:
        _files.fetch("cifar10", ARCHIVE, origin or ORIGIN, SHA256)
    return _load_from(folder)


def _find_source(path):
    # a folder of .bin batches, or an archive holding them; None if neither is there
    for folder in (path, path / FOLDER):
        if all((folder / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            return folder
    if (path / ARCHIVE).is_file():
        return path / ARCHIVE
    return None


def _load_from(path):
    if path.is_dir():
        source = _find_source(path)
        if source is None:
            raise FileNotFoundError(
                f"cifar10.load_data: {path} holds neither the batches {list(TRAIN_FILES)} and "
                f"{TEST_FILE} (directly or in {FOLDER}/) nor {ARCHIVE}."
            )
    elif path.is_file():
        source = path
    else:
        raise FileNotFoundError(f"cifar10.load_data: no file or folder at {path}.")
    names = (*TRAIN_FILES, TEST_FILE)
    if source.is_dir():
        files = [source / n for n in names]
        batches = [
            _files.parse_cifar_batch(_files.read_small_file(f, MAX_BATCH_BYTES), f) for f in files
        ]
    else:
        wanted = [f"{FOLDER}/{n}" for n in names]
        members = _archives.read_tar_members(source, wanted, MAX_BATCH_BYTES)
        batches = [
            _files.parse_cifar_batch(members[f"{FOLDER}/{n}"], f"{source}:{FOLDER}/{n}")
            for n in names
        ]
    x_train = np.concatenate([x for x, _ in batches[:-1]])
    y_train = np.concatenate([y for _, y in batches[:-1]])
    return (x_train, y_train), batches[-1]
