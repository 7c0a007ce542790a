"""Keras 3's ``.keras`` files (a zip of ``metadata.json``, ``config.json`` and
``model.weights.h5``) and ``.weights.h5`` files, read and written.

The zip is untrusted: a member is read only if it is one of the three expected names (a
name with ``..``, an absolute path or a backslash is refused outright), its declared size is
bounded (JSON 16 MiB, weights 4 GiB) as is its compression ratio, and reading stops at the
declared size, so a zip bomb is refused before it inflates. The config is read as data
(keras_config), the weights by the paths the rebuilt model names (keras_weights).
"""

import datetime
import json
import os
import zipfile

from .. import __version__
from ..io import FileFormatError
from ..io.atomic import atomic_open
from ..io.safetensors import open_regular_file
from ..layers.base import weights_provided_by
from . import keras_weights, validate
from .keras_config import from_keras, to_keras
from .registry import deserialize_layer, rebuilding

MEMBERS = ("metadata.json", "config.json", "model.weights.h5")
MAX_JSON_BYTES = 16 << 20
MAX_WEIGHTS_BYTES = 4 << 30
MAX_RATIO = 200  # inflated / compressed; Keras stores its members uncompressed
KERAS_VERSION = "3.0.0"  # the oldest Keras 3 that reads what we write


def is_keras_path(path) -> bool:
    return os.fspath(path).lower().endswith(".keras")


def is_h5_path(path) -> bool:
    return os.fspath(path).lower().endswith((".h5", ".hdf5"))


# ----- reading -----------------------------------------------------------------------------
def read_archive(path):
    """{member name: bytes} for the three members of a .keras zip, every one bounded."""
    with open_regular_file(path) as f:
        try:
            archive = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError) as error:
            raise FileFormatError(path, f"not a Keras 3 .keras zip ({error})",
                                  field="archive") from None
        with archive:
            return _read_members(archive, path)


def _read_members(archive, path):
    infos = {}
    for info in archive.infolist():
        name = info.filename
        if (name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/")
                or "\\" in name or ":" in name):
            raise FileFormatError(path, f"member {name!r:.100} points outside the archive",
                                  field="archive")
        if name in MEMBERS:
            if name in infos:
                raise FileFormatError(path, f"member {name!r} appears twice",
                                      field="archive")
            infos[name] = info
    missing = [m for m in ("config.json", "model.weights.h5") if m not in infos]
    if missing:
        raise FileFormatError(path, f"the archive has no {missing}; is it a Keras 3 "
                              "file?", field="archive")
    return {name: _read_member(archive, info, path) for name, info in infos.items()}


def _read_member(archive, info, path):
    limit = MAX_WEIGHTS_BYTES if info.filename.endswith(".h5") else MAX_JSON_BYTES
    field = f"member {info.filename!r}"
    if info.file_size > limit:
        raise FileFormatError(path, f"declares {info.file_size} bytes, more than the {limit} "
                              "accepted", field=field)
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(
            info.compress_size, 1) + 4096:
        raise FileFormatError(path, f"inflates {info.file_size} bytes from "
                              f"{info.compress_size} (more than {MAX_RATIO} times): a zip "
                              "bomb?", field=field)
    chunks, total = [], 0
    with archive.open(info) as member:  # stops at the declared size, checks the CRC
        while chunk := member.read(1 << 20):
            total += len(chunk)
            if total > info.file_size:
                raise FileFormatError(path, "inflates past its declared size", field=field)
            chunks.append(chunk)
    return b"".join(chunks)


def load_keras_model(path, custom_objects=None, check_values=True):
    """A shenjing model rebuilt from a Keras 3 ``.keras`` file."""
    from ..models import Model

    members = read_archive(path)
    config = _parse(members["config.json"], path, "config.json")
    if "metadata.json" in members:
        _parse(members["metadata.json"], path, "metadata.json")
    h5file = keras_weights.open_h5(members["model.weights.h5"], path, "load_model")
    with h5file:
        source = keras_weights.BudgetWeights(keras_weights.stored_elements(h5file), path)
        with rebuilding(path, "config.json"):
            ours = from_keras(config, custom_objects or {})
            with weights_provided_by(source):
                model = deserialize_layer(ours, custom_objects or {})
        if not isinstance(model, Model) or not model.built:
            raise FileFormatError(path, "the config describes no built model (a Sequential or "
                                  "functional model with an input shape)", field="config.json")
        validate.check_sample_sizes(model, path)
        pairs = keras_weights.read_groups(h5file, keras_weights.keras_groups(model), path,
                                          check_values)
    for variable, value in pairs:
        variable.assign(value)
    return model


def _parse(data, path, member):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileFormatError(path, "not UTF-8 text", field=member) from None
    return validate.parse_json({member: text}, member, path)


def load_keras_weights(model, path, skip_mismatch=False, check_values=True):
    """``model.load_weights`` of a ``.weights.h5`` file (or of a ``.keras`` file's weights)."""
    if not getattr(model, "built", False):
        raise FileFormatError(path, f"model '{model.name}' is not built yet; call it on data "
                              "or give it an Input first", field="load_weights")
    if is_keras_path(path) or not is_h5_path(path):
        source = read_archive(path)["model.weights.h5"]
        keras_weights.load_h5_weights(model, source, path, check_values, skip_mismatch)
        return
    with open_regular_file(path) as f:
        if f.read(8) != b"\x89HDF\r\n\x1a\n":
            raise FileFormatError(path, "not an HDF5 file", field="weights")
        f.seek(0)
        keras_weights.load_h5_weights(model, f, path, check_values, skip_mismatch)


# ----- writing -----------------------------------------------------------------------------
def save_keras_model(model, path):
    """Write ``model`` as a Keras 3 ``.keras`` file (architecture and weights; no optimizer
    state), atomically."""
    if not model.built:
        raise FileFormatError(path, f"model '{model.name}' is not built yet", field="save")
    entry = to_keras(model)
    entry["compile_config"] = None
    weights = keras_weights.h5_weights_bytes(model, "save")
    metadata = {"keras_version": KERAS_VERSION, "producer": f"shenjing {__version__}",
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    with atomic_open(path, "wb", caller="save") as f, zipfile.ZipFile(f, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(entry))
        archive.writestr("model.weights.h5", weights)


def save_keras_weights(model, path):
    """Write ``model``'s weights in Keras 3's HDF5 layout, atomically."""
    data = keras_weights.h5_weights_bytes(model, "save_weights")
    with atomic_open(path, "wb", caller="save_weights") as f:
        f.write(data)


__all__ = ["is_h5_path", "is_keras_path", "load_keras_model", "load_keras_weights",
           "read_archive", "save_keras_model", "save_keras_weights"]
