"""save / save_weights refuse file names of other formats (Keras's .keras, .h5) and write ours."""

import os
import stat

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError


def small_model():
    return sj.Sequential([layers.Input((3,)), layers.Dense(2)])


@pytest.mark.parametrize(("name", "weights_only", "hint"), [
    ("model.h5", False, "legacy HDF5"), ("model.hdf5", False, "legacy HDF5"),
    ("model.weights.h5", False, "holds weights only"), ("model.h5", True, "legacy HDF5"),
    ("model.hdf5", True, "legacy HDF5"), ("model.keras", True, "a whole model"),
])
def test_keras_extensions_of_the_other_kind_are_refused_and_nothing_is_written(
        tmp_path, name, weights_only, hint):
    """.keras is Keras's model file, .weights.h5 its weights file (saving/keras_archive.py);
    the legacy whole-model .h5 is not written, and neither name fits the other method."""
    model = small_model()
    save, caller = ((model.save_weights, "save_weights") if weights_only
                    else (model.save, "save_model"))
    with pytest.raises(ArgumentError) as info:
        save(tmp_path / name)
    message = str(info.value)
    assert message.startswith(f"{caller}: invalid filepath extension")
    assert "`.safetensors` or `.shenjing`" in message and hint in message
    assert message.endswith(f"Received: filepath={tmp_path / name}")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["model", "model.bin", "model.safetensors.tmp"])
def test_other_extensions_are_refused_too(tmp_path, name):
    with pytest.raises(ArgumentError, match=r"save_model: invalid filepath extension.*"
                                            r"Received: filepath=.*" + name.replace(".", r"\.")):
        small_model().save(tmp_path / name)
    assert os.listdir(tmp_path) == []


def test_a_non_path_is_a_type_error():
    with pytest.raises(ArgumentTypeError, match="save_weights: filepath must be a str or "
                                                "os.PathLike, got int"):
        small_model().save_weights(3)


@pytest.mark.parametrize("name", ["m.safetensors", "m.shenjing", "m.weights.safetensors",
                                  "M.SAFETENSORS"])
def test_our_extensions_round_trip(tmp_path, name):
    model = small_model()
    model.save(tmp_path / name)
    loaded = sj.load_model(tmp_path / name)
    for ours, theirs in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(ours, theirs)  # a copy of the same bytes


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_saving_to_a_symlink_writes_its_target(tmp_path):
    model = small_model()
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "v1.safetensors"
    small_model().save(target)
    (tmp_path / "latest.safetensors").symlink_to(target)
    model.save(tmp_path / "latest.safetensors")
    assert (tmp_path / "latest.safetensors").is_symlink()
    for ours, saved in zip(model.get_weights(), sj.load_model(target).get_weights()):
        np.testing.assert_array_equal(ours, saved)
    assert sorted(os.listdir(tmp_path / "store")) == ["v1.safetensors"]


# A name of ours that is not a regular file is refused before any work, and left as it was.


def _refused(save, caller, path, *fragments):
    before = sorted(os.listdir(os.path.dirname(os.path.realpath(path))))
    with pytest.raises(ArgumentError) as info:
        save(path)
    message = str(info.value)
    assert message.startswith(f"{caller}: ") and message.endswith(f"Received: filepath={path}")
    for fragment in fragments:
        assert fragment in message, message
    assert sorted(os.listdir(os.path.dirname(os.path.realpath(path)))) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
@pytest.mark.parametrize("weights_only", [False, True])
def test_a_symlink_to_a_fifo_is_refused_not_replaced(tmp_path, weights_only):
    model = small_model()
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "l.safetensors").symlink_to(tmp_path / "pipe")
    save, caller = ((model.save_weights, "save_weights") if weights_only
                    else (model.save, "save_model"))
    _refused(save, caller, tmp_path / "l.safetensors", "is a FIFO", "regular files only")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)


def test_a_symlink_to_a_character_device_is_refused_not_replaced(tmp_path):
    node = tmp_path / "null"
    try:  # /dev/null's numbers, made in tmp_path: the real one is never touched
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (AttributeError, OSError) as error:
        pytest.skip(f"mknod is not allowed here: {error}")
    (tmp_path / "l.safetensors").symlink_to(node)
    _refused(small_model().save, "save_model", tmp_path / "l.safetensors",
             "is a character device", f"resolves to {node}")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_a_directory_is_refused(tmp_path):
    (tmp_path / "m.safetensors").mkdir()
    _refused(small_model().save, "save_model", tmp_path / "m.safetensors", "is a directory")
    assert os.listdir(tmp_path / "m.safetensors") == []


def test_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a.safetensors").symlink_to(tmp_path / "b.safetensors")
    (tmp_path / "b.safetensors").symlink_to(tmp_path / "a.safetensors")
    _refused(small_model().save_weights, "save_weights", tmp_path / "a.safetensors",
             "symlink loop")


def test_a_nul_byte_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match=r"save_model: the path holds a NUL byte.*"
                                            r"filepath='.*m\\x00\.safetensors'"):
        small_model().save(str(tmp_path / "m\0.safetensors"))
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_named(tmp_path):
    path = tmp_path / "missing" / "m.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        small_model().save(path)
    assert f"cannot write {str(path)!r}: its folder {str(tmp_path / 'missing')!r} does not " \
           "exist" in str(info.value)
    assert os.listdir(tmp_path) == []
