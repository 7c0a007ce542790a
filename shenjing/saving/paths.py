"""Which file names a save accepts; the extension decides the format.

shenjing's own format (safetensors tensors plus a JSON config, no pickle) goes under
``.safetensors`` or ``.shenjing``; Keras 3's under ``.keras`` (a model) and ``.weights.h5``
(weights; saving/keras_archive.py, with h5py). Keras's legacy whole-model ``.h5``/``.hdf5``
is not written (Keras 3 itself only keeps it for old files), and any other name is refused, as
Keras refuses names outside its own formats. A name of ours that is a directory, device, FIFO or socket (or a
symlink to one), a symlink loop, or holds a NUL byte is refused too (io.atomic.check_target).
"""

import os

from ..errors import ArgumentError, ArgumentTypeError
from ..io.atomic import check_target

EXTENSIONS = (".safetensors", ".shenjing")
KERAS_EXTENSIONS = (".keras", ".weights.h5")
_LEGACY_EXTENSIONS = (".h5", ".hdf5")


def check_save_path(filepath, caller, keras_kind=None):
    """Refuse a save path whose extension is not ours, or that is no regular file; returns it.

    Checked before any work: the extension, then what the path is (check_target; a missing
    folder is left to the save, as ModelCheckpoint creates it). Keras's ``.keras`` is taken
    from "save_model" only, ``.weights.h5`` from "save_weights" only, or from a caller that
    says which it writes (``keras_kind`` "model" or "weights": ModelCheckpoint, whose Keras
    files hold no training state to resume from, as in Keras).
    Args: filepath (str or os.PathLike; ModelCheckpoint's may hold "{epoch}" fields, the
    extension after them is checked); caller (named in the error, e.g. "Model.save").
    """
    if not isinstance(filepath, (str, os.PathLike)):
        raise ArgumentTypeError(f"{caller}: filepath must be a str or os.PathLike, got "
                                f"{type(filepath).__name__} ({filepath!r}).")
    path = os.fspath(filepath)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    lower = path.lower()
    if keras_kind is None and caller in ("save_model", "save_weights"):
        keras_kind = "weights" if caller == "save_weights" else "model"
    weights_only = keras_kind == "weights"
    keras_ok = keras_kind is not None
    if lower.endswith(EXTENSIONS) or keras_ok and (
            lower.endswith(".weights.h5") if weights_only else lower.endswith(".keras")):
        check_target(path, caller, folder_must_exist=False)
        return path
    if not keras_ok and lower.endswith((*KERAS_EXTENSIONS, *_LEGACY_EXTENSIONS)):
        hint = (" Keras's formats are written by save and save_weights only; checkpoints "
                "are shenjing's files (load one and save it as .keras to convert it).")
    elif lower.endswith(".weights.h5"):
        hint = " A .weights.h5 file holds weights only: write it with save_weights."
    elif lower.endswith(".keras"):
        hint = (" Keras's weights-only files end in .weights.h5 (a .keras file is a whole "
                "model: write it with save).")
    elif lower.endswith(_LEGACY_EXTENSIONS):
        hint = (" Keras's legacy HDF5 model format (.h5) is not written: use .keras for Keras "
                "3's format, or .weights.h5 for weights.")
    else:
        hint = ""
    raise ArgumentError(f"{caller}: invalid filepath extension: the filepath must end in "
                        f"`.safetensors` or `.shenjing` (shenjing's format)"
                        + (f", or `{'.weights.h5' if weights_only else '.keras'}` (Keras 3's)"
                           if keras_ok else "") + "."
                        f"{hint} Received: filepath={path}")


__all__ = ["EXTENSIONS", "KERAS_EXTENSIONS", "check_save_path"]
