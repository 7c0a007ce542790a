"""Arrays from npz files and members from tar archives, checked before anything is inflated.

An npz is a zip of .npy files. Each wanted member is checked in the zip's central directory
(method, uncompressed size, compression ratio), then its .npy header (dtype, shape) against what
the dataset can hold, then exactly the announced bytes are read; pickles are never loaded.
A tar archive is read through a view of its decompressed stream that refuses to go past what
the wanted members can total, and every member's size is checked from its header before it is
read or skipped. Nothing is extracted to disk, so paths such as '../x' in a hostile archive can
never touch the file system, and links or device files, which the datasets never hold, are
refused.
"""

import bz2
import contextlib
import gzip
import io
import lzma
import math
import tarfile
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

from ._files import DatasetFileError, read_exactly

NPY_HEADER_MAX = 10_000  # np.lib.format's default limit on the header dictionary
DEFLATE_MAX_RATIO = 1032  # deflate never inflates more than 1032:1; a higher claim is a lie
TAR_MAX_MEMBERS = 64  # the CIFAR-10 archive holds 9
TAR_SLACK_BYTES = 1 << 20  # headers, padding and small files beside the wanted members
TAR_MAX_READ = 2 << 20  # one read of the tar stream: a header, or a 1 MiB chunk of ours


@dataclass(frozen=True)
class ArraySpec:
    """What one array of a dataset file may be: (N, *item_shape), N <= max_len, its dtype of
    one of the NumPy `kinds` ('u' unsigned, 'i' signed) and at most `max_itemsize` bytes."""

    item_shape: tuple
    kinds: str
    max_itemsize: int
    max_len: int

    @property
    def max_bytes(self):
        return self.max_len * math.prod(self.item_shape) * self.max_itemsize

    def describe(self):
        shape = "(N, " + ", ".join(map(str, self.item_shape)) + ")" if self.item_shape else "(N,)"
        dtype = "uint8" if (self.kinds, self.max_itemsize) == ("u", 1) else "integers"
        return f"{shape} {dtype} with N <= {self.max_len}"

    def check(self, where, shape, dtype):
        if dtype.hasobject:
            raise DatasetFileError(
                where, "holds Python objects, which only loading with allow_pickle could read; "
                "refused, since unpickling a file can run code"
            )
        ok_dtype = dtype.kind in self.kinds and dtype.itemsize <= self.max_itemsize
        ok_shape = len(shape) == 1 + len(self.item_shape) and shape[1:] == self.item_shape
        if not (ok_dtype and ok_shape and 0 <= shape[0] <= self.max_len):
            raise DatasetFileError(
                where, f"array of shape {shape} and dtype {dtype}; expected {self.describe()}"
            )


def read_npz(path, specs, same_length=()):
    """{name: array} for each name of `specs` ({name: ArraySpec}) in the npz file `path`.

    Every member's zip entry and .npy header is checked, and the arrays of each group of names
    in `same_length` are checked to announce as many rows, before any member's data is read.
    """
    try:
        with zipfile.ZipFile(path) as zf, contextlib.ExitStack() as stack:
            names = zf.namelist()
            missing = [k for k in specs if f"{k}.npy" not in names]
            if missing:
                held = [n.removesuffix(".npy") for n in names]
                raise DatasetFileError(path, f"npz lacks {missing}; it holds {held}")
            opened = {k: _open_member(zf, stack, path, k, spec) for k, spec in specs.items()}
            for first, *others in same_length:
                for other in others:
                    n, m = opened[first][2][0], opened[other][2][0]
                    if n != m:
                        raise DatasetFileError(
                            path, f"{other}.npy announces {m} rows but {first}.npy announces "
                            f"{n}; expected as many (one per sample)"
                        )
            return {k: _read_member_data(*member) for k, member in opened.items()}
    except DatasetFileError:
        raise
    except (OSError, ValueError, EOFError, RecursionError, zipfile.BadZipFile, zlib.error) as e:
        # ValueError: a malformed .npy header (RecursionError: one nested too deep to parse)
        raise DatasetFileError(path, f"cannot read as npz ({e})") from e


