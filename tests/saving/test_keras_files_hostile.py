"""Malicious .keras / .weights.h5 files: each refused with a clear error, nothing executed,
imported or inflated."""

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import shenjing as sj
from shenjing.io import FileFormatError
from tests.keras_oracle import import_keras

h5py = pytest.importorskip("h5py")
keras = import_keras()
K = keras.layers


def _keras_file(tmp_path, *layers):
    model = keras.Sequential([K.Input((4,)), *(layers or [K.Dense(2)])])
    path = tmp_path / "good.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _with_config(tmp_path, edit):
    members = _keras_file(tmp_path)
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config)
    return _write(tmp_path / "bad.keras", members)


def test_lambda_bytecode_is_never_executed(tmp_path):
    marker = tmp_path / "ran"
    model = keras.Sequential([K.Input((4,)),
                              K.Lambda(lambda x, p=str(marker): (open(p, "w").close(), x)[1])])
    model.save(tmp_path / "lambda.keras")
    marker.unlink(missing_ok=True)  # Keras ran it while building its model
    with pytest.raises(FileFormatError, match="Lambda.*bytecode.*never executes"):
        sj.load_model(tmp_path / "lambda.keras")
    assert not marker.exists()


def test_class_path_to_os_system_is_refused(tmp_path):
    marker = tmp_path / "ran"

    def edit(config):
        config["config"]["layers"][1] = {"module": "os", "class_name": "system",
                                         "config": {"command": f"touch {marker}"},
                                         "registered_name": None}

    with pytest.raises(FileFormatError, match="'system' of module 'os'.*nothing is imported"):
        sj.load_model(_with_config(tmp_path, edit))
    assert not marker.exists()


def test_known_class_name_from_a_foreign_module_is_refused(tmp_path):
    def edit(config):
        config["config"]["layers"][1]["module"] = "evil.layers"

    with pytest.raises(FileFormatError, match="module 'evil.layers'"):
        sj.load_model(_with_config(tmp_path, edit))


def test_unknown_class_needs_custom_objects(tmp_path):
    def edit(config):
        config["config"]["layers"][1]["class_name"] = "MyDense"
        config["config"]["layers"][1]["registered_name"] = "Custom>MyDense"

    with pytest.raises(FileFormatError, match="no shenjing counterpart.*custom_objects"):
        sj.load_model(_with_config(tmp_path, edit))


@pytest.mark.parametrize("name", ["../x", "/etc/x", "a/../../x", "..\\x"])
def test_member_outside_the_archive_is_refused(tmp_path, name):
    members = _keras_file(tmp_path)
    members[name] = b"x"
    with pytest.raises(FileFormatError, match="outside the archive"):
        sj.load_model(_write(tmp_path / "bad.keras", members))
    assert not (tmp_path / "x").exists()


def _bomb(tmp_path, member, size):
    """A .keras whose ``member`` inflates to ``size`` zero bytes (written in chunks)."""
    members = _keras_file(tmp_path)
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            if name != member:
                archive.writestr(name, data)
        with archive.open(member, "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return path


@pytest.mark.parametrize(("member", "size", "match"), [
    ("config.json", 20 << 20, "declares .* more than"),  # past the JSON limit
    ("config.json", 4 << 20, "zip bomb"),  # under it, but inflating 1000 times
])
def test_zip_bomb_is_refused_before_it_inflates(tmp_path, member, size, match):
    path = _bomb(tmp_path, member, size)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=match):
            sj.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_dataset_far_larger_than_the_config_is_never_read(tmp_path):
    members = _keras_file(tmp_path)
    h5_path = tmp_path / "model.weights.h5"
    with h5py.File(h5_path, "w") as h5:  # 40 GB declared, nothing stored
        h5.create_dataset("layers/dense/vars/0", shape=(100_000, 100_000), dtype="float32")
        h5.create_dataset("layers/dense/vars/1", data=np.zeros(2, "float32"))
        # stored values elsewhere, so the size of the whole file does not refuse it first
        h5.create_dataset("unrelated/vars/0", data=np.zeros(64, "float32"))
    members["model.weights.h5"] = h5_path.read_bytes()
    path = _write(tmp_path / "big.keras", members)
    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match=r"shape \(4, 2\), the file holds shape "
                                                  r"\(100000, 100000\)"):
            sj.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    model = sj.Sequential([sj.layers.Input((4,)), sj.layers.Dense(2)])
    with pytest.raises(FileFormatError, match="shape"):
        model.load_weights(h5_path.rename(tmp_path / "big.weights.h5"))


