"""Atomic file replacement: write a temporary sibling, fsync it, then os.replace onto the target.

A writer killed with SIGKILL (or a power loss) cannot remove its temporary file. So each one is
named after its writer, `.<name>.tmp-<pid>-<8 hex digits>`, and the next save to the same path
removes the siblings whose writer is gone (no live process has that pid), or that nobody has
written for a day (a dead writer whose pid a new process reuses, a writer on another machine
sharing the folder). A live writer's file, in this process or another, is never removed.

Only a regular file (or nothing) is ever replaced: a target that is, or whose symlink leads to,
a device, FIFO, socket or directory is refused before any temporary file exists (check_target),
and checked again just before the rename.
"""

import contextlib
import errno
import os
import re
import secrets
import stat
import time

from ..errors import ArgumentError


class TargetIsADirectoryError(ArgumentError, IsADirectoryError):
    """A save target that is a directory: the caller's mistake (ArgumentError), and still the
    IsADirectoryError open() raised before, so code that catches that keeps working."""


# A temp file untouched this long is stale even if its pid is alive again (the pid was reused).
STALE_AFTER_S = 24 * 3600


@contextlib.contextmanager
def atomic_open(path, mode="wb", caller="atomic_open"):
    """Open a temporary file beside `path` that replaces `path` only when the block succeeds.

    Readers see the old file or the complete new one, never a mix, even if the process dies.
    A symlink is written through, as open() would: the temporary file goes beside the link's
    final target, which the rename replaces (the link stays). A target that exists and is not
    a regular file, or whose folder is missing, is refused first (see check_target). An
    exception removes the temporary file; one left by a killed writer is removed by the next
    save to the same path (see the module docstring). A new file gets the permissions open()
    would give it; an existing one keeps its.
    Args: path (target file); mode ("wb", or "w" for UTF-8 text); caller (named in errors).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"{caller}: mode must be 'wb' or 'w', got {mode!r}.")
    target = check_target(path, caller)  # through symlinks, as open() writes
    folder, name = os.path.split(target)
    remove_stale_temp_files(target)
    fd, tmp = _create_sibling(folder, name)
    try:
        with open(fd, mode, encoding=None if mode == "wb" else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it visible
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        # again: a device or folder put there while we wrote must not be replaced either
        _check_kind(os.fsdecode(os.fspath(path)), target, caller)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_folder(folder)


def check_target(path, caller="atomic_open", folder_must_exist=True):
    """Refuse a path that a save cannot write as a regular file; returns its final target.

    The target is `path` with symlinks resolved (os.path.realpath). Refused, naming `path`:
    a NUL byte or empty path, a symlink loop, a path through a non-folder, or a target that
    exists and is a directory, device, FIFO or socket (ArgumentError, TargetIsADirectoryError
    for a directory: the rename would destroy it, e.g. a link to /dev/null); a missing folder
    (FileNotFoundError naming it; not checked without folder_must_exist, for a caller that
    creates folders before saving).
    Args: path (str, bytes or os.PathLike); caller (named in the errors, e.g. "save_model").
    """
    raw = os.fspath(path)
    text = os.fsdecode(raw)
    if "\0" in text:
        raise ArgumentError(f"{caller}: the path holds a NUL byte, which no file name can "
                            f"contain. Received: filepath={text!r}")
    if not text:
        raise ArgumentError(f"{caller}: the path is empty; give a file name. Received: "
                            f"filepath=''")
    target = os.path.realpath(text)  # on a loop (before Python 3.13): the path unresolved
    _check_kind(text, target, caller)
    folder = os.path.dirname(target)
    if folder_must_exist and not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, f"{caller}: cannot write {text!r}: its folder "
                                f"{folder!r} does not exist; create it first", folder)
    return target


def _check_kind(text, target, caller):
    """Refuse a `target` (the resolved `text`) that exists and is not a regular file."""
    linked = target != os.path.abspath(text)  # through a symlink: name both
    where = f"{text} (which resolves to {target})" if linked else text
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return  # a new file; a dangling symlink creates its target, as open() does
    except OSError as error:
        reasons = {errno.ELOOP: "it is a symlink loop (or a chain of too many links)",
                   errno.ENOTDIR: "a part of it that should be a folder is a file",
                   errno.ENAMETOOLONG: "the name is too long"}
        if error.errno not in reasons:
            raise  # e.g. PermissionError, whose message names the path
        raise ArgumentError(f"{caller}: cannot write {where}: {reasons[error.errno]}. "
                            f"Received: filepath={text}") from None
    if stat.S_ISREG(info.st_mode):
        return
    if stat.S_ISDIR(info.st_mode):
        raise TargetIsADirectoryError(f"{caller}: cannot write {where}: it is a directory; "
                                      f"give a file name inside it. Received: filepath={text}")
    kind = special_kind(info.st_mode)
    raise ArgumentError(f"{caller}: refusing to write {where}: it is {kind}; shenjing writes "
                        f"regular files only (a save replaces the file, which would destroy "
                        f"this one). Received: filepath={text}")


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


def special_kind(mode) -> str:
    """What a file of st_mode `mode` that is not a regular file is, in words (for errors)."""
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def temp_prefix(name):
    """The start of every temporary file name for target file `name`."""
    return f".{name}.tmp-"


def remove_stale_temp_files(path):
    """Remove the temporary siblings of `path` left by writers that died; returns their names.

    Removed: files `.<name>.tmp-<pid>-<hex>` whose pid is not a live process, and any
    `.<name>.tmp-*` (also the older `.<name>.tmp-<hex>` names) not modified for STALE_AFTER_S.
    Kept: those of live processes, this one included (another thread may be writing).
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = temp_prefix(name)
    try:
        siblings = [entry for entry in os.listdir(folder) if entry.startswith(prefix)]
    except OSError:
        return []  # an unreadable folder: the save itself will say what is wrong
    removed = []
    for entry in siblings:
        full = os.path.join(folder, entry)
        if _is_stale(full, _writer_pid(entry[len(prefix):])):
            # gone already (another saver removed it), or not ours to remove: never fail a save
            with contextlib.suppress(OSError):
                os.unlink(full)
                removed.append(entry)
    return removed


def _writer_pid(suffix):
    """The pid in a temp name's suffix `<pid>-<hex>`, or None for other names."""
    match = re.fullmatch(r"(\d+)-[0-9a-f]{8}", suffix)
    return int(match.group(1)) if match else None


def _is_stale(full_path, pid):
    """True for a regular file whose writer is dead, or which is older than STALE_AFTER_S."""
    try:
        info = os.lstat(full_path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode):
        return False  # never ours: leave folders, links and the like alone
    if time.time() - info.st_mtime > STALE_AFTER_S:
        return True
    return pid is not None and pid != os.getpid() and not _process_alive(pid)


def _process_alive(pid):
    """Whether a process with this pid runs (a zombie counts as dead); True when unsure."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows: only age counts
    try:
        os.kill(pid, 0)  # signal 0: checks existence only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OSError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid):
    """Linux: a killed process not yet reaped by its parent still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # "pid (comm) state ...": comm may hold spaces and parentheses, the last ')' ends it
            return f.read().rpartition(b")")[2].split()[:1] == [b"Z"]
    except OSError:
        return False


def _create_sibling(folder, name):
    """Create `.<name>.tmp-<pid>-<random>` in `folder` exclusively; returns (fd, path)."""
    # NOTE: os.open with 0o666 lets the umask apply, unlike mkstemp's fixed 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f"{temp_prefix(name)}{os.getpid()}-{secrets.token_hex(4)}")
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
