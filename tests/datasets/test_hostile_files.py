"""Crafted dataset files (issue 12, items 4 and 5): each is refused with a DatasetFileError naming
the file, having allocated at most a few MB although it announces up to a tebibyte.

The files are written with struct, gzip, zlib, zipfile, tarfile and NumPy's own .npy header
writer, independently of shenjing's readers.
"""

import gzip
import io
import struct
import tarfile
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest

from shenjing.datasets import cifar10, fashion_mnist, mnist
from shenjing.datasets._files import DatasetFileError
from tests.datasets.helpers import (
    cifar_bytes,
    digits_like,
    idx_bytes,
    write_idx,
    write_idx_set,
)

PEAK_LIMIT = 4 << 20  # bytes any refusal below may allocate; the files announce far more
TIB = 1 << 40


def _refused(call, names, match):
    """Run `call` under tracemalloc: it must raise DatasetFileError naming `names` (the file's
    name) and matching `match`, with a peak allocation under PEAK_LIMIT."""
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFileError, match=match) as info:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert names in str(info.value) and isinstance(info.value, ValueError)
    assert peak < PEAK_LIMIT, f"peak allocation {peak} bytes"
    return info.value


# --- npz: .npy headers and zip directories that lie -----------------------------------------


def _npy(shape, descr, data=b"", version=(1, 0)):
    """A .npy member: NumPy's own header writer, then `data` (may disagree with the header)."""
    out = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(out, header)
    else:
        np.lib.format.write_array_header_2_0(out, header)
    return out.getvalue() + data


def _good_members(rng):
    (x_train, y_train), (x_test, y_test) = digits_like(rng, 4), digits_like(rng, 2)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return {f"{k}.npy": _npy(v.shape, v.dtype.str, v.tobytes()) for k, v in arrays.items()}


