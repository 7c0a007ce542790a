"""safetensors files: the exact byte layout, refusal of bad files and pickles, and interop with
the reference `safetensors` package (tests that need it skip without it)."""

import json
import os
import pickle
import shlex
import struct

import numpy as np
import pytest

import shenjing
from shenjing.io import (
    FileFormatError,
    read_safetensors,
    read_safetensors_metadata,
    write_safetensors,
)

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32",
          "uint64", "int64", "float64", "complex64"]  # fmt: skip
SHAPES = [(), (0,), (2, 0, 3), (5,), (3, 4), (2, 3, 4)]


def random_array(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype == bool:
        values = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
    elif dtype.kind == "c":
        values = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    else:
        values = rng.standard_normal(shape)
    return np.asarray(values, dtype=dtype)  # an array even for shape ()


def build(header, data=b"", n=None):
    """A file by hand: header (dict, or raw bytes kept as is) padded to 8 bytes, then data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if n is None else n) + raw + data


def entry(dtype="F32", shape=(1,), offsets=(0, 4)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


# ----------------------------------------------------------------------------- exact layout


def test_layout_matches_the_spec_byte_for_byte(tmp_path):
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    bias = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    config = json.dumps({"class_name": "Dense", "units": 3})
    path = tmp_path / "m.safetensors"
    write_safetensors(
        path, {"dense/kernel": kernel, "dense/bias": bias}, {"shenjing_config": config}
    )

    header = json.dumps(
        {"__metadata__": {"shenjing_config": config},
         "dense/kernel": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
         "dense/bias": {"dtype": "F32", "shape": [3], "data_offsets": [24, 36]}},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    header += b" " * (-len(header) % 8)
    expected = struct.pack("<Q", len(header)) + header + kernel.tobytes() + bias.tobytes()
    assert path.read_bytes() == expected


def test_reference_implementation_byte_vectors(tmp_path):
    # Byte strings from the reference Rust crate's own serialization tests.
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {})
    assert path.read_bytes() == bytes([8, 0, 0, 0, 0, 0, 0, 0]) + b"{}      "
    write_safetensors(path, {}, {"framework": "pt"})
    assert path.read_bytes() == bytes([40, 0, 0, 0, 0, 0, 0, 0]) + (
        b'{"__metadata__":{"framework":"pt"}}     '
    )
    write_safetensors(path, {"attn.0": np.arange(6, dtype=np.float32).reshape(1, 2, 3)})
    assert path.read_bytes() == (
        bytes([64, 0, 0, 0, 0, 0, 0, 0])
        + b'{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'
        + bytes(
            [0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64]
        )
    )


def test_mixed_dtypes_are_aligned_and_tile_the_buffer(tmp_path, rng):
    tensors = {
        "flags": random_array(rng, "uint8", (3,)),
        "w": random_array(rng, "float64", (2,)),
        "half": random_array(rng, "float16", (3,)),
        "step": random_array(rng, "int32", ()),
        "v": random_array(rng, "float64", (1,)),
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert n % 8 == 0 and list(header) == ["w", "v", "step", "half", "flags"]
    end = 0
    for name, info in header.items():
        begin, stop = info["data_offsets"]
        assert begin == end and (8 + n + begin) % tensors[name].itemsize == 0
        assert raw[8 + n + begin : 8 + n + stop] == tensors[name].tobytes()
        end = stop
    assert 8 + n + end == len(raw)
    loaded, _ = read_safetensors(path)
    for name, array in tensors.items():
        np.testing.assert_array_equal(loaded[name], array)


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype_and_shape(tmp_path, rng, dtype):
    tensors = {
        f"t{i}/{'x' * i}": random_array(rng, dtype, shape) for i, shape in enumerate(SHAPES)
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors)
    loaded, metadata = read_safetensors(path)
    assert metadata == {} and list(loaded) == list(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)


def test_strided_big_endian_and_tensor_inputs(tmp_path, rng):
    base = rng.standard_normal((4, 6))
    tensors = {"transposed": base.T, "sliced": base[::2, 1::3], "big": base.astype(">f4"),
               "tensor": shenjing.Tensor(base)}  # fmt: skip
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors)
    loaded, _ = read_safetensors(path)
    np.testing.assert_array_equal(loaded["transposed"], base.T)
    np.testing.assert_array_equal(loaded["sliced"], base[::2, 1::3])
    np.testing.assert_array_equal(loaded["tensor"], base)
    assert loaded["big"].dtype == np.float32 and loaded["big"].dtype.isnative
    np.testing.assert_array_equal(loaded["big"], base.astype(np.float32))
    assert base.astype("<f4").tobytes() in path.read_bytes()  # stored little-endian


def test_returned_arrays_are_writable_copies(tmp_path, rng):
    w = rng.standard_normal((3, 3))
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"w": w})
    loaded, _ = read_safetensors(path)
    assert loaded["w"].flags.writeable and loaded["w"].flags.c_contiguous
    loaded["w"][...] = 0.0
    np.testing.assert_array_equal(read_safetensors(path)[0]["w"], w)


def test_metadata_round_trip_and_header_only_read(tmp_path):
    config = {"name": "模型", "layers": [{"class_name": "Dense", "units": 4}], "lr": 0.001}
    metadata = {"shenjing_config": json.dumps(config, ensure_ascii=False), "format": "np"}
    path = tmp_path / "t.safetensors"
    write_safetensors(path, {"w": np.ones(3)}, metadata)
    assert read_safetensors(path)[1] == metadata
    assert read_safetensors_metadata(path) == metadata
    assert json.loads(read_safetensors_metadata(path)["shenjing_config"]) == config
    write_safetensors(path, {"w": np.ones(3)})
    assert read_safetensors_metadata(path) == {}


def test_bfloat16_is_widened_to_float32(tmp_path, rng):
    # bfloat16 keeps a float32's top 16 bits, so these float32 values are exact in bfloat16.
    values = (rng.standard_normal(7).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(
        np.float32
    )
    data = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    path = tmp_path / "t.safetensors"
    header = {"w": entry("BF16", (2, 3), (0, 12)), "s": entry("BF16", (), (12, 14))}
    path.write_bytes(build(header, data))
    loaded, _ = read_safetensors(path)
    assert loaded["w"].dtype == np.float32 and isinstance(loaded["s"], np.ndarray)
    np.testing.assert_array_equal(loaded["w"], values[:6].reshape(2, 3))
    np.testing.assert_array_equal(loaded["s"], values[6])
    assert loaded["s"].shape == ()


# ----------------------------------------------------------------------------- write errors


WRITE_ERRORS = [
    ("list", [("w", np.ones(2))], None, TypeError, "tensors must be a dict, got list"),
    ("int-name", {1: np.ones(2)}, None, TypeError, "tensor names must be str, got 1"),
    ("reserved", {"__metadata__": np.ones(2)}, None, ValueError, "'__metadata__' is reserved"),
    ("object", {"w": np.array([{}], dtype=object)}, None, TypeError, "'w' has dtype object"),
    ("unicode", {"w": np.array(["a"])}, None, TypeError, "'w' has dtype <U1"),
    ("datetime", {"w": np.zeros(2, "datetime64[s]")}, None, TypeError, "has dtype datetime64"),
    ("meta-list", {}, [("a", "b")], TypeError, "metadata must be a dict of str to str"),
    ("meta-int", {}, {"units": 3}, TypeError, "must map str to str .* 'units': int"),
    ("meta-int-key", {}, {1: "a"}, TypeError, "must map str to str"),
]


@pytest.mark.parametrize(
    "_, tensors, metadata, error, match", WRITE_ERRORS, ids=[c[0] for c in WRITE_ERRORS]
)
def test_write_errors_leave_the_old_file_alone(tmp_path, _, tensors, metadata, error, match):
    path = tmp_path / "t.safetensors"
    with pytest.raises(error, match=match):
        write_safetensors(path, tensors, metadata)
    assert not path.exists()
    write_safetensors(path, {"old": np.arange(3)})
    before = path.read_bytes()
    with pytest.raises(error, match=match):
        write_safetensors(path, tensors, metadata)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["t.safetensors"]


# ----------------------------------------------------------------------------- bad files

F32 = b"\x00\x00\x80\x3f"  # 1.0f
# (name, file bytes, expected message, whether the reference parser refuses it too)
BAD_FILES = [
    ("empty", b"", "0 bytes, too short for the 8-byte header length", True),
    ("seven-bytes", b"\x01" * 7, "7 bytes, too short", True),
    ("header-past-end", build({"a": entry()}, F32, n=4096), "4096 runs past the end", True),
    ("header-too-large", build({}, n=100_000_001), "exceeds the 100000000-byte limit", True),
    ("not-utf8", build(b'{"a\xff":1}'), "header is not UTF-8", True),
    (
        "leading-space",
        build(b' {"a":' + json.dumps(entry()).encode() + b"}", F32),
        "does not start with '{'",
        False,
    ),  # the spec says it MUST; the reference parser 0.8 doesn't
    ("json-array", build(b"[]"), "does not start with '{'", True),
    ("truncated-json", build(b'{"a":'), "not valid JSON", True),
    ("nan", build(b'{"__metadata__":{"a":NaN}}'), "not valid JSON .*NaN", True),
    (
        "deep-nesting",
        build(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        "not valid JSON",
        True,
    ),
    (
        "duplicate-tensor",
        build(b'{"a":%s,"a":%s}' % ((json.dumps(entry()).encode(),) * 2), F32),
        "duplicate key 'a'",
        False,
    ),  # the spec forbids it; the reference parser keeps one
    (
        "duplicate-field",
        build(b'{"a":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}', F32),
        "duplicate key 'shape'",
        True,
    ),
    ("entry-not-object", build({"a": [1]}), "tensor 'a': expected an object", True),
    (
        "missing-field",
        build({"a": {"dtype": "F32", "shape": [1]}}, F32),
        "tensor 'a': missing field 'data_offsets'",
        True,
    ),
    ("unknown-dtype", build({"a": entry("F128")}, F32), "unknown dtype 'F128'", True),
    ("dtype-int", build({"a": entry(7)}, F32), "unknown dtype 7", True),
    ("dtype-list", build({"a": entry(["F32"])}, F32), r"unknown dtype \['F32'\]", True),
    ("fp8", build({"a": entry("F8_E4M3", (4,))}, F32), "F8_E4M3 is valid .* no NumPy", False),
    ("shape-negative", build({"a": entry(shape=(-1,))}, F32), "shape must be a list", True),
    ("shape-float", build({"a": entry(shape=(1.0,))}, F32), "shape must be a list", True),
    ("shape-bool", build({"a": entry(shape=(True,))}, F32), "shape must be a list", True),
    ("shape-not-list", build({"a": {**entry(), "shape": 1}}, F32), "shape must be a list", True),
    ("shape-65-dims", build({"a": entry(shape=(1,) * 65)}, F32), "at most 64", True),
    ("offsets-three", build({"a": entry(offsets=(0, 4, 8))}, F32), "data_offsets must be", True),
    (
        "offsets-reversed",
        build({"a": entry(shape=(0,), offsets=(4, 0))}, F32),
        "data_offsets must be",
        True,
    ),
    ("offsets-negative", build({"a": entry(offsets=(-4, 0))}, F32), "data_offsets must be", True),
    (
        "size-mismatch",
        build({"a": entry(shape=(2,), offsets=(0, 4))}, F32),
        r"span 4 bytes but dtype F32 and shape \[2\] need 8",
        True,
    ),
    (
        "gap",
        build({"a": entry(), "b": entry(offsets=(8, 12))}, F32 * 3),
        "'b' starts at byte 8 of the data, expected 4 .a gap",
        True,
    ),
    (
        "overlap",
        build({"a": entry(shape=(2,), offsets=(0, 8)), "b": entry(offsets=(4, 8))}, F32 * 2),
        "'b' starts at byte 4 .* overlaps",
        True,
    ),
    ("not-from-zero", build({"a": entry(offsets=(4, 8))}, F32 * 2), "'a' starts at byte 4", True),
    ("trailing-bytes", build({"a": entry()}, F32 + b"\x00"), "1 trailing bytes", True),
    (
        "truncated-data",
        build({"a": entry(shape=(2,), offsets=(0, 8))}, F32),
        "need 8 bytes of data but the file holds 4",
        True,
    ),
    ("metadata-list", build({"__metadata__": ["a"]}), "__metadata__ must map str to str", True),
    ("metadata-int", build({"__metadata__": {"units": 3}}), "must map str to str", True),
    (
        "bool-byte-2",
        build({"a": entry("BOOL", (2,), (0, 2))}, b"\x01\x02"),
        "bytes other than 0 or 1",
        False,
    ),  # NumPy bools must be 0 or 1
]


@pytest.mark.parametrize("name, data, match, _", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_files_are_refused_with_a_clear_message(tmp_path, name, data, match, _):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(data)
    with pytest.raises(FileFormatError, match=match) as info:
        read_safetensors(path)
    assert isinstance(info.value, ValueError) and info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: not a valid safetensors file: ")
    if name != "bool-byte-2":  # the only check that needs the data
        with pytest.raises(FileFormatError, match=match):
            read_safetensors_metadata(path)


def test_edge_cases_the_spec_allows(tmp_path):
    # Out-of-order offsets, zero-size tensors sharing an offset, null metadata, extra fields.
    a, b = entry("U8", (2,), (2, 4)), entry("U8", (2,), (0, 2))
    header = {"__metadata__": None, "a": {**a, "note": "ignored"}, "b": b,
              "e": entry("F64", (0, 3), (4, 4)), "f": entry("I8", (0,), (4, 4))}  # fmt: skip
    path = tmp_path / "t.safetensors"
    path.write_bytes(build(header, b"\x01\x02\x03\x04"))
    loaded, metadata = read_safetensors(path)
    assert metadata == {} and list(loaded) == ["a", "b", "e", "f"]
    np.testing.assert_array_equal(loaded["a"], [3, 4])
    np.testing.assert_array_equal(loaded["b"], [1, 2])
    assert loaded["e"].shape == (0, 3) and loaded["e"].dtype == np.float64


# ----------------------------------------------------------------------------- pickles


class Payload:
    """Unpickling this runs `command` on the shell: the attack a pickle loader is open to."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.skipif(os.name != "posix", reason="the payload uses the POSIX shell")
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_pickle_is_refused_and_never_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(f"touch {shlex.quote(str(marker))}"), protocol=protocol)
    pickle.loads(payload)  # the payload is live: loading it with pickle runs the command
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "model.safetensors"
    path.write_bytes(payload)
    match = "not a valid safetensors file" + (".*looks like a Python pickle" if protocol else "")
    for read in (read_safetensors, read_safetensors_metadata):
        with pytest.raises(FileFormatError, match=match):
            read(path)
    assert not marker.exists()


