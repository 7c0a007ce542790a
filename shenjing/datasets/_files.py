"""Dataset files: the cache folder, checked downloads, and readers for IDX, npz and CIFAR-10.

Nothing here unpickles: npz files load with allow_pickle=False and CIFAR-10 is read from its
binary release only. Downloads land in a temporary file next to their target, are checked
against a SHA-256 digest, then renamed into place, so no partial file is ever cached.
"""

import contextlib
import gzip
import hashlib
import os
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

CIFAR_RECORD_BYTES = 1 + 32 * 32 * 3  # label byte, then the red, green and blue 32x32 planes


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


def read_idx(path, ndim):
    """An IDX file (gzipped if its name ends in .gz) of unsigned bytes with `ndim` dimensions."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: cannot read the file, truncated or corrupt ({e}).") from e
    magic = 0x0800 + ndim  # two zero bytes, 0x08 (unsigned byte), then the number of dimensions
    got = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if got != magic:
        raise ValueError(f"{path}: expected IDX magic number {magic}, got {got}.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes).")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ValueError(
            f"{path}: IDX header announces shape {shape}, i.e. {expected} bytes, but the file "
            f"holds {len(data)} bytes (truncated or corrupt)."
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape).copy()


def read_idx_set(folder, files, image_shape):
    """((x_train, y_train), (x_test, y_test)) from IDX `files` (train x, y, then test x, y)."""
    paths = [find_file(folder, [f]) for f in files]
    missing = [f for f, p in zip(files, paths, strict=True) if p is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {', '.join(missing)}.")
    x_train, y_train, x_test, y_test = (
        read_idx(p, n) for p, n in zip(paths, (3, 1, 3, 1), strict=True)
    )
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if x.shape[1:] != image_shape:
            raise ValueError(f"{folder}: {split} images should be {image_shape}, got {x.shape}.")
        if len(x) != len(y):
            raise ValueError(f"{folder}: {len(x)} {split} images but {len(y)} labels.")
    return (x_train, y_train), (x_test, y_test)


def read_npz(path, keys=("x_train", "y_train", "x_test", "y_test")):
    """The arrays named `keys` from an npz file, loaded without pickle."""
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: cannot read as npz ({e}).") from e
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an npz archive with {list(keys)}, got one array.")
    with f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(f"{path}: npz lacks {missing}; it holds {f.files}.")
        try:
            return tuple(f[k] for k in keys)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise ValueError(f"{path}: corrupt npz member ({e}).") from e


def parse_cifar_batch(data, where):
    """One CIFAR-10 binary batch -> images uint8 (N, 32, 32, 3), labels uint8 (N, 1)."""
    if len(data) == 0 or len(data) % CIFAR_RECORD_BYTES:
        raise ValueError(
            f"{where}: {len(data)} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte "
            "CIFAR-10 records (truncated or corrupt file)."
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    y = records[:, :1].copy()
    if y.max() > 9:
        raise ValueError(f"{where}: label {y.max()} is outside 0..9 (corrupt file).")
    # records hold channel planes (C, H, W); channels-last wants (H, W, C)
    x = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return x, y


def read_tar_members(archive, names):
    """{name: bytes} for the regular files `names` of a tar archive, written nowhere.

    Members are matched by exact name and read in memory, so links, devices and names
    such as '../x' or '/x' in a hostile archive can never touch the file system.
    """
    found = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.name in names and member.isfile() and member.name not in found:
                    found[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{archive}: cannot read the archive, truncated or corrupt ({e}).") from e
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{archive}: archive lacks the regular files {missing}.")
    return found
