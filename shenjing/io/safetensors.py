"""The safetensors format in NumPy alone: tensors and str -> str metadata, never pickle.

Layout (https://github.com/huggingface/safetensors#format): an 8-byte little-endian u64 N, then
N bytes of UTF-8 JSON starting with '{' and padded with spaces to a multiple of 8, then the byte
buffer. The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
(offsets into the buffer, which the tensors must tile with no gap or overlap); the optional key
"__metadata__" holds a str -> str map. Tensor data is raw little-endian C-order bytes.
"""

import json
import math
import os
import stat
import struct

import numpy as np

from ..errors import ShenjingError
from .atomic import atomic_open, special_kind

MAX_HEADER_SIZE = 100_000_000  # the reference parser's limit, which stops oversized JSON
MAX_NDIM = 64  # NumPy's limit
_DTYPES = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
    "F16": np.float16, "U32": np.uint32, "I32": np.int32, "F32": np.float32,
    "U64": np.uint64, "I64": np.int64, "F64": np.float64, "C64": np.complex64,
}  # fmt: skip
_CODES = {np.dtype(t): code for code, t in _DTYPES.items()}
_NO_NUMPY_TYPE = {"F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0"}
_SIGNATURES = (
    (b"\x80", "a Python pickle (torch.save's legacy format, pickle.dump, joblib)"),
    (b"PK\x03\x04", "a zip archive (torch.save, np.savez)"),
    (b"\x93NUMPY", "a NumPy .npy file"),
)


class FileFormatError(ShenjingError, ValueError):
    """A file we refuse to load; `path`, `problem` and `field` say where and what.

    Without `field` the framing is bad: "<path>: not a valid safetensors file: <problem>." With
    `field` (e.g. "shenjing_config", "weight 'dense/kernel'") the file is valid safetensors but
    one of its entries is wrong: "<path>: <field>: <problem>."
    """

    def __init__(self, path, problem, field=None):
        self.path, self.problem, self.field = os.fspath(path), problem, field
        where = "not a valid safetensors file" if field is None else field
        super().__init__(f"{self.path}: {where}: {problem.rstrip('.')}.")


def write_safetensors(path, tensors, metadata=None):
    """Write `tensors` ({name: array}) and optional str -> str `metadata` to `path`, atomically.

    Tensors are laid out by decreasing item size, then in the given order, so each starts
    aligned to its item size, as the reference writer does. The file is written beside `path`
    and renamed over it (see atomic_open): a crash leaves the old file intact.
    Args: tensors (bool, int, uint, float16/32/64 or complex64 arrays); metadata (e.g. a JSON
    config stored as one string value).
    """
    if not isinstance(tensors, dict):
        raise TypeError(
            f"write_safetensors: tensors must be a dict, got {type(tensors).__name__}."
        )
    arrays = [_to_little_endian(name, value) for name, value in tensors.items()]
    arrays.sort(key=lambda item: -item[1].dtype.itemsize)  # stable: ties keep the given order
    header = {}
    if metadata is not None:
        header["__metadata__"] = _check_metadata_arg(metadata)
    offset = 0
    for name, array in arrays:
        end = offset + array.nbytes
        code = _CODES[array.dtype.newbyteorder("=")]
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, end]}
        offset = end
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    if len(raw) > MAX_HEADER_SIZE:
        raise ValueError(
            f"write_safetensors: header of {len(raw)} bytes exceeds the "
            f"{MAX_HEADER_SIZE}-byte limit readers enforce; store fewer tensors."
        )
    with atomic_open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for _, array in arrays:
            f.write(array.reshape(-1).view(np.uint8))  # a view, no bytes copy


def read_safetensors(path):
    """Read a safetensors file -> ({name: array}, {str: str} metadata), validating everything.

    Nothing in the file is executed: the header is JSON, the data raw bytes. Arrays come back
    writable, in native byte order, in header order; BF16 tensors are widened to float32.
    Raises FileFormatError naming the path and the problem; a pickle is refused unread.
    """
    with open_regular_file(path) as f:
        entries, metadata, start = _read_header(f, path)
        tensors = {}
        for name, code, shape, begin, end in entries:
            dtype = np.dtype("<u2" if code == "BF16" else _DTYPES[code]).newbyteorder("<")
            array = np.empty(shape, dtype)
            f.seek(start + begin)
            if f.readinto(array.reshape(-1).view(np.uint8)) != end - begin:
                raise FileFormatError(path, f"tensor {name!r} was cut short while reading")
            if code == "BF16":  # bfloat16 is the top half of a float32
                array = array.astype(np.uint32)
                array <<= 16  # in place, so a 0-d array stays an array
                array = array.view(np.float32)
            elif code == "BOOL" and array.size and array.view(np.uint8).max() > 1:
                raise FileFormatError(path, f"BOOL tensor {name!r} holds bytes other than 0 or 1")
            tensors[name] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return tensors, metadata


def read_safetensors_metadata(path):
    """Read only the header of a safetensors file -> its {str: str} metadata; data is not read.

    The whole header is validated as in read_safetensors, so a file this accepts is well formed.
    """
    with open_regular_file(path) as f:
        return _read_header(f, path)[1]


