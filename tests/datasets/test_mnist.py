import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import shenjing.datasets
from shenjing.datasets import _files, mnist
from shenjing.datasets._files import DatasetFileError
from tests.datasets.helpers import digits_like, idx_bytes, write_idx, write_idx_set

SHIPPED = Path(shenjing.datasets.__file__).parent / "data" / "mnist_5k.npz"


def _shipped():
    with np.load(SHIPPED, allow_pickle=False) as f:
        return f["x"], f["y"]


# --- the 5,000 real digits shipped with the package -------------------------------------------


def test_shipped_file_is_small_and_balanced():
    assert SHIPPED.stat().st_size < 2_000_000
    x, y = _shipped()
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8
    assert y.shape == (5000,) and y.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 500))


def test_load_subset_is_a_stratified_partition():
    (x_tr, y_tr), (x_te, y_te) = mnist.load_subset()
    assert x_tr.shape == (4000, 28, 28) and x_te.shape == (1000, 28, 28)
    assert x_tr.dtype == x_te.dtype == y_tr.dtype == y_te.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_te, minlength=10), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(y_tr, minlength=10), np.full(10, 400))
    # train + test is exactly the shipped set, each (image, label) pair used once
    x, y = _shipped()

    def rows(x, y):
        return sorted(img.tobytes() + bytes([lab]) for img, lab in zip(x, y, strict=True))

    assert rows(np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])) == rows(x, y)
    # both parts come shuffled, not grouped by class like the file
    assert np.any(np.diff(y_tr.astype(int)) < 0) and np.any(np.diff(y_te.astype(int)) < 0)


def test_load_subset_is_deterministic_per_seed():
    (a, ya), (b, yb) = mnist.load_subset(seed=3)
    (c, yc), (d, yd) = mnist.load_subset(seed=3)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(ya, yc)
    np.testing.assert_array_equal(yb, yd)
    (_, _), (e, ye) = mnist.load_subset(seed=4)
    assert not np.array_equal(b, e)
    np.testing.assert_array_equal(np.bincount(ye, minlength=10), np.full(10, 100))


def test_load_subset_uneven_n_test_uses_largest_remainder():
    (_, y_tr), (_, y_te) = mnist.load_subset(n_test=37)
    counts = np.bincount(y_te, minlength=10)
    # 3.7 per class: every class gets floor = 3, seven of them one more
    assert counts.sum() == 37 and sorted(counts.tolist()) == [3] * 3 + [4] * 7
    np.testing.assert_array_equal(np.bincount(y_tr, minlength=10) + counts, np.full(10, 500))


def test_subset_images_look_like_digits():
    (x_tr, y_tr), (x_te, y_te) = mnist.load_subset()
    x = np.concatenate([x_tr, x_te]).astype(np.float64)
    # MNIST statistics: mean grey level ~33 of 255, ~19% of pixels lit, empty borders
    assert 25 < x.mean() < 45
    assert 0.1 < (x > 0).mean() < 0.3
    assert x.max() == 255 and x.min() == 0
    assert x[:, :2, :].mean() < 1 and x[:, :, :2].mean() < 1
    # a nearest-class-mean classifier must beat 75% on the held-out digits
    flat_tr, flat_te = x_tr.reshape(len(x_tr), -1) / 255.0, x_te.reshape(len(x_te), -1) / 255.0
    means = np.stack([flat_tr[y_tr == c].mean(axis=0) for c in range(10)])
    d2 = (flat_te**2).sum(1)[:, None] - 2 * flat_te @ means.T + (means**2).sum(1)[None, :]
    accuracy = (d2.argmin(axis=1) == y_te).mean()
    assert accuracy > 0.75, accuracy


@pytest.mark.parametrize(
    "n_test, error, match",
    [(0, ValueError, "n_test must be in 1..4999, got 0"), (5000, ValueError, "got 5000"),
     (0.2, TypeError, "n_test must be an int, got float")],
)  # fmt: skip
def test_load_subset_errors(n_test, error, match):
    with pytest.raises(error, match=match):
        mnist.load_subset(n_test=n_test)


# --- reading the standard files -------------------------------------------------------------


