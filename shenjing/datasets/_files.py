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
# Samples per file of MNIST and Fashion-MNIST (same layout): 60,000 train, 10,000 test.
# A file may hold at most these, not exactly: a subset in the same format (a sample kept for a
# quick run, a test fixture) is a legitimate file, and "at most" already bounds what a hostile
# header can make us allocate to what the real release costs; exact counts would add no safety.
MNIST_SIZES = {"train": 60_000, "test": 10_000}
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


def read_idx(path, ndim, item_shape=None, *, max_items):
    """An IDX file (gzipped if its name ends in .gz) of unsigned bytes with `ndim` dimensions.

    The header is checked before the data is read: at most `max_items` along the first axis
    and, when given, `item_shape` for the others (else at most max_items * 784 bytes in all).
    """
    path = Path(path)
    f, shape = _open_idx(path, ndim, item_shape, max_items)
    with f:
        return _read_idx_body(f, path, shape)


@contextlib.contextmanager
def _reading(path):
    # what a truncated or corrupt (gzip) stream raises, as a DatasetFileError naming the file
    try:
        yield
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetFileError(path, f"cannot read the file, truncated or corrupt ({e})") from e


def _open_idx(path, ndim, item_shape, max_items):
    """(stream past the header, shape) of the IDX file `path`, its header checked; nothing of
    the body is read, so a caller can compare several headers before inflating any body."""
    with _reading(path):
        f = (gzip.open if path.suffix == ".gz" else open)(path, "rb")
        try:
            shape = _read_idx_header(f, path, ndim)
            _check_idx_shape(path, shape, item_shape, max_items)
        except BaseException:
            f.close()
            raise
    return f, shape


def _read_idx_body(f, path, shape):
    with _reading(path):
        data = read_exactly(f, math.prod(shape), path)
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
            f"file holds at most {max_items} items and {limit} bytes"
        )


def read_idx_set(folder, files, image_shape, sizes, num_classes=10):
    """((x_train, y_train), (x_test, y_test)) from IDX `files` (train x, y, then test x, y).

    All four headers are read and checked (each split at most `sizes[split]` samples, images
    and labels announcing as many) before any body is inflated.
    """
    paths = [find_file(folder, [f]) for f in files]
    missing = [f for f, p in zip(files, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}.")
    splits = ("train", "train", "test", "test")
    with contextlib.ExitStack() as stack:
        opened = []
        for path, ndim, split in zip(paths, (3, 1, 3, 1), splits, strict=True):
            item_shape = image_shape if ndim == 3 else ()
            f, shape = _open_idx(path, ndim, item_shape, sizes[split])
            opened.append((stack.enter_context(f), path, shape))
        for i, split in ((0, "train"), (2, "test")):
            (_, x_path, x_shape), (_, y_path, y_shape) = opened[i], opened[i + 1]
            if x_shape[0] != y_shape[0]:
                raise DatasetFileError(
                    y_path, f"header announces {y_shape[0]} {split} labels but {x_path.name} "
                    f"announces {x_shape[0]} {split} images; expected one label per image"
                )
        x_train, y_train, x_test, y_test = (_read_idx_body(*o) for o in opened)
    for y, path in ((y_train, paths[1]), (y_test, paths[3])):
        check_labels(y, path, num_classes)
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
