"""``get_file``: Keras's ``keras.utils.get_file``, a download cached on disk, checked and,
if asked, extracted.

The file goes to ``<cache_dir>/<cache_subdir>/<fname>`` (``cache_dir`` defaults to
``$SHENJING_HOME``, else ``~/.shenjing``, where Keras uses ``~/.keras``). A download lands in a
temporary file that is renamed into place only when complete and, given ``file_hash``, when its
digest matches, so the cache never holds a partial or wrong file (datasets/_files.download).
Extraction refuses members that would land outside the target folder (absolute paths, ``..``,
links out of it): an archive from the network is untrusted.
"""

import hashlib
import os
import tarfile
import warnings
import zipfile
from pathlib import Path

from . import arguments
from .errors import ArgumentError

_WHERE = "get_file"


def _hash_name(file_hash, hash_algorithm):
    """'sha256' or 'md5': Keras's 'auto' takes the digest's length (64 hex digits: sha256)."""
    algorithm = hash_algorithm
    if algorithm not in ("auto", "sha256", "md5"):
        raise arguments.fail(_WHERE, f"hash_algorithm must be 'auto', 'sha256' or 'md5', got "
                                     f"{hash_algorithm!r}.")
    if algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    return algorithm


def _digest(path, algorithm):
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def _inside(folder: Path, member: str) -> bool:
    target = (folder / member).resolve()
    return target == folder or folder in target.parents


def extract_archive(path, folder, archive_format="auto"):
    """Extract a zip or tar archive into folder; True if path was such an archive. Members
    that would land outside folder are refused (an error naming the member)."""
    path, folder = Path(path), Path(folder).resolve()
    formats = ("tar", "zip") if archive_format == "auto" else (
        (archive_format,) if isinstance(archive_format, str) else tuple(archive_format))
    if "zip" in formats and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not _inside(folder, name):
                    raise ArgumentError(f"{_WHERE}: {path}: member {name!r} would be written "
                                        f"outside {folder}; nothing was extracted.")
            archive.extractall(folder)
        return True
    if "tar" in formats and tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                link_ok = not (member.issym() or member.islnk()) or _inside(
                    folder, os.path.join(os.path.dirname(member.name), member.linkname))
                if not _inside(folder, member.name) or not link_ok:
                    raise ArgumentError(f"{_WHERE}: {path}: member {member.name!r} would be "
                                        f"written outside {folder}; nothing was extracted.")
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: no devices, no setuid
                archive.extractall(folder, filter="data")
            else:  # pragma: no cover - older Pythons, the checks above still hold
                archive.extractall(folder)
        return True
    return False


def get_file(fname=None, origin=None, untar=False, md5_hash=None, file_hash=None,
             cache_subdir="datasets", hash_algorithm="auto", extract=False,
             archive_format="auto", cache_dir=None, force_download=False):
    """Download ``origin`` to the cache unless it is there already (and matches file_hash),
    and return its path; with ``extract=True`` (or ``untar=True``) the archive is unpacked
    next to it and the folder's path is returned, as Keras 3 does."""
    from .datasets._files import download  # the checked, atomic download of our datasets

    if not isinstance(origin, str) or not origin:
        raise ArgumentError(f"{_WHERE}: origin must be the URL to download, got {origin!r}.")
    from urllib.parse import urlsplit

    provided = bool(fname)
    fname = os.fspath(fname) if fname else os.path.basename(urlsplit(origin).path)
    if not isinstance(fname, str) or not fname:
        raise ArgumentError(f"{_WHERE}: could not take a file name from origin {origin!r}; "
                            "pass fname=.")
    if os.sep in fname:
        raise ArgumentError(f"{_WHERE}: fname must be a file name, not a path (pass the folder "
                            f"as cache_dir), got fname={fname!r}.")
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    home = cache_dir or os.environ.get("SHENJING_HOME") or os.path.join("~", ".shenjing")
    folder = Path(home).expanduser() / cache_subdir
    folder.mkdir(parents=True, exist_ok=True)
    path, target = folder / fname, None
    if extract or untar:  # Keras 3's names for the archive and the folder it unpacks to
        if provided and "." in fname:
            target = folder / f"{fname[:fname.find('.')]}_extracted"
        else:
            path, target = folder / f"{fname}_archive", folder / fname
    algorithm = None if file_hash is None else _hash_name(str(file_hash), hash_algorithm)
    fresh = force_download or not path.is_file() or (
        algorithm is not None and _digest(path, algorithm) != file_hash)
    if fresh:
        sha256 = file_hash if algorithm == "sha256" else None
        with warnings.catch_warnings():  # no hash given: none checked, as in Keras
            warnings.simplefilter("ignore")
            download(origin, path, sha256)
        if algorithm == "md5" and _digest(path, "md5") != file_hash:
            path.unlink()
            raise ArgumentError(f"{_WHERE}: {origin}: the download's md5 is not {file_hash}; "
                                "it was deleted.")
    if target is None:
        return str(path)
    if not extract_archive(path, target, "tar" if untar and not extract else archive_format):
        raise ArgumentError(f"{_WHERE}: {path} is not a zip or tar archive; nothing to extract.")
    return str(target)
