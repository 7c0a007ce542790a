"""Tiny dataset files written with struct/gzip/tarfile, independently of shenjing's readers."""

import gzip
import io
import struct
import tarfile

import numpy as np


def idx_bytes(array):
    """IDX layout: 0, 0, 0x08 (ubyte), ndim; big-endian uint32 sizes; row-major bytes."""
    array = np.asarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path, array):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_set(folder, files, x_train, y_train, x_test, y_test):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(files, (x_train, y_train, x_test, y_test), strict=True):
        write_idx(folder / name, array)
    return folder


def cifar_bytes(x, y):
    """CIFAR-10 binary records: one label byte, then the R, G, B planes of 32x32 each."""
    out = bytearray()
    for image, label in zip(x, np.ravel(y), strict=True):
        out.append(int(label))
        for channel in range(3):
            out += bytes(int(v) for v in image[:, :, channel].ravel())
    return bytes(out)


def tar_gz(path, members):
    """Write a .tar.gz holding `members`: {name: bytes} for files, {name: ("link", target)}."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def digits_like(rng, n, shape=(28, 28), classes=10):
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = rng.integers(0, classes, size=n, dtype=np.uint8)
    return x, y