def open_regular_file(path):
    """Open `path` for reading in binary mode if it is a regular file, else FileFormatError.

    Opening a named pipe for reading blocks until a writer comes, and a device such as
    /dev/zero never ends: the file is opened non-blocking (which changes nothing for a regular
    file) and its mode checked on the open descriptor, so no race can swap the file between.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileFormatError(path, f"it is {special_kind(mode)}, not a regular file",
                                  field="path")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _to_little_endian(name, value):
    if not isinstance(name, str):
        raise TypeError(f"write_safetensors: tensor names must be str, got {name!r}.")
    if name == "__metadata__":
        raise ValueError("write_safetensors: '__metadata__' is reserved; pass metadata=.")
    array = np.asarray(value)
    if array.dtype.newbyteorder("=") not in _CODES:
        raise TypeError(
            f"write_safetensors: tensor {name!r} has dtype {array.dtype}; expected "
            "bool, (u)int8/16/32/64, float16/32/64 or complex64."
        )
    return name, np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C")


def _check_metadata_arg(metadata):
    if not isinstance(metadata, dict):
        raise TypeError(
            f"write_safetensors: metadata must be a dict of str to str, "
            f"got {type(metadata).__name__}."
        )
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(
                f"write_safetensors: metadata must map str to str (store configs as "
                f"JSON strings), got {key!r}: {type(value).__name__}."
            )
    return metadata


def _read_header(f, path):
    """Validate the framing and header -> ([(name, code, shape, begin, end)], metadata, start)."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(8)
    if len(head) < 8:
        raise FileFormatError(
            path, f"the file is {size} bytes, too short for the 8-byte header length"
        )
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_SIZE:
        _refuse(path, head, f"its header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit")
    if 8 + n > size:
        _refuse(path, head, f"its header length {n} runs past the end of the {size}-byte file")
    try:
        text = f.read(n).decode("utf-8")
    except UnicodeDecodeError as e:
        _refuse(path, head, f"the header is not UTF-8 ({e})")
    if not text.startswith("{"):
        _refuse(path, head, "the header does not start with '{'")
    try:
        header = json.loads(text, object_pairs_hook=unique_keys, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise FileFormatError(path, f"the header is not valid JSON ({e})") from None
    # A JSON null means no metadata, as in the reference parser.
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FileFormatError(path, f"__metadata__ must map str to str, got {metadata!r:.200}")
    entries = [_check_entry(path, name, info) for name, info in header.items()]
    expected = 0  # the tensors, sorted by offsets, must tile the byte buffer exactly
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != expected:
            what = "a gap before it" if begin > expected else "it overlaps the previous tensor"
            problem = f"tensor {name!r} starts at byte {begin} of the data, expected {expected}"
            raise FileFormatError(path, f"{problem} ({what})")
        expected = end
    data_size = size - 8 - n
    if expected < data_size:
        raise FileFormatError(path, f"{data_size - expected} trailing bytes after the last tensor")
    if expected > data_size:
        problem = f"the tensors need {expected} bytes of data but the file holds {data_size}"
        raise FileFormatError(path, f"{problem} (truncated?)")
    return entries, metadata, 8 + n


def _check_entry(path, name, info):
    """One header entry -> (name, code, shape, begin, end), or FileFormatError."""

    def fail(problem):
        raise FileFormatError(path, f"tensor {name!r}: {problem}")

    if not isinstance(info, dict):
        fail(f"expected an object with dtype, shape and data_offsets, got {info!r:.100}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            fail(f"missing field {field!r}")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if isinstance(code, str) and code in _NO_NUMPY_TYPE:
        fail(f"dtype {code} is valid safetensors but has no NumPy equivalent")
    if not isinstance(code, str) or code != "BF16" and code not in _DTYPES:
        fail(f"unknown dtype {code!r}; expected one of {', '.join(['BF16', *_DTYPES])}")
    if not _is_int_list(shape) or len(shape) > MAX_NDIM:
        fail(f"shape must be a list of at most {MAX_NDIM} non-negative ints, got {shape!r:.100}")
    if not _is_int_list(offsets) or len(offsets) != 2 or offsets[0] > offsets[1]:
        fail(f"data_offsets must be [begin, end] with 0 <= begin <= end, got {offsets!r:.100}")
    nbytes = math.prod(shape) * (2 if code == "BF16" else np.dtype(_DTYPES[code]).itemsize)
    if offsets[1] - offsets[0] != nbytes:
        fail(
            f"data_offsets {offsets} span {offsets[1] - offsets[0]} bytes but dtype {code} and "
            f"shape {shape} need {nbytes}"
        )
    return name, code, tuple(shape), offsets[0], offsets[1]


def _is_int_list(value):
    return isinstance(value, list) and all(type(v) is int and v >= 0 for v in value)


def unique_keys(pairs):
    """json object_pairs_hook that refuses duplicate keys (json.loads would keep the last)."""
    result = dict(pairs)
    if len(result) != len(pairs):  # the safetensors spec forbids duplicates
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"duplicate key {duplicate!r}")
    return result


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


def _refuse(path, head, problem):
    """Framing failed: name the format the file looks like, if any, then raise."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            problem += f"; it looks like {kind}, which shenjing never loads"
    raise FileFormatError(path, problem)
