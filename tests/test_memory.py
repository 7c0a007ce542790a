"""shenjing.memory: freed large blocks stay in the process (no fresh page faults next step)."""

import os
import subprocess
import sys

import pytest

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
