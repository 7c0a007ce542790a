"""Dataset files: the cache folder, checked downloads, bounded reading, IDX and CIFAR-10 records.

Nothing here unpickles: CIFAR-10 is read from its binary release only (npz and tar archives
are read by _archives.py). Downloads land in a temporary file next to their target, are checked
against a SHA-256 digest, then renamed into place, so no partial file is ever cached.

Every reader treats a file as untrusted: sizes announced by a header are checked against the
format's known sizes before anything is allocated, and data is read in chunks up to the size
announced plus one byte, so a header that lies or a compressed stream that inflates without end
(a gzip bomb) is refused having cost at most one chunk more than the true data.
"""

import contextlib
import gzip
import hashlib
import math
import os
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import ShenjingError

CIFAR_RECORD_BYTES = 1 + 32 * 32 * 3  # label byte, then the red, green and blue 32x32 planes
# Samples one file may hold: MNIST and Fashion-MNIST have 60,000 train and 10,000 test images;
# EMNIST ByClass, the largest 28x28 variant, 697,932 and 116,323. A header announcing more is
# refused before anything is allocated.
MAX_SAMPLES = 1_000_000
CHUNK_BYTES = 1 << 20  # reads go by 1 MiB, so a short stream never costs its announced size


class DatasetFileError(ShenjingError, ValueError):
    """A dataset file that is corrupt, truncated, hostile or of another format.

    `path` names the file (or `archive:member`) and `problem` says what was expected and
    what was found; the message is "<path>: <problem>.".
    """

    def __init__(self, path, problem):
        self.path, self.problem = str(path), problem
        super().__init__(f"{self.path}: {problem}.")


def cache_dir(name):
    """The cache folder of dataset `name`: $SHENJING_HOME/datasets/<name> (default ~/.shenjing)."""
    home = os.environ.get("SHENJING_HOME") or os.path.join("~", ".shenjing")
    return Path(home).expanduser() / "datasets" / name


def download(url, dest, sha256, timeout=60.0):
    """Fetch `url` into `dest` once, checked against `sha256` (None: unknown, check skipped)."""
    # here, not at the top: these cost more than the rest of `import shenjing.datasets`
    import http.client
    import urllib.request

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    hasher = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    announced, received = response.headers.get("Content-Length"), 0
                    while chunk := response.read(1 << 20):
                        hasher.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
                # NOTE: read(n) returns short data, not an error, when a transfer is cut
                if announced is not None and received != int(announced):
                    raise OSError(f"got {received} of {announced} bytes")
            except (OSError, http.client.HTTPException) as e:  # URLError is an OSError
                raise OSError(
                    f"could not download {url} ({e}); copy the file into {dest.parent} "
                    "or pass path= to load_data."
                ) from e
        digest = hasher.hexdigest()
        if sha256 is None:
            warnings.warn(
                f"no known SHA-256 digest for {dest.name}; skipping its checksum "
                f"(downloaded file has sha256 {digest}).",
                stacklevel=3,
            )
        elif digest != sha256:
            raise ValueError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}; "
                "the download was deleted."
            )
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return dest


def fetch(name, filename, origin, digests):
    """Path of `filename` in the cache of `name`, downloaded from `origin` if missing."""
    dest = cache_dir(name) / filename
    if not dest.is_file():
        download(origin.rstrip("/") + "/" + filename, dest, digests.get(filename))
    return dest


def find_file(folder, names):
    """The first of `names` present in `folder` (each also tried without a .gz suffix)."""
    for name in names:
        for candidate in (name, name.removesuffix(".gz")):
            if (Path(folder) / candidate).is_file():
                return Path(folder) / candidate
    return None


