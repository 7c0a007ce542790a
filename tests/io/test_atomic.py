"""atomic_open: the target holds the old bytes or the new ones, never a mix, even under SIGKILL."""

import glob
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from shenjing.errors import ArgumentError
from shenjing.io import atomic_open, read_safetensors, write_safetensors
from shenjing.io.atomic import TargetIsADirectoryError

REPO = Path(__file__).resolve().parents[2]


def test_writes_the_new_content_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "f.bin"
    with atomic_open(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["f.bin"]
    with atomic_open(str(path), "w") as f:
        f.write("神经\n")
    assert path.read_bytes() == "神经\n".encode()
    assert os.listdir(tmp_path) == ["f.bin"]


def test_target_keeps_the_old_content_until_the_block_ends(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    with atomic_open(path) as f:
        f.write(b"new")
        f.flush()
        assert path.read_bytes() == b"old"
        (tmp_name,) = [p for p in os.listdir(tmp_path) if p != "f.bin"]
        assert re.fullmatch(rf"\.f\.bin\.tmp-{os.getpid()}-[0-9a-f]{{8}}", tmp_name)
    assert path.read_bytes() == b"new"


@pytest.mark.parametrize("existed", [True, False])
def test_an_exception_removes_the_temp_file_and_keeps_the_old_one(tmp_path, existed):
    path = tmp_path / "f.bin"
    if existed:
        path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(path) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk on fire")
    assert os.listdir(tmp_path) == (["f.bin"] if existed else [])
    if existed:
        assert path.read_bytes() == b"old"


def test_data_is_fsynced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def spy_replace(src, dst):
        events.append("replace")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    with atomic_open(tmp_path / "f.bin") as f:
        f.write(b"new")
    expected = ["fsync file", "replace"] + (["fsync folder"] if hasattr(os, "O_DIRECTORY") else [])
    assert events == expected


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_match_a_plain_open(tmp_path):
    (tmp_path / "plain").write_bytes(b"")  # what open() gives a new file under this umask
    with atomic_open(tmp_path / "new") as f:
        f.write(b"x")
    assert (tmp_path / "new").stat().st_mode == (tmp_path / "plain").stat().st_mode
    (tmp_path / "existing").write_bytes(b"old")
    os.chmod(tmp_path / "existing", 0o640)
    with atomic_open(tmp_path / "existing") as f:
        f.write(b"new")
    assert stat.S_IMODE((tmp_path / "existing").stat().st_mode) == 0o640


def test_bad_mode():
    match = "atomic_open: mode must be 'wb' or 'w', got 'ab'"
    with pytest.raises(ValueError, match=match), atomic_open("never-created", "ab"):
        pass
    assert not os.path.exists("never-created")


# ----------------------------------------------------------------------------- SIGKILL

# The child saves the old model, then starts a second save that stalls; the parent kills it.
CHILD = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from shenjing.io import atomic_open, write_safetensors

    path, how = sys.argv[1], sys.argv[2]
    write_safetensors(path, {"w": np.arange(10.0)}, {"version": "old"})
    if how == "chunks":  # dies halfway through the data
        with atomic_open(path) as f:
            for _ in range(1000):
                f.write(b"\\x00" * 65536)
                f.flush()
                time.sleep(0.01)
    else:  # dies with the new file complete but not yet renamed, the riskiest moment
        os.fsync = lambda fd: time.sleep(60)
        write_safetensors(path, {"w": np.zeros((512, 512))}, {"version": "new"})
    """
)


def _size_or_zero(path):
    """The file's size; 0 if it vanished (the first, complete save renames its temp file)."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("how", ["chunks", "before-rename"])
def test_sigkill_mid_save_leaves_the_old_file_readable(tmp_path, how):
    path = tmp_path / "model.safetensors"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), how], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    pattern = str(tmp_path / ".model.safetensors.tmp-*")
    min_size = 8 + 512 * 512 * 8 if how == "before-rename" else 65536
    deadline = time.monotonic() + 20
    try:
        while not [p for p in glob.glob(pattern) if _size_or_zero(p) >= min_size]:
            assert child.poll() is None, child.communicate()[1].decode()
            assert time.monotonic() < deadline, "the child never started its second save"
            time.sleep(0.002)
    finally:
        child.kill()  # SIGKILL: no except, finally or atexit runs in the child
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    tensors, metadata = read_safetensors(path)
    assert metadata == {"version": "old"}
    np.testing.assert_array_equal(tensors["w"], np.arange(10.0))
    # The killed process could not clean up its temporary file; the next save removes it.
    (leftover,) = glob.glob(pattern)
    assert f".tmp-{child.pid}-" in leftover
    write_safetensors(path, {"w": np.ones(2)}, {"version": "next"})
    assert read_safetensors(path)[1] == {"version": "next"}
    assert glob.glob(pattern) == []


