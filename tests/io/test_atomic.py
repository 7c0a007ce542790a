"""atomic_open: the target holds the old bytes or the new ones, never a mix, even under SIGKILL."""

import glob
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from shenjing.io import atomic_open, read_safetensors, write_safetensors

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
        assert tmp_name.startswith(".f.bin.tmp-") and len(tmp_name) == len(".f.bin.tmp-") + 8
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
    # The killed process could not clean up: its temporary file stays, and harms nothing.
    (leftover,) = glob.glob(pattern)
    write_safetensors(path, {"w": np.ones(2)}, {"version": "next"})
    assert read_safetensors(path)[1] == {"version": "next"}
    assert glob.glob(pattern) == [leftover]
