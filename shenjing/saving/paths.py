"""Which file names a save accepts: ours, never a foreign format's extension.

shenjing writes one format (safetensors tensors plus a JSON config, no pickle), under
``.safetensors`` or ``.shenjing``. Keras's ``model.keras`` (a zip) and ``.h5``/``.weights.h5``
(HDF5) are other formats: writing ours under their names would give files that Keras, h5py or
a zip tool cannot open, so those names, and any other, are refused as Keras refuses names
outside its own formats. A name of ours that is a directory, device, FIFO or socket (or a
symlink to one), a symlink loop, or holds a NUL byte is refused too (io.atomic.check_target).
"""

import os

from ..errors import ArgumentError, ArgumentTypeError
from ..io.atomic import check_target

EXTENSIONS = (".safetensors", ".shenjing")
_KERAS_EXTENSIONS = (".keras", ".h5", ".hdf5")


def check_save_path(filepath, caller):
    """Refuse a save path whose extension is not ours, or that is no regular file; returns it.

    Checked before any work: the extension, then what the path is (check_target; a missing
    folder is left to the save, as ModelCheckpoint creates it).
    Args: filepath (str or os.PathLike; ModelCheckpoint's may hold "{epoch}" fields, the
    extension after them is checked); caller (named in the error, e.g. "Model.save").
    """
    if not isinstance(filepath, (str, os.PathLike)):
        raise ArgumentTypeError(f"{caller}: filepath must be a str or os.PathLike, got "
                                f"{type(filepath).__name__} ({filepath!r}).")
    path = os.fspath(filepath)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if path.lower().endswith(EXTENSIONS):
        check_target(path, caller, folder_must_exist=False)
        return path
    hint = ""
    if path.lower().endswith(_KERAS_EXTENSIONS):
        hint = (" Keras's formats (.keras, .h5, .weights.h5) are not written yet: writing ours "
                "under their name would give a file Keras cannot open.")
    raise ArgumentError(f"{caller}: invalid filepath extension: shenjing writes its own format "
                        f"(safetensors with a JSON config), so the filepath must end in "
                        f"`.safetensors` or `.shenjing`.{hint} Received: filepath={path}")


__all__ = ["EXTENSIONS", "check_save_path"]
