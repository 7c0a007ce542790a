"""kill -9 during model.save, 20 times: the file always loads as one of the versions written,
at most one temporary file is left beside it, and the next save removes that one."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import shenjing as sj

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 20

# One Python process imports shenjing once (0.5 s), then for each round forks a writer that
# saves version after version (every weight filled with the version number) until it is
# killed with SIGKILL after a random delay; it reaps the writer and reports how it died.
SUPERVISOR = textwrap.dedent(
    """
    import os, signal, sys, time
    import numpy as np
    import shenjing as sj
    from shenjing import layers

    path, seed = sys.argv[1], int(sys.argv[2])
    model = sj.Sequential([layers.Input((64,)), layers.Dense(256), layers.Dense(64)])
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(seed)
    for round_ in range(1, int(sys.argv[3]) + 1):
        sys.stdin.readline()  # the test has checked the file: go on
        pid = os.fork()
        if pid == 0:
            version = round_ * 1000
            while True:
                version += 1
                for w in model.weights:
                    w.assign(np.full(w.shape, version, w.dtype))
                model.save(path)
        time.sleep(rng.uniform(0.002, 0.06))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print(round_, pid, os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
    """
)


def _version(path):
    """The one number every weight of the saved model is filled with."""
    values = {float(v) for w in sj.load_model(path).get_weights() for v in np.unique(w)}
    assert len(values) == 1, f"a mix of versions: {sorted(values)[:5]}"
    return values.pop()


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"),
                    reason="needs fork and SIGKILL")
def test_sigkill_at_random_points_of_saving(tmp_path):
    path = tmp_path / "model.safetensors"
    model = sj.Sequential([sj.layers.Input((64,)), sj.layers.Dense(256), sj.layers.Dense(64)])
    for w in model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    model.save(path)  # version 0
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(path), "0", str(ROUNDS)], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    temps = str(tmp_path / ".model.safetensors.tmp-*")
    versions, pids = [], set()
    try:
        for round_ in range(1, ROUNDS + 1):
            supervisor.stdin.write("go\n")
            supervisor.stdin.flush()
            line = supervisor.stdout.readline()
            assert line, supervisor.communicate()[1]
            reported_round, pid, signal_number = map(int, line.split())
            assert (reported_round, signal_number) == (round_, signal.SIGKILL)
            version = _version(path)
            # the old file or one the killed writer finished: never a later round's, never torn
            assert version == 0 or version // 1000 <= round_, version
            assert version >= max(versions, default=0)  # never an older one back
            versions.append(version)
            left = glob.glob(temps)  # the writer's next save had removed the previous ones
            assert len(left) <= 1, left  # this writer's, or the last one's if it died too early
            pids.update({pid})
            assert all(int(name.rsplit("-", 2)[1]) in pids for name in left)
    finally:
        supervisor.kill()
        supervisor.communicate()
    model.save(path)  # a later save removes what the last killed writer left
    assert os.listdir(tmp_path) == ["model.safetensors"] and _version(path) == 0
    assert len(set(versions)) > 1  # the writers did replace the file along the way
