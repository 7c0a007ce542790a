"""utils.get_file: cached, checked, extracted safely; against Keras 3's get_file on file:// URLs."""

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

import shenjing as sj
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_downloads_once_then_uses_the_cache(tmp_path):
    source = tmp_path / "data.txt"
    source.write_text("hello")
    cache = tmp_path / "cache"
    path = sj.utils.get_file(origin=source.as_uri(), cache_dir=str(cache))
    assert path == str(cache / "datasets" / "data.txt")
    assert Path(path).read_text() == "hello"
    source.write_text("changed")  # cached: not fetched again
    assert Path(sj.utils.get_file(origin=source.as_uri(), cache_dir=str(cache))).read_text() == "hello"
    again = sj.utils.get_file(origin=source.as_uri(), cache_dir=str(cache), force_download=True)
    assert Path(again).read_text() == "changed"


def test_hash_is_checked_and_a_wrong_one_leaves_nothing(tmp_path):
    source = tmp_path / "data.bin"
    source.write_bytes(b"abc" * 100)
    good = hashlib.sha256(source.read_bytes()).hexdigest()
    cache = tmp_path / "c"
    assert sj.utils.get_file("d.bin", source.as_uri(), file_hash=good, cache_dir=str(cache))
    with pytest.raises(ValueError, match="checksum mismatch"):
        sj.utils.get_file("e.bin", source.as_uri(), file_hash="0" * 64, cache_dir=str(cache))
    assert not (cache / "datasets" / "e.bin").exists()
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert sj.utils.get_file("f.bin", source.as_uri(), md5_hash=md5, cache_dir=str(cache))
    with pytest.raises(ArgumentError, match="md5"):
        sj.utils.get_file("g.bin", source.as_uri(), file_hash="0" * 32, cache_dir=str(cache))
    assert not (cache / "datasets" / "g.bin").exists()


@pytest.mark.parametrize("fname", [None, "pack.zip", "pack"])
def test_extract_paths_and_contents_equal_keras(tmp_path, fname):
    keras = import_keras()
    archive = _zip(tmp_path / "pack.zip", {"fra.txt": "Go.\tVa !\n", "sub/b.txt": "b"})
    for name in ("ours", "keras"):  # Keras falls back to /tmp/.keras for a folder not there
        (tmp_path / name).mkdir()
    ours = sj.utils.get_file(fname, archive.as_uri(), extract=True,
                             cache_dir=str(tmp_path / "ours"))
    theirs = keras.utils.get_file(fname, archive.as_uri(), extract=True,
                                  cache_dir=str(tmp_path / "keras"))
    assert os.path.relpath(ours, tmp_path / "ours") == os.path.relpath(theirs, tmp_path / "keras")
    assert Path(ours, "fra.txt").read_text() == "Go.\tVa !\n"
    assert Path(ours, "sub", "b.txt").read_text() == "b"


def test_members_outside_the_folder_are_refused(tmp_path):
    bad_zip = _zip(tmp_path / "bad.zip", {"../escape.txt": "x"})
    with pytest.raises(ArgumentError, match="outside"):
        sj.utils.get_file("bad.zip", bad_zip.as_uri(), extract=True, cache_dir=str(tmp_path / "c"))
    bad_tar = tmp_path / "bad.tar"
    with tarfile.open(bad_tar, "w") as archive:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        data = tarfile.TarInfo("ok.txt")
        data.size = 2
        archive.addfile(data, io.BytesIO(b"ok"))
    with pytest.raises(ArgumentError, match="link"):
        sj.utils.get_file("bad.tar", bad_tar.as_uri(), extract=True,
                          cache_dir=str(tmp_path / "d"))
    assert not (tmp_path / "escape.txt").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ArgumentError, match="origin"):
        sj.utils.get_file("x")
    with pytest.raises(ArgumentError, match="not a path"):
        sj.utils.get_file("a/b.txt", "file:///tmp/x", cache_dir=str(tmp_path))
    with pytest.raises(ArgumentError, match="hash_algorithm"):
        sj.utils.get_file("x", "file:///tmp/x", file_hash="0" * 64, hash_algorithm="sha1",
                          cache_dir=str(tmp_path))