def test_numpy_and_torch_files_are_refused(tmp_path):
    npy = tmp_path / "a.npy"
    np.save(npy, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="looks like a NumPy .npy file"):
        read_safetensors(npy)
    npz = tmp_path / "a.npz"
    np.savez(npz, w=np.ones(3))
    with pytest.raises(FileFormatError, match="looks like a zip archive"):
        read_safetensors(npz)
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(3)}, tmp_path / "a.pt")
    with pytest.raises(FileFormatError, match="looks like a zip archive .torch.save"):
        read_safetensors(tmp_path / "a.pt")
    torch.save({"w": torch.ones(3)}, tmp_path / "b.pt", _use_new_zipfile_serialization=False)
    with pytest.raises(FileFormatError, match="looks like a Python pickle"):
        read_safetensors(tmp_path / "b.pt")


# ----------------------------------------------------------------------------- interop


@pytest.fixture
def st():
    return pytest.importorskip("safetensors")


def test_reference_package_reads_our_files(tmp_path, rng, st):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    tensors = {f"layer{i}/{dtype}": random_array(rng, dtype, SHAPES[i % len(SHAPES)])
               for i, dtype in enumerate(DTYPES)}  # fmt: skip
    metadata = {"shenjing_config": json.dumps({"units": [3, 4], "name": "模型"}), "x": ""}
    path = tmp_path / "ours.safetensors"
    write_safetensors(path, tensors, metadata)
    loaded = load_file(path)
    assert sorted(loaded) == sorted(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)
    with safe_open(path, framework="np") as f:
        assert f.metadata() == metadata


