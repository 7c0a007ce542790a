"""Atomic file replacement: write a temporary sibling, fsync it, then os.replace onto the target."""

import contextlib
import os
import secrets
import stat


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside `path` that replaces `path` only when the block succeeds.

    Readers see the old file or the complete new one, never a mix, even if the process dies.
    The temporary file is named `.<name>.tmp-<8 hex digits>`; an exception removes it, but a
    killed process (SIGKILL, power loss) leaves it behind: it never affects `path`, delete it
    at leisure. A new file gets the permissions `open()` would give it; an existing one keeps its.
    Args: path (target file); mode ("wb", or "w" for UTF-8 text).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open: mode must be 'wb' or 'w', got {mode!r}.")
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    target = os.path.join(folder, name)
    fd, tmp = _create_sibling(folder, name)
    try:
        with open(fd, mode, encoding=None if mode == "wb" else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it visible
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def _create_sibling(folder, name):
    """Create `.<name>.tmp-<random>` in `folder` exclusively; returns (fd, path)."""
    # NOTE: os.open with 0o666 lets the umask apply, unlike mkstemp's fixed 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.tmp-{secrets.token_hex(4)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"atomic_open: could not create a temporary file beside {name!r}.")


def _fsync_folder(folder):
    """Persist the rename itself. POSIX only: Windows cannot open a folder."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse to fsync a folder; the rename is done all the same
    finally:
        os.close(fd)