@pytest.mark.parametrize("kind", ["external link", "soft link", "external storage"])
def test_links_and_external_storage_are_never_followed(tmp_path, kind):
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as h5:
        h5.create_dataset("kernel", data=np.full((4, 2), 7.0, "float32"))
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.full((4, 2), 7.0, "float32").tobytes())
    members = _keras_file(tmp_path)
    h5_path = tmp_path / "model.weights.h5"
    with h5py.File(h5_path, "w") as h5:
        group = h5.create_group("layers/dense/vars")
        if kind == "external link":
            group["0"] = h5py.ExternalLink(str(secret), "kernel")
        elif kind == "soft link":
            h5.create_dataset("elsewhere", data=np.zeros((4, 2), "float32"))
            group["0"] = h5py.SoftLink("/elsewhere")
        else:
            group.create_dataset("0", shape=(4, 2), dtype="float32", external=[(str(raw), 0, 32)])
        group.create_dataset("1", data=np.zeros(2, "float32"))
        h5.create_dataset("unrelated/vars/0", data=np.zeros(64, "float32"))
    members["model.weights.h5"] = h5_path.read_bytes()
    with pytest.raises(FileFormatError, match="not followed|never read"):
        sj.load_model(_write(tmp_path / "links.keras", members))


def test_config_implying_more_weights_than_stored_is_refused_before_allocating(tmp_path):
    def edit(config):
        config["config"]["layers"][1]["config"]["units"] = 50_000_000  # 800 MB of kernel

    tracemalloc.start()
    try:
        with pytest.raises(FileFormatError, match="more values than the file stores"):
            sj.load_model(_with_config(tmp_path, edit))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_extra_or_missing_datasets_are_refused(tmp_path):
    members = _keras_file(tmp_path)
    h5_path = tmp_path / "model.weights.h5"
    with h5py.File(h5_path, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.zeros((4, 2), "float32"))
        h5.create_dataset("unrelated/vars/0", data=np.zeros(64, "float32"))
    members["model.weights.h5"] = h5_path.read_bytes()
    with pytest.raises(FileFormatError, match="2 weight"):
        sj.load_model(_write(tmp_path / "missing.keras", members))


def test_not_a_zip_and_missing_members(tmp_path):
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(FileFormatError, match="not a Keras 3 .keras zip"):
        sj.load_model(tmp_path / "junk.keras")
    members = _keras_file(tmp_path)
    del members["model.weights.h5"]
    with pytest.raises(FileFormatError, match="no \\['model.weights.h5'\\]"):
        sj.load_model(_write(tmp_path / "nowe.keras", members))


def test_core_works_without_h5py(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    model = sj.Sequential([sj.layers.Input((3,)), sj.layers.Dense(2)])
    model.save(tmp_path / "m.shenjing")
    sj.load_model(tmp_path / "m.shenjing")
    with pytest.raises(ImportError, match=r"shenjing\[keras\]"):
        model.save(tmp_path / "m.keras")


def test_a_keras_op_node_other_than_an_embedding_mask_is_refused(tmp_path):
    x = K.Input((4,))
    model = keras.Model(x, K.Dense(2)(keras.ops.not_equal(x, 1.0)))
    model.save(tmp_path / "op.keras")
    with pytest.raises(FileFormatError, match="not the mask of an Embedding"):
        sj.load_model(tmp_path / "op.keras")