def test_we_read_the_reference_package_files(tmp_path, rng, st):
    from safetensors.numpy import save_file

    tensors = {f"layer{i}.{dtype}": random_array(rng, dtype, SHAPES[i % len(SHAPES)])
               for i, dtype in enumerate(DTYPES)}  # fmt: skip
    metadata = {"format": "np", "shenjing_config": '{"units": 3}'}
    path = tmp_path / "theirs.safetensors"
    save_file(tensors, path, metadata=metadata)
    loaded, loaded_metadata = read_safetensors(path)
    assert loaded_metadata == metadata and read_safetensors_metadata(path) == metadata
    assert sorted(loaded) == sorted(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)


def test_same_bytes_as_the_reference_writer(tmp_path, rng, st):
    # It orders by decreasing alignment then name; give ours that order and the files match.
    from safetensors.numpy import save_file

    tensors = {"a/kernel": random_array(rng, "float64", (3, 2)),
               "b/bias": random_array(rng, "float64", (2,)),
               "c/k": random_array(rng, "float32", (2, 2)),
               "d/flag": random_array(rng, "bool", (3,))}  # fmt: skip
    metadata = {"shenjing_config": json.dumps({"name": "模型"}, ensure_ascii=False)}
    save_file(tensors, tmp_path / "theirs", metadata=metadata)
    write_safetensors(tmp_path / "ours", tensors, metadata)
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "theirs").read_bytes()