# ----------------------------------------------------------------------------- stale temps


def _dead_pid():
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _temp(folder, name, writer, age_s=0.0):
    path = folder / f".{name}.tmp-{writer}"
    path.write_bytes(b"partial")
    if age_s:
        stamp = time.time() - age_s
        os.utime(path, (stamp, stamp))
    return path.name


@pytest.mark.skipif(os.name != "posix", reason="pid liveness is checked on POSIX only")
def test_next_save_removes_dead_writers_temps_and_keeps_live_ones(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _temp(tmp_path, "f.bin", f"{_dead_pid()}-0123abcd")
        live = _temp(tmp_path, "f.bin", f"{sleeper.pid}-0123abcd")
        mine = _temp(tmp_path, "f.bin", f"{os.getpid()}-0123abcd")  # another thread's save
        legacy = _temp(tmp_path, "f.bin", "89abcdef")  # before pids: unknown writer, recent
        old_live = _temp(tmp_path, "f.bin", f"{sleeper.pid}-fedcba98", age_s=2 * 86400)
        old_legacy = _temp(tmp_path, "f.bin", "fedcba98", age_s=2 * 86400)
        other = _temp(tmp_path, "g.bin", f"{_dead_pid()}-0123abcd")  # another target's
        with atomic_open(tmp_path / "f.bin") as f:
            f.write(b"new")
        assert sorted(os.listdir(tmp_path)) == sorted(["f.bin", live, mine, legacy, other])
        assert dead not in os.listdir(tmp_path) and old_live not in os.listdir(tmp_path)
        assert old_legacy not in os.listdir(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_cleanup_leaves_folders_alone(tmp_path):
    folder = tmp_path / f".f.bin.tmp-{_dead_pid()}-0123abcd"
    folder.mkdir()
    with atomic_open(tmp_path / "f.bin") as f:
        f.write(b"new")
    assert folder.is_dir()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_symlink_is_written_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "f.bin"
    target.write_bytes(b"old")
    (tmp_path / "hop").symlink_to(target)
    (tmp_path / "link").symlink_to(tmp_path / "hop")  # a chain: the final target is written
    with atomic_open(tmp_path / "link") as f:
        f.write(b"new")
        f.flush()
        temps = os.listdir(tmp_path / "real")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "hop").is_symlink()
    assert target.read_bytes() == b"new" and (tmp_path / "link").read_bytes() == b"new"
    tmp, real = sorted(temps)  # the temporary file was beside the target, not the link
    assert real == "f.bin" and tmp.startswith(".f.bin.tmp-")
    assert sorted(os.listdir(tmp_path)) == ["hop", "link", "real"]
    assert os.listdir(tmp_path / "real") == ["f.bin"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_a_dangling_symlink_creates_its_target(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "new.bin")
    with atomic_open(tmp_path / "link") as f:
        f.write(b"x")
    assert (tmp_path / "link").is_symlink() and (tmp_path / "new.bin").read_bytes() == b"x"


# ----------------------------------------------------------------------------- targets
# Only a regular file is ever replaced: anything else is refused before a temp file exists.


def _refused(path, error_type, *fragments):
    """atomic_open(path) raises error_type naming the path; nothing is created beside it."""
    folder = os.path.dirname(os.path.realpath(path))
    before = sorted(os.listdir(folder)) if os.path.isdir(folder) else None
    with pytest.raises(error_type) as info, atomic_open(path) as f:
        f.write(b"never")
    message = str(info.value)
    assert "atomic_open: " in message  # a FileNotFoundError's str starts with its errno
    for fragment in (str(path), *fragments):
        assert fragment in message, message
    if before is not None:
        assert sorted(os.listdir(folder)) == before  # no temp file, nothing replaced
    return message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
@pytest.mark.parametrize("through_symlink", [False, True])
def test_a_fifo_is_refused_not_replaced(tmp_path, through_symlink):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = fifo
    if through_symlink:
        path = tmp_path / "link.bin"
        path.symlink_to(fifo)
    _refused(path, ArgumentError, "is a FIFO (named pipe)", "writes regular files only")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs Unix sockets")
def test_a_socket_is_refused_not_replaced(tmp_path):
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            server.bind(str(path))
        except OSError as error:  # a tmp_path longer than sun_path allows
            pytest.skip(f"cannot bind a Unix socket here: {error}")
        _refused(path, ArgumentError, "is a socket")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()


def _char_device(tmp_path):
    """A character device node (/dev/null's numbers) in tmp_path, or skip without mknod."""
    node = tmp_path / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (AttributeError, OSError) as error:
        pytest.skip(f"mknod is not allowed here: {error}")
    return node


@pytest.mark.parametrize("through_symlink", [False, True])
def test_a_character_device_is_refused_not_replaced(tmp_path, through_symlink):
    node = _char_device(tmp_path)
    path = node
    if through_symlink:  # the reported case: a link to a device, saved over as root
        path = tmp_path / "l.safetensors"
        path.symlink_to(node)
    message = _refused(path, ArgumentError, "is a character device")
    if through_symlink:
        assert f"resolves to {node}" in message
    assert stat.S_ISCHR(os.lstat(node).st_mode)


@pytest.mark.parametrize("through_symlink", [False, True])
def test_a_directory_is_refused(tmp_path, through_symlink):
    folder = tmp_path / "d.bin"
    folder.mkdir()
    path = folder
    if through_symlink:
        path = tmp_path / "link.bin"
        path.symlink_to(folder)
    _refused(path, IsADirectoryError, "is a directory")  # and an ArgumentError: see below
    assert issubclass(TargetIsADirectoryError, ArgumentError)
    assert folder.is_dir() and os.listdir(folder) == []


def test_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    _refused(tmp_path / "a", ArgumentError, "symlink loop")
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink()


def test_a_path_through_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_bytes(b"old")
    _refused(tmp_path / "file" / "f.bin", ArgumentError, "should be a folder is a file")
    assert (tmp_path / "file").read_bytes() == b"old"


def test_a_nul_byte_or_an_empty_path_is_refused(tmp_path):
    nul = r"atomic_open: the path holds a NUL byte.*filepath='.*f\\x00\.bin'"
    with pytest.raises(ArgumentError, match=nul), atomic_open(str(tmp_path / "f\0.bin")):
        pass
    with pytest.raises(ArgumentError, match="atomic_open: the path is empty"), atomic_open(""):
        pass
    assert os.listdir(tmp_path) == []


def test_a_missing_folder_is_named(tmp_path):
    path = tmp_path / "missing" / "f.bin"
    message = _refused(path, FileNotFoundError, f"its folder {str(tmp_path / 'missing')!r}")
    assert "does not exist" in message and not (tmp_path / "missing").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_a_fifo_appearing_during_the_write_is_not_replaced(tmp_path):
    path = tmp_path / "f.bin"
    with pytest.raises(ArgumentError, match="is a FIFO"), atomic_open(path) as f:
        f.write(b"new")
        os.mkfifo(path)  # put there by someone else while we wrote
    assert stat.S_ISFIFO(os.lstat(path).st_mode) and os.listdir(tmp_path) == ["f.bin"]