def _zip(path, members, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _patch_directory(path, name, **fields):
    """Overwrite compress_size / file_size of `name` in the zip's central directory (and, for
    file_size, its local header), as a hostile writer would."""
    data = bytearray(path.read_bytes())
    offsets = {"compress_size": 20, "file_size": 24}
    entry = data.index(b"PK\x01\x02")  # the first central entry, then walk to `name`
    while data[entry + 46 : entry + 46 + len(name)] != name.encode():
        entry = data.index(b"PK\x01\x02", entry + 4)
    for field, value in fields.items():
        struct.pack_into("<I", data, entry + offsets[field], value)
        if field == "file_size":
            local = struct.unpack_from("<I", data, entry + 42)[0]
            struct.pack_into("<I", data, local + 22, value)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "member, shape, descr",
    [("x_train.npy", (TIB // 784 + 1, 28, 28), "|u1"),  # 1 TiB of images
     ("y_test.npy", (TIB // 8,), "<i8"),  # 1 TiB of labels
     ("x_test.npy", (10_000, 28, 28), "<u8")],  # the right shape, 8 bytes a pixel
)  # fmt: skip
def test_npz_header_claiming_too_much_is_refused_unread(tmp_path, rng, member, shape, descr):
    members = _good_members(rng)
    members[member] = _npy(shape, descr, b"\x00" * 64)
    path = _zip(tmp_path / "mnist.npz", members)
    err = _refused(lambda: mnist.load_data(path), f"mnist.npz:{member}", r"array of shape")
    assert str(shape) in str(err) and "expected (N," in str(err)


def test_npy_header_length_of_4_gib_is_refused_unread(tmp_path, rng):
    members = _good_members(rng)
    members["x_train.npy"] = b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{" * 100
    path = _zip(tmp_path / "mnist.npz", members)
    _refused(lambda: mnist.load_data(path), "mnist.npz:x_train.npy", r"header of 4294967295 b")


def test_npz_pickled_member_is_refused(tmp_path, rng):
    members = _good_members(rng)
    members["y_train.npy"] = _npy((4,), "|O", b"\x80\x04N.")  # a pickle where labels should be
    path = _zip(tmp_path / "mnist.npz", members)
    _refused(lambda: mnist.load_data(path), "mnist.npz:y_train.npy", "allow_pickle")


# --- zip directories that lie about sizes, and a zip bomb -----------------------------------


def test_zip_member_with_lying_sizes_is_refused_before_inflating(tmp_path, rng):
    members = _good_members(rng)
    # 60,000 blank images: a valid header, 47 MB that deflate to ~46 KB
    members["x_train.npy"] = _npy((60_000, 28, 28), "|u1", bytes(60_000 * 784))
    y = np.zeros(60_000, np.uint8)
    members["y_train.npy"] = _npy(y.shape, y.dtype.str, y.tobytes())
    good = _zip(tmp_path / "good.npz", members).read_bytes()
    cases = {
        # the directory says 100 kB where the header announces 47 MB
        "small.npz": {"file_size": 100_000},
        # the directory says 4 GiB, more than any MNIST member can be
        "huge.npz": {"file_size": 2**32 - 1},
        # 10 compressed bytes cannot deflate to 47 MB
        "ratio.npz": {"compress_size": 10},
    }
    messages = ("but the .npy header announces", "array holds at most", "more than the method")
    for (name, fields), message in zip(cases.items(), messages, strict=True):
        (tmp_path / name).write_bytes(good)
        path = _patch_directory(tmp_path / name, "x_train.npy", **fields)
        _refused(lambda p=path: mnist.load_data(p), f"{name}:x_train.npy", message)


def test_zip_bomb_member_stops_at_its_announced_size(tmp_path, rng):
    members = _good_members(rng)
    x = members["x_train.npy"]  # 4 images; the stream then inflates 16 MiB more
    members["x_train.npy"] = x + bytes(16 << 20)
    path = _patch_directory(_zip(tmp_path / "bomb.npz", members), "x_train.npy", file_size=len(x))
    _refused(lambda: mnist.load_data(path), "bomb.npz", "Bad CRC-32")


def test_npz_with_unusual_compression_is_refused(tmp_path, rng):
    path = _zip(tmp_path / "mnist.npz", _good_members(rng), zipfile.ZIP_BZIP2)
    _refused(lambda: mnist.load_data(path), "mnist.npz:x_train.npy", "compression method 12")


# --- IDX headers with huge dimensions, and a gzip bomb --------------------------------------


def _gzip_bomb(head, inflated):
    """gzip of `head` followed by `inflated` zero bytes, compressed by 1 MiB pieces (also a
    valid IDX file of blank images when `inflated` is what `head` announces)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    out = [packer.compress(head)]
    zeros = bytes(1 << 20)
    for _ in range(inflated >> 20):
        out.append(packer.compress(zeros))
    out.append(packer.compress(zeros[: inflated & ((1 << 20) - 1)]))
    return b"".join(out) + packer.flush()


@pytest.mark.parametrize(
    "index, ndim, dims",
    [(0, 3, (2**32 - 1,) * 3),  # product 2**96: overflows int64, as np.prod would
     (0, 3, (2**32 - 1, 28, 28)),  # the right image size, 4 billion images
     (0, 3, (1, 2**16, 2**16)),  # one image of 4 GiB
     (1, 1, (2**32 - 1,))],  # 4 billion labels
)  # fmt: skip
def test_idx_header_with_huge_dimensions_is_refused_unread(tmp_path, rng, index, ndim, dims):
    x, y = digits_like(rng, 3)
    write_idx_set(tmp_path, mnist.IDX_FILES, x, y, x, y)
    header = bytes([0, 0, 0x08, ndim]) + struct.pack(f">{ndim}I", *dims)
    name = mnist.IDX_FILES[index]
    (tmp_path / name).write_bytes(_gzip_bomb(header, 16 << 20))  # 16 MiB follow the header
    err = _refused(lambda: mnist.load_data(tmp_path), name, "IDX header announces shape")
    assert str(dims) in str(err)


@pytest.mark.parametrize("loader", [mnist, fashion_mnist])
def test_idx_gzip_bomb_stops_one_byte_past_the_header_size(tmp_path, rng, loader):
    x, y = digits_like(rng, 3)
    files = loader.IDX_FILES if loader is mnist else loader.FILES
    write_idx_set(tmp_path, files, x, y, x[:2], y[:2])
    bomb = _gzip_bomb(idx_bytes(x[:2]), 64 << 20)  # 2 images announced, 64 MiB more inflate
    assert len(bomb) < 100_000
    (tmp_path / files[2]).write_bytes(bomb)
    _refused(lambda: loader.load_data(tmp_path), files[2], "holds more than the 1568 data bytes")


# --- sample counts: each file at most its split's size in the release ------------------------
# MNIST and Fashion-MNIST hold 60,000 train and 10,000 test samples; a file may hold fewer (a
# subset), never more, so a header can make the reader allocate no more than the release costs.


@pytest.mark.parametrize(
    "member, shape",
    [("x_train.npy", (1_000_000, 28, 28)),  # the tester's 764 KB file: 790 MB RSS before
     ("x_train.npy", (60_001, 28, 28)), ("y_train.npy", (60_001,)),
     ("x_test.npy", (10_001, 28, 28)), ("y_test.npy", (10_001,))],
)  # fmt: skip
def test_npz_member_over_its_split_size_is_refused_unread(tmp_path, rng, member, shape):
    members = _good_members(rng)
    members[member] = _npy(shape, "|u1", b"\x00" * 64)
    path = _zip(tmp_path / "mnist.npz", members)
    limit = 60_000 if "train" in member else 10_000
    err = _refused(lambda: mnist.load_data(path), f"mnist.npz:{member}", r"array of shape")
    assert str(shape) in str(err) and f"N <= {limit}" in str(err)


def test_files_of_exactly_the_release_sizes_load(tmp_path):
    x_train, x_test = np.zeros((60_000, 28, 28), np.uint8), np.zeros((10_000, 28, 28), np.uint8)
    y_train, y_test = np.zeros(60_000, np.uint8), np.ones(10_000, np.uint8)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    folder = tmp_path / "idx"
    folder.mkdir()
    splits = ((*mnist.IDX_FILES[:2], x_train, y_train), (*mnist.IDX_FILES[2:], x_test, y_test))
    for images, labels, x, y in splits:
        header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *x.shape)
        (folder / images).write_bytes(_gzip_bomb(header, x.size))  # blank images
        write_idx(folder / labels, y)
    for source in (path, folder):
        (xa, ya), (xb, yb) = mnist.load_data(source)
        assert xa.shape == x_train.shape and ya.shape == y_train.shape
        assert xb.shape == x_test.shape and yb.tolist() == y_test.tolist()


@pytest.mark.parametrize(
    "index, dims",
    [(0, (1_000_000, 28, 28)), (0, (900_000, 28, 28)), (0, (60_001, 28, 28)),
     (1, (60_001,)), (2, (10_001, 28, 28)), (3, (10_001,))],
)  # fmt: skip
@pytest.mark.parametrize("loader", [mnist, fashion_mnist])
def test_idx_file_over_its_split_size_is_refused_unread(tmp_path, rng, loader, index, dims):
    x, y = digits_like(rng, 3)
    files = loader.IDX_FILES if loader is mnist else loader.FILES
    write_idx_set(tmp_path, files, x, y, x, y)
    header = bytes([0, 0, 0x08, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)
    (tmp_path / files[index]).write_bytes(_gzip_bomb(header, 16 << 20))
    limit = 60_000 if index < 2 else 10_000
    err = _refused(lambda: loader.load_data(tmp_path), files[index], "IDX header announces")
    assert str(dims) in str(err) and f"at most {limit} items" in str(err)


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_counts_are_compared_before_any_body_is_inflated(tmp_path, split):
    # images and labels both within their split's size, but 20 labels against all the images:
    # every header is read before a body, so not even the other split's images are inflated
    # (fashion_mnist reads its files through the same _files.read_idx_set)
    loader, files = mnist, mnist.IDX_FILES
    n_train, n_test = (60_000, 3) if split == "train" else (60_000, 10_000)
    for name, n in ((files[0], n_train), (files[2], n_test)):
        header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", n, 28, 28)
        (tmp_path / name).write_bytes(_gzip_bomb(header, n * 784))
    labels = {"train": 20 if split == "train" else n_train, "test": 20}
    for name, n in ((files[1], labels["train"]), (files[3], labels["test"])):
        write_idx(tmp_path / name, np.zeros(n, np.uint8))
    bad = files[1] if split == "train" else files[3]
    images = files[0] if split == "train" else files[2]
    err = _refused(lambda: loader.load_data(tmp_path), bad, f"announces 20 {split} labels")
    n_images = n_train if split == "train" else n_test
    assert f"{images} announces {n_images} {split} images" in str(err)


@pytest.mark.parametrize("split", ["train", "test"])
def test_npz_counts_are_compared_before_any_member_is_read(tmp_path, rng, split):
    members = _good_members(rng)
    members["x_train.npy"] = _npy((60_000, 28, 28), "|u1", bytes(60_000 * 784))
    y = np.zeros(60_000 if split == "test" else 20, np.uint8)
    members["y_train.npy"] = _npy(y.shape, y.dtype.str, y.tobytes())
    if split == "test":
        members["x_test.npy"] = _npy((10_000, 28, 28), "|u1", bytes(10_000 * 784))
        members["y_test.npy"] = _npy((20,), "|u1", bytes(20))
    path = _zip(tmp_path / "mnist.npz", members)
    n = 60_000 if split == "train" else 10_000
    message = f"y_{split}.npy announces 20 rows but x_{split}.npy announces {n}"
    _refused(lambda: mnist.load_data(path), "mnist.npz", message)


# --- CIFAR-10 tar archives: huge members, bombs, links ---------------------------------------


def _cifar_members(rng):
    members = {}
    for name in (*cifar10.TRAIN_FILES, cifar10.TEST_FILE):
        x = rng.integers(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
        members[f"{cifar10.FOLDER}/{name}"] = cifar_bytes(x, [3])
    return members


def _tar_gz(path, entries):
    """A .tar.gz of `entries`: (TarInfo, bytes or None); a TarInfo's size may exceed its data,
    as a hostile header's would, so the blocks are written by hand after tobuf()."""
    raw = io.BytesIO()
    for info, data in entries:
        raw.write(info.tobuf(tarfile.GNU_FORMAT))
        if data:
            raw.write(data + bytes(-len(data) % tarfile.BLOCKSIZE))
    raw.write(bytes(2 * tarfile.BLOCKSIZE))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


def _file(name, data, size=None):
    info = tarfile.TarInfo(name)
    info.size = len(data) if size is None else size
    return info, data


def test_tar_member_announcing_a_tebibyte_is_refused_unread(tmp_path, rng):
    entries = [_file(n, d) for n, d in _cifar_members(rng).items()]
    entries.insert(2, _file("readme.html", bytes(100), size=TIB))
    path = _tar_gz(tmp_path / cifar10.ARCHIVE, entries)
    _refused(lambda: cifar10.load_data(path), cifar10.ARCHIVE, "readme.html announces 10995")


def test_tar_bomb_is_refused_past_what_the_batches_can_total(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(cifar10, "MAX_BATCH_BYTES", 1 << 20)  # cap: 6 batches + 1 MiB = 7 MiB
    pads = [_file(f"pad/{i}", bytes(1 << 20)) for i in range(8)]  # 8 MiB of zeros first
    entries = pads + [_file(n, d) for n, d in _cifar_members(rng).items()]
    path = _tar_gz(tmp_path / cifar10.ARCHIVE, entries)
    assert path.stat().st_size < 100_000
    _refused(lambda: cifar10.load_data(path), cifar10.ARCHIVE, "inflates past 7340032 bytes")


def test_tar_header_asking_for_a_huge_read_is_refused(tmp_path, rng):
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 1 << 30  # tarfile reads a pax header whole
    entries = [(pax, bytes(100))] + [_file(n, d) for n, d in _cifar_members(rng).items()]
    path = _tar_gz(tmp_path / cifar10.ARCHIVE, entries)
    _refused(lambda: cifar10.load_data(path), cifar10.ARCHIVE, "asks for 1073741824 bytes")


def test_tar_with_too_many_members_is_refused(tmp_path, rng):
    entries = [_file(f"junk/{i}", b"x") for i in range(100)]
    entries += [_file(n, d) for n, d in _cifar_members(rng).items()]
    path = _tar_gz(tmp_path / cifar10.ARCHIVE, entries)
    _refused(lambda: cifar10.load_data(path), cifar10.ARCHIVE, "more than 64 members")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_are_refused_and_nothing_is_written(tmp_path, rng, kind):
    work = tmp_path / "work"
    work.mkdir()
    link = tarfile.TarInfo(f"{cifar10.FOLDER}/{cifar10.TRAIN_FILES[0]}")
    link.type, link.linkname = kind, "/etc/passwd"
    members = _cifar_members(rng)
    del members[link.name]
    entries = [(link, None)] + [_file(n, d) for n, d in members.items()]
    path = _tar_gz(work / cifar10.ARCHIVE, entries)
    before = sorted(tmp_path.rglob("*"))
    _refused(lambda: cifar10.load_data(path), cifar10.ARCHIVE, "data_batch_1.bin is a")
    assert sorted(tmp_path.rglob("*")) == before


def test_cifar_batch_file_over_its_size_is_refused_unread(tmp_path, rng):
    members = _cifar_members(rng)
    for name, data in members.items():
        (tmp_path / name.split("/")[-1]).write_bytes(data)
    with open(tmp_path / cifar10.TEST_FILE, "r+b") as f:
        f.truncate(cifar10.MAX_BATCH_BYTES + cifar10._files.CIFAR_RECORD_BYTES)  # sparse
    _refused(lambda: cifar10.load_data(tmp_path), cifar10.TEST_FILE, "more than the 30730000")


# --- labels outside 0..9 --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [10, 255])
@pytest.mark.parametrize("loader", [mnist, fashion_mnist])
def test_idx_labels_outside_0_to_9_are_refused(tmp_path, rng, loader, bad):
    x, y = digits_like(rng, 5)
    y_bad = y.copy()
    y_bad[3] = bad
    files = loader.IDX_FILES if loader is mnist else loader.FILES
    write_idx_set(tmp_path, files, x, y, x, y_bad)
    _refused(lambda: loader.load_data(tmp_path), files[3], f"label {bad} is outside 0..9")


@pytest.mark.parametrize("bad, dtype", [(10, "|u1"), (255, "|u1"), (-1, "<i8")])
def test_npz_labels_outside_0_to_9_are_refused(tmp_path, rng, bad, dtype):
    members = _good_members(rng)
    labels = np.array([1, 2, bad, 3], dtype=np.dtype(dtype))
    members["y_train.npy"] = _npy(labels.shape, dtype, labels.tobytes())
    path = _zip(tmp_path / "mnist.npz", members)
    _refused(lambda: mnist.load_data(path), "mnist.npz:y_train", f"label {bad} is outside 0..9")