def test_bfloat16_from_torch_via_the_reference_package(tmp_path, st):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    w = torch.randn(4, 5, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    save_file({"w": w, "b": torch.arange(3, dtype=torch.int64)}, tmp_path / "t.safetensors")
    loaded, _ = read_safetensors(tmp_path / "t.safetensors")
    assert loaded["w"].dtype == np.float32
    np.testing.assert_array_equal(loaded["w"], w.float().numpy())
    np.testing.assert_array_equal(loaded["b"], [0, 1, 2])


@pytest.mark.parametrize(
    "name, data", [(c[0], c[1]) for c in BAD_FILES if c[3]], ids=[c[0] for c in BAD_FILES if c[3]]
)
def test_reference_package_also_refuses_the_bad_files(tmp_path, st, name, data):
    # Our checks are not invented: the reference parser refuses these same files.
    from safetensors.numpy import load_file

    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(data)
    with pytest.raises((st.SafetensorError, ValueError)):  # ValueError: NumPy's 64-dim limit
        load_file(path)


@pytest.mark.parametrize("reader", [read_safetensors, read_safetensors_metadata])
def test_named_pipe_and_directory_are_refused_without_blocking(tmp_path, reader):
    pipe = tmp_path / "pipe.safetensors"
    os.mkfifo(pipe)  # opening it for reading would wait for a writer
    for path, kind in ((pipe, "named pipe"), (tmp_path, "directory")):
        with pytest.raises(FileFormatError, match=kind) as info:
            reader(path)
        assert str(path) in str(info.value)


def test_file_format_error_wording_with_and_without_a_field():
    framing = FileFormatError("m.safetensors", "the header is not UTF-8")
    assert str(framing) == "m.safetensors: not a valid safetensors file: the header is not UTF-8."
    entry = FileFormatError("m.safetensors", "'loss' must be a non-empty list",
                            field="compile_config")
    assert str(entry) == "m.safetensors: compile_config: 'loss' must be a non-empty list."
    assert entry.field == "compile_config" and isinstance(entry, ValueError)