def read_exactly(stream, size, where, to_end=True):
    """Exactly `size` bytes of `stream`, read by chunks; refuses a stream that holds fewer.

    With `to_end` the stream must end there: one byte more is read to make sure, never more,
    so a stream that inflates past what its header announced (a decompression bomb) is stopped
    at size + 1 bytes. Returns a bytearray, which NumPy can wrap without a copy.
    """
    limit = size + 1 if to_end else size
    data = bytearray()
    while len(data) < limit:
        chunk = stream.read(min(CHUNK_BYTES, limit - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) > size:
        raise DatasetFileError(
            where, f"holds more than the {size} data bytes its header announces (corrupt file, "
            "or a compressed stream inflating past it)"
        )
    if len(data) < size:
        raise DatasetFileError(
            where, f"header announces {size} data bytes but the file holds {len(data)} "
            "(truncated or corrupt)"
        )
    return data


def read_small_file(path, max_bytes):
    """The bytes of the regular file `path`, refused unread if it is over `max_bytes`."""
    size = os.stat(path).st_size
    if size > max_bytes:
        raise DatasetFileError(path, f"{size} bytes is more than the {max_bytes} this file can be")
    with open(path, "rb") as f:
        return bytes(read_exactly(f, size, path))


def check_labels(y, where, num_classes=10):
    """Refuse labels outside 0..num_classes - 1, naming the file and the first bad value."""
    bad = (y < 0) | (y >= num_classes)
    if y.size and bad.any():
        raise DatasetFileError(
            where, f"label {y[bad].flat[0]} is outside 0..{num_classes - 1} (corrupt file)"
        )


def read_idx(path, ndim, item_shape=None, max_items=MAX_SAMPLES):
    """An IDX file (gzipped if its name ends in .gz) of unsigned bytes with `ndim` dimensions.

    The header is checked before the data is read: at most `max_items` along the first axis
    and, when given, `item_shape` for the others (else at most max_items * 784 bytes in all).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            shape = _read_idx_header(f, path, ndim)
            _check_idx_shape(path, shape, item_shape, max_items)
            data = read_exactly(f, math.prod(shape), path)
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetFileError(path, f"cannot read the file, truncated or corrupt ({e})") from e
    return np.frombuffer(data, np.uint8).reshape(shape)


def _read_idx_header(f, path, ndim):
    # magic: two zero bytes, 0x08 (unsigned byte), then the number of dimensions
    magic = 0x0800 + ndim
    head = f.read(4)
    got = int.from_bytes(head, "big") if len(head) == 4 else None
    if got != magic:
        raise DatasetFileError(path, f"expected IDX magic number {magic}, got {got}")
    sizes = f.read(4 * ndim)
    if len(sizes) != 4 * ndim:
        raise DatasetFileError(path, f"truncated IDX header ({4 + len(sizes)} bytes)")
    return tuple(int.from_bytes(sizes[i : i + 4], "big") for i in range(0, 4 * ndim, 4))


def _check_idx_shape(path, shape, item_shape, max_items):
    # Python ints: a product of four 32-bit sizes cannot overflow here as it would in int64
    if item_shape is not None and shape[1:] != tuple(item_shape):
        expected = "(N, " + ", ".join(map(str, item_shape)) + ")" if item_shape else "(N,)"
        raise DatasetFileError(path, f"IDX header announces shape {shape}; expected {expected}")
    limit = max_items * (math.prod(item_shape) if item_shape is not None else 28 * 28)
    if shape[0] > max_items or math.prod(shape) > limit:
        raise DatasetFileError(
            path, f"IDX header announces shape {shape}, i.e. {math.prod(shape)} bytes; this "
            f"format holds at most {max_items} items and {limit} bytes"
        )


def read_idx_set(folder, files, image_shape, num_classes=10):
    """((x_train, y_train), (x_test, y_test)) from IDX `files` (train x, y, then test x, y)."""
    paths = [find_file(folder, [f]) for f in files]
    missing = [f for f, p in zip(files, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}.")
    x_train, y_train, x_test, y_test = (
        read_idx(p, n, shape) for p, n, shape in zip(paths, (3, 1) * 2, (image_shape, ()) * 2)
    )
    for y, path in ((y_train, paths[1]), (y_test, paths[3])):
        check_labels(y, path, num_classes)
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DatasetFileError(folder, f"{len(x)} {split} images but {len(y)} labels")
    return (x_train, y_train), (x_test, y_test)


def parse_cifar_batch(data, where):
    """One CIFAR-10 binary batch -> images uint8 (N, 32, 32, 3), labels uint8 (N, 1)."""
    if len(data) == 0 or len(data) % CIFAR_RECORD_BYTES:
        raise DatasetFileError(
            where, f"{len(data)} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte "
            "CIFAR-10 records (truncated or corrupt file)"
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    y = records[:, :1].copy()
    check_labels(y, where)
    # records hold channel planes (C, H, W); channels-last wants (H, W, C)
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return x, y
