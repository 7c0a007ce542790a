import hashlib

import numpy as np
import pytest

from shenjing.datasets import cifar10
from shenjing.datasets._files import DatasetFileError
from tests.datasets.helpers import cifar_bytes, tar_gz

NAMES = (*cifar10.TRAIN_FILES, cifar10.TEST_FILE)


def _batches(rng, n=2):
    """{file name: (x (n, 32, 32, 3), y (n,))} for the five train batches and the test batch."""
    out = {}
    for name in NAMES:
        x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        out[name] = x, rng.integers(0, 10, size=n, dtype=np.uint8)
    return out


def _want(batches):
    train = [batches[n] for n in cifar10.TRAIN_FILES]
    x_test, y_test = batches[cifar10.TEST_FILE]
    return (
        (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])[:, None]),
        (x_test, y_test[:, None]),
    )


def _assert_same(got, want):
    for g, w in zip((*got[0], *got[1]), (*want[0], *want[1]), strict=True):
        assert g.dtype == np.uint8 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def _write_bins(folder, batches):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in batches.items():
        (folder / name).write_bytes(cifar_bytes(x, y))


def _archive(path, batches, extra=None):
    members = {f"{cifar10.FOLDER}/{n}": cifar_bytes(x, y) for n, (x, y) in batches.items()}
    return tar_gz(path, {**(extra or {}), **members})


def test_record_layout_is_chw_converted_to_hwc(tmp_path):
    x = np.zeros((1, 32, 32, 3), np.uint8)
    x[0, 1, 2] = (10, 20, 30)  # row 1, column 2: red 10, green 20, blue 30
    record = cifar_bytes(x, [7])
    assert record[0] == 7 and record[1 + 34] == 10 and record[1 + 1024 + 34] == 20
    assert record[1 + 2048 + 34] == 30
    batches = {n: (x, np.array([7], np.uint8)) for n in NAMES}
    _write_bins(tmp_path, batches)
    (x_train, y_train), (x_test, y_test) = cifar10.load_data(tmp_path)
    assert x_train.shape == (5, 32, 32, 3) and y_train.shape == (5, 1) and y_test.shape == (1, 1)
    assert tuple(x_test[0, 1, 2]) == (10, 20, 30) and x_test.sum() == 60


@pytest.mark.parametrize("layout", ["bins", "subfolder", "archive_in_folder", "archive_file"])
def test_load_data_layouts(tmp_path, rng, layout):
    batches = _batches(rng)
    if layout == "bins":
        _write_bins(tmp_path, batches)
        path = tmp_path
    elif layout == "subfolder":
        _write_bins(tmp_path / cifar10.FOLDER, batches)
        path = tmp_path
    else:
        archive = _archive(tmp_path / cifar10.ARCHIVE, batches)
        path = tmp_path if layout == "archive_in_folder" else archive
    _assert_same(cifar10.load_data(path), _want(batches))


def test_corrupt_batches(tmp_path, rng):
    batches = _batches(rng)
    _write_bins(tmp_path, batches)
    data = (tmp_path / "data_batch_3.bin").read_bytes()
    (tmp_path / "data_batch_3.bin").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="data_batch_3.bin: 6145 bytes is not a whole number"):
        cifar10.load_data(tmp_path)
    (tmp_path / "data_batch_3.bin").write_bytes(bytes([12]) + data[1:])
    with pytest.raises(ValueError, match="label 12 is outside 0..9"):
        cifar10.load_data(tmp_path)
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match="holds neither the batches"):
        cifar10.load_data(tmp_path)
    (tmp_path / "cut.tar.gz").write_bytes(
        _archive(tmp_path / "a.tar.gz", batches).read_bytes()[:900]
    )
    with pytest.raises(ValueError, match="cannot read the archive, truncated or corrupt"):
        cifar10.load_data(tmp_path / "cut.tar.gz")


def test_hostile_archive_writes_nothing(tmp_path, rng):
    batches = _batches(rng)
    work = tmp_path / "work"
    work.mkdir()
    extra = {
        "../escape.bin": b"x" * 10,
        "/tmp/absolute.bin": b"x" * 10,
        f"{cifar10.FOLDER}/../../up.bin": b"x" * 10,
    }
    archive = _archive(work / cifar10.ARCHIVE, batches, extra)
    before = sorted(p for p in tmp_path.rglob("*"))
    _assert_same(cifar10.load_data(archive), _want(batches))
    assert sorted(p for p in tmp_path.rglob("*")) == before
    # an archive whose batch is only a link is refused, naming the archive and the member
    only_link = {f"{cifar10.FOLDER}/{n}": cifar_bytes(*batches[n]) for n in NAMES[1:]}
    only_link[f"{cifar10.FOLDER}/{NAMES[0]}"] = ("link", "/etc/passwd")
    tar_gz(work / "links.tar.gz", only_link)
    with pytest.raises(DatasetFileError, match=r"links.tar.gz: member .*_1.bin is a link"):
        cifar10.load_data(work / "links.tar.gz")
    # an archive missing a batch names it
    del only_link[f"{cifar10.FOLDER}/{NAMES[0]}"]
    tar_gz(work / "lacking.tar.gz", only_link)
    with pytest.raises(DatasetFileError, match=r"lacking.tar.gz: .*lacks the regular files"):
        cifar10.load_data(work / "lacking.tar.gz")


def test_download_once_then_cache(server, home, rng, monkeypatch):
    batches = _batches(rng)
    archive = _archive(server.files / cifar10.ARCHIVE, batches)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(cifar10.SHA256, cifar10.ARCHIVE, digest)
    _assert_same(cifar10.load_data(origin=server.url), _want(batches))
    assert server.hits == [f"/files/{cifar10.ARCHIVE}"]
    cached = home / "datasets" / "cifar10"
    assert [p.name for p in cached.iterdir()] == [cifar10.ARCHIVE]
    _assert_same(cifar10.load_data(origin=server.url), _want(batches))
    assert len(server.hits) == 1


def test_wrong_checksum_raises_and_leaves_nothing(server, home, rng, monkeypatch):
    _archive(server.files / cifar10.ARCHIVE, _batches(rng))
    with pytest.raises(ValueError, match="checksum mismatch .*expected sha256 c4a38c50"):
        cifar10.load_data(origin=server.url)  # the real digest cannot match the tiny archive
    assert list((home / "datasets" / "cifar10").iterdir()) == []