def _tiny_npz(path, rng, n_train=7, n_test=3):
    x_train, y_train = digits_like(rng, n_train)
    x_test, y_test = digits_like(rng, n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return (x_train, y_train), (x_test, y_test)


def _assert_same(got, want):
    for g, w in zip((*got[0], *got[1]), (*want[0], *want[1]), strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_load_data_from_npz_file_and_folder(tmp_path, rng):
    want = _tiny_npz(tmp_path / "mnist.npz", rng)
    _assert_same(mnist.load_data(tmp_path / "mnist.npz"), want)
    _assert_same(mnist.load_data(str(tmp_path)), want)


@pytest.mark.parametrize("gz", [True, False])
def test_load_data_from_idx_folder(tmp_path, rng, gz):
    x_train, y_train = digits_like(rng, 6)
    x_test, y_test = digits_like(rng, 4)
    files = [f if gz else f.removesuffix(".gz") for f in mnist.IDX_FILES]
    write_idx_set(tmp_path, files, x_train, y_train, x_test, y_test)
    _assert_same(mnist.load_data(tmp_path), ((x_train, y_train), (x_test, y_test)))


def test_idx_reader_checks_magic_sizes_and_gzip(tmp_path, rng):
    x, _ = digits_like(rng, 3)
    good = idx_bytes(x)
    (tmp_path / "bad_magic.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + good[4:]))
    with pytest.raises(ValueError, match="expected IDX magic number 2051, got 2049"):
        _files.read_idx(tmp_path / "bad_magic.gz", 3, max_items=10)
    (tmp_path / "short.gz").write_bytes(gzip.compress(good[:-5]))
    with pytest.raises(DatasetFileError, match=r"short.gz: header announces 2352 data .*2347"):
        _files.read_idx(tmp_path / "short.gz", 3, max_items=10)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(ValueError, match="cannot read the file, truncated or corrupt"):
        _files.read_idx(tmp_path / "cut.gz", 3, max_items=10)
    (tmp_path / "header.gz").write_bytes(gzip.compress(good[:9]))
    with pytest.raises(ValueError, match="truncated IDX header"):
        _files.read_idx(tmp_path / "header.gz", 3, max_items=10)
    ok = write_idx(tmp_path / "ok.gz", x)
    np.testing.assert_array_equal(_files.read_idx(ok, 3, max_items=10), x)


def test_idx_set_errors(tmp_path, rng):
    x, y = digits_like(rng, 5)
    write_idx_set(tmp_path, mnist.IDX_FILES, x, y[:4], x, y)
    with pytest.raises(DatasetFileError, match=r"labels-idx1-ubyte.gz: header announces 4 train "
                       r"labels but train-images-idx3-ubyte.gz announces 5 train images"):
        mnist.load_data(tmp_path)
    (tmp_path / mnist.IDX_FILES[3]).unlink()
    with pytest.raises(FileNotFoundError, match="missing t10k-labels-idx1-ubyte.gz"):
        mnist.load_data(tmp_path)
    write_idx_set(tmp_path, mnist.IDX_FILES, x[:, :27], y, x, y)
    with pytest.raises(DatasetFileError, match=r"ubyte.gz: .*\(5, 27, 28\); expected \(N, 28, 28"):
        mnist.load_data(tmp_path)


def test_load_data_path_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="no file or folder at"):
        mnist.load_data(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="holds neither mnist.npz nor the IDX files"):
        mnist.load_data(tmp_path)
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"npz lacks \['y_train', 'x_test', 'y_test'\]"):
        mnist.load_data(tmp_path / "partial.npz")
    objects = np.empty(2, dtype=object)
    np.savez(tmp_path / "pickled.npz", x_train=objects, y_train=objects, x_test=objects,
             y_test=objects)  # fmt: skip
    with pytest.raises(ValueError, match="allow_pickle"):
        mnist.load_data(tmp_path / "pickled.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="cannot read as npz"):
        mnist.load_data(tmp_path / "junk.npz")
    np.savez(tmp_path / "flat.npz", x_train=np.zeros((2, 784), np.uint8),
             y_train=np.zeros(2, np.uint8), x_test=np.zeros((1, 28, 28), np.uint8),
             y_test=np.zeros(1, np.uint8))  # fmt: skip
    with pytest.raises(DatasetFileError, match=r"flat.npz:x_train.npy: .*\(2, 784\).*\(N, 28, 28"):
        mnist.load_data(tmp_path / "flat.npz")


# --- cache folder and download -------------------------------------------------------------


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("SHENJING_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _files.cache_dir("mnist") == tmp_path / ".shenjing" / "datasets" / "mnist"
    monkeypatch.setenv("SHENJING_HOME", str(tmp_path / "elsewhere"))
    assert _files.cache_dir("mnist") == tmp_path / "elsewhere" / "datasets" / "mnist"


def test_download_once_then_cache(server, home, rng, monkeypatch):
    want = _tiny_npz(server.files / "mnist.npz", rng)
    digest = hashlib.sha256((server.files / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setitem(mnist.SHA256, "mnist.npz", digest)
    _assert_same(mnist.load_data(origin=server.url), want)
    assert server.hits == ["/files/mnist.npz"]
    assert sorted(p.name for p in (home / "datasets" / "mnist").iterdir()) == ["mnist.npz"]
    # second call: served from the cache, the server is not asked again
    _assert_same(mnist.load_data(origin=server.url), want)
    assert server.hits == ["/files/mnist.npz"]


def test_download_origin_from_module_attribute(server, rng, monkeypatch):
    want = _tiny_npz(server.files / "mnist.npz", rng)
    digest = hashlib.sha256((server.files / "mnist.npz").read_bytes()).hexdigest()
    monkeypatch.setitem(mnist.SHA256, "mnist.npz", digest)
    monkeypatch.setattr(mnist, "ORIGIN", server.url)
    _assert_same(mnist.load_data(), want)
    assert server.hits == ["/files/mnist.npz"]


def test_wrong_checksum_raises_and_leaves_nothing(server, home, rng, monkeypatch):
    _tiny_npz(server.files / "mnist.npz", rng)
    monkeypatch.setitem(mnist.SHA256, "mnist.npz", "0" * 64)
    with pytest.raises(ValueError, match="checksum mismatch.*expected sha256 0{64}, got"):
        mnist.load_data(origin=server.url)
    assert list((home / "datasets" / "mnist").iterdir()) == []


def test_unknown_checksum_warns_and_keeps_file(server, home, rng, monkeypatch):
    want = _tiny_npz(server.files / "mnist.npz", rng)
    monkeypatch.setitem(mnist.SHA256, "mnist.npz", None)
    with pytest.warns(UserWarning, match="no known SHA-256 digest for mnist.npz; skipping"):
        _assert_same(mnist.load_data(origin=server.url), want)
    assert (home / "datasets" / "mnist" / "mnist.npz").is_file()


def test_download_failure_is_clear_and_leaves_nothing(server, home):
    with pytest.raises(OSError, match="could not download .*mnist.npz.*pass path="):
        mnist.load_data(origin=server.url)  # the server has no such file: 404
    assert list((home / "datasets" / "mnist").iterdir()) == []


def test_cut_transfer_is_clear_and_leaves_nothing(server, tmp_path):
    url = server.url.replace("/files/", "/short/") + "mnist.npz"
    with pytest.raises(OSError, match="could not download .*/short/mnist.npz"):
        _files.download(url, tmp_path / "dl" / "mnist.npz", sha256=None)
    assert list((tmp_path / "dl").iterdir()) == []


def test_cached_idx_files_are_used_without_download(home, rng):
    x, y = digits_like(rng, 4)
    write_idx_set(home / "datasets" / "mnist", mnist.IDX_FILES, x, y, x[:2], y[:2])
    _assert_same(mnist.load_data(origin="http://127.0.0.1:9/never/"), ((x, y), (x[:2], y[:2])))


def test_real_digests_are_sha256_hex():
    from shenjing.datasets import cifar10, fashion_mnist

    for table in (mnist.SHA256, fashion_mnist.SHA256, cifar10.SHA256):
        for digest in table.values():
            assert len(digest) == 64 and int(digest, 16) >= 0
    assert set(fashion_mnist.SHA256) == set(fashion_mnist.FILES)


def test_import_is_light():
    code = (
        "import sys, shenjing.datasets, shenjing.data; "
        "heavy = {'torch', 'scipy', 'pandas', 'matplotlib', 'keras', 'tensorflow', 'PIL'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    assert out.stdout.strip() == "[]"