def _open_member(zf, stack, path, key, spec):
    """(stream past the .npy header, where, shape, fortran_order, dtype) of member `key`,
    checked against `spec` and the zip directory; no data is read yet."""
    info = zf.getinfo(f"{key}.npy")
    where = f"{path}:{info.filename}"
    _check_zip_entry(info, where, 12 + NPY_HEADER_MAX + spec.max_bytes)
    f = stack.enter_context(zf.open(info))
    shape, fortran_order, dtype = _read_npy_header(f, where)
    spec.check(where, shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    if info.file_size != f.tell() + nbytes:
        raise DatasetFileError(
            where, f"the zip directory gives {info.file_size} bytes but the .npy header "
            f"announces {f.tell()} + {nbytes} (corrupt file)"
        )
    return f, where, shape, fortran_order, dtype


def _read_member_data(f, where, shape, fortran_order, dtype):
    data = read_exactly(f, math.prod(shape) * dtype.itemsize, where)
    order = "F" if fortran_order else "C"
    array = np.frombuffer(data, dtype).reshape(shape, order=order)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _check_zip_entry(info, where, max_bytes):
    # the central directory's claims, checked before a byte is inflated
    if info.flag_bits & 0x1:
        raise DatasetFileError(where, "member is encrypted; npz members are not")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DatasetFileError(
            where, f"compression method {info.compress_type}; expected stored (0) or deflated "
            "(8), as NumPy writes"
        )
    if info.file_size > max_bytes:
        raise DatasetFileError(
            where, f"member inflates to {info.file_size} bytes; this array holds at most "
            f"{max_bytes}"
        )
    stored = info.compress_type == zipfile.ZIP_STORED
    bound = info.compress_size if stored else DEFLATE_MAX_RATIO * info.compress_size + 1024
    if info.file_size > bound:
        raise DatasetFileError(
            where, f"the zip directory claims {info.compress_size} compressed bytes inflate "
            f"to {info.file_size}, more than the method allows (corrupt or hostile file)"
        )


def _read_npy_header(f, where):
    """(shape, fortran_order, dtype) from the .npy header at the start of stream `f`.

    The header's length is read and bounded here: NumPy's reader reads all of it before
    checking its size, so a length field of 4 GiB would be inflated first.
    """
    length_bytes = {(1, 0): 2, (2, 0): 4}
    version = np.lib.format.read_magic(f)
    if version not in length_bytes:
        raise DatasetFileError(where, f".npy format version {version}; expected 1.0 or 2.0")
    raw_length = f.read(length_bytes[version])
    length = int.from_bytes(raw_length, "little")
    if length > NPY_HEADER_MAX:
        raise DatasetFileError(
            where, f".npy header of {length} bytes; NumPy writes at most {NPY_HEADER_MAX}"
        )
    header = io.BytesIO(raw_length + read_exactly(f, length, where, to_end=False))
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(header)
    return np.lib.format.read_array_header_2_0(header)


def read_tar_members(archive, names, max_member_bytes):
    """{name: bytes} for the regular files `names` of a tar archive, written nowhere.

    Every member's size is checked from its header (at most `max_member_bytes`) before it is
    read or skipped, at most TAR_MAX_MEMBERS are looked at, and the decompressed stream is
    refused past what the wanted members can total: a tar bomb is stopped, not inflated.
    """
    found = {}
    cap = len(names) * max_member_bytes + TAR_SLACK_BYTES
    try:
        with open(archive, "rb") as raw, _decompressed(raw) as plain:
            with tarfile.open(fileobj=_CappedStream(plain, cap, archive), mode="r:") as tar:
                for count, member in enumerate(tar, 1):
                    _check_tar_member(archive, member, count, max_member_bytes)
                    if member.name in names and member.name not in found:
                        where = f"{archive}:{member.name}"
                        found[member.name] = read_exactly(
                            tar.extractfile(member), member.size, where
                        )
    except DatasetFileError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
        raise DatasetFileError(
            archive, f"cannot read the archive, truncated or corrupt ({e})"
        ) from e
    missing = [n for n in names if n not in found]
    if missing:
        raise DatasetFileError(archive, f"archive lacks the regular files {missing}")
    return found


def _check_tar_member(archive, member, count, max_member_bytes):
    if count > TAR_MAX_MEMBERS:
        raise DatasetFileError(
            archive, f"archive holds more than {TAR_MAX_MEMBERS} members; expected a handful"
        )
    if member.size > max_member_bytes:
        raise DatasetFileError(
            archive, f"member {member.name} announces {member.size} bytes; members of this "
            f"archive are at most {max_member_bytes}"
        )
    if not member.isfile() and not member.isdir():
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise DatasetFileError(
            archive, f"member {member.name} is a {kind}; expected regular files only"
        )


def _decompressed(raw):
    """A context giving the decompressed stream of file `raw`, chosen by its magic bytes."""
    openers = {
        b"\x1f\x8b": lambda f: gzip.GzipFile(fileobj=f, mode="rb"),
        b"BZh": bz2.BZ2File,
        b"\xfd7zXZ\x00": lzma.LZMAFile,
    }
    magic = raw.read(6)
    raw.seek(0)
    for prefix, opener in openers.items():
        if magic.startswith(prefix):
            return opener(raw)
    return contextlib.nullcontext(raw)


class _CappedStream:
    """A read-only view of a (decompressing) stream that refuses to reach past `cap` bytes or
    to read more than TAR_MAX_READ at once, so a lying tar header cannot inflate a bomb."""

    def __init__(self, stream, cap, where):
        self._stream, self._cap, self._where = stream, cap, where

    def read(self, size=-1):
        if size is None or size < 0 or size > TAR_MAX_READ:
            raise DatasetFileError(
                self._where, f"a tar header asks for {size} bytes at once; at most "
                f"{TAR_MAX_READ} expected (corrupt or hostile archive)"
            )
        self._check(self._stream.tell() + size)
        return self._stream.read(size)

    def seek(self, offset, whence=0):
        if whence != 0:
            raise OSError(f"seek whence={whence} is not supported on an archive stream")
        self._check(offset)
        return self._stream.seek(offset)

    def tell(self):
        return self._stream.tell()

    def _check(self, end):
        if end > self._cap:
            raise DatasetFileError(
                self._where, f"archive inflates past {self._cap} bytes, more than the wanted "
                "members can total (corrupt or hostile archive)"
            )
