"""shenjing.memory: freed large blocks stay in the process (no fresh page faults next step)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from shenjing import memory

PROBE = """
import numpy as np, shenjing
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
a = np.ones(40 << 18, np.float32)  # 40 MB, touched
before = rss()
del a
kept_after_free = rss()
shenjing.memory.release()
print(shenjing.memory.kept, (before - kept_after_free) >> 20, (before - rss()) >> 20)
"""


def _run(env_value):
    env = dict(os.environ)
    env.pop("SHENJING_KEEP_MEMORY", None)
    if env_value is not None:
        env["SHENJING_KEEP_MEMORY"] = env_value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_freed_memory_is_kept_unless_turned_off():
    kept, released_mb, after_release_mb = _run(None)
    assert kept and released_mb < 5  # the 40 MB block stays for the next allocation...
    assert after_release_mb > 35  # ...until memory.release() hands it back
    kept, released_mb, _ = _run("0")
    assert not kept and released_mb > 35  # glibc's default: returned to the kernel at once


def _address(block, offset):
    return np.frombuffer(block, np.uint8)[offset:].ctypes.data


@pytest.mark.parametrize("nbytes", [1, 1000, memory.HUGE_FROM - 1, memory.HUGE_FROM, 5 << 20])
def test_new_block_is_aligned_writable_and_large_enough(nbytes):
    block, offset = memory.new_block(nbytes)
    assert _address(block, offset) % memory.ALIGN == 0
    assert len(block) - offset >= nbytes
    view = np.frombuffer(block, np.uint8)[offset : offset + nbytes]
    view[:] = 7
    assert view.sum() == 7 * nbytes


def test_without_private_maps_large_blocks_are_aligned_bytearrays(monkeypatch):
    monkeypatch.setattr(memory, "_PRIVATE_MAPS", False)  # as on Windows and macOS
    block, offset = memory.new_block(3 << 20)
    assert isinstance(block, bytearray) and _address(block, offset) % memory.ALIGN == 0
    assert len(block) - offset >= 3 << 20


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return None


def _mapping_flags(address):
    """The VmFlags of the mapping holding address, from /proc/self/smaps."""
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            span = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if span:
                inside = int(span[1], 16) <= address < int(span[2], 16)
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"), reason="no transparent huge pages")
def test_large_blocks_are_marked_for_huge_pages():
    block, offset = memory.new_block(4 << 20)
    assert "hg" in _mapping_flags(_address(block, offset))  # madvise(MADV_HUGEPAGE)
