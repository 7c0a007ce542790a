import hashlib

import numpy as np
import pytest

from shenjing.datasets import fashion_mnist
from tests.datasets.helpers import digits_like, write_idx_set


def _tiny_set(folder, rng):
    x_train, y_train = digits_like(rng, 6)
    x_test, y_test = digits_like(rng, 3)
    write_idx_set(folder, fashion_mnist.FILES, x_train, y_train, x_test, y_test)
    return (x_train, y_train), (x_test, y_test)


def _assert_same(got, want):
    for g, w in zip((*got[0], *got[1]), (*want[0], *want[1]), strict=True):
        assert g.dtype == np.uint8 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_load_data_from_folder(tmp_path, rng):
    want = _tiny_set(tmp_path, rng)
    _assert_same(fashion_mnist.load_data(tmp_path), want)
    assert len(fashion_mnist.CLASS_NAMES) == 10


def test_path_must_be_a_folder(tmp_path, rng):
    _tiny_set(tmp_path, rng)
    with pytest.raises(FileNotFoundError, match="path must be a folder holding"):
        fashion_mnist.load_data(tmp_path / fashion_mnist.FILES[0])


def _serve(server, rng, monkeypatch):
    want = _tiny_set(server.files, rng)
    for name in fashion_mnist.FILES:
        digest = hashlib.sha256((server.files / name).read_bytes()).hexdigest()
        monkeypatch.setitem(fashion_mnist.SHA256, name, digest)
    return want


def test_download_once_then_cache(server, home, rng, monkeypatch):
    want = _serve(server, rng, monkeypatch)
    _assert_same(fashion_mnist.load_data(origin=server.url), want)
    assert sorted(server.hits) == sorted(f"/files/{f}" for f in fashion_mnist.FILES)
    cached = home / "datasets" / "fashion_mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(fashion_mnist.FILES)
    _assert_same(fashion_mnist.load_data(origin=server.url), want)
    assert len(server.hits) == 4
    # a lost file is fetched alone
    (cached / fashion_mnist.FILES[2]).unlink()
    _assert_same(fashion_mnist.load_data(origin=server.url), want)
    assert server.hits[4:] == [f"/files/{fashion_mnist.FILES[2]}"]


def test_wrong_checksum_raises_and_leaves_nothing(server, home, rng, monkeypatch):
    _serve(server, rng, monkeypatch)
    monkeypatch.setitem(fashion_mnist.SHA256, fashion_mnist.FILES[1], "f" * 64)
    with pytest.raises(ValueError, match="checksum mismatch for .*train-labels-idx1-ubyte.gz"):
        fashion_mnist.load_data(origin=server.url)
    # the first file was good and stays; the bad one and its temporary file are gone
    left = [p.name for p in (home / "datasets" / "fashion_mnist").iterdir()]
    assert left == [fashion_mnist.FILES[0]]
