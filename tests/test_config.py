"""shenjing.config: the switches for what shenjing changes in its process (their effects are
checked in tests/test_memory.py and tests/ops/test_parallel.py)."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import shenjing as sj
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.ops import parallel

ROOT = Path(__file__).resolve().parents[1]  # the child imports this tree's shenjing


@pytest.mark.parametrize("setter", [sj.config.set_keep_memory, sj.config.set_blas_one_thread])
@pytest.mark.parametrize("value", [0, "no", None])
def test_switches_take_a_bool_only(setter, value):
    with pytest.raises(ArgumentTypeError, match="enabled"):
        setter(value)


@pytest.mark.parametrize("limit, error", [(0, ArgumentError), (-5, ArgumentError),
                                          (1.5, ArgumentTypeError), (True, ArgumentTypeError)])
def test_keep_memory_limit_is_a_positive_int(limit, error):
    with pytest.raises(error, match="limit_mib"):
        sj.config.set_keep_memory(True, limit_mib=limit)


def test_switches_read_back_what_was_set():
    memory_before, blas_before = sj.config.keep_memory(), sj.config.blas_one_thread()
    try:
        sj.config.set_keep_memory(False)
        sj.config.set_blas_one_thread(False)
        assert not sj.config.keep_memory() and not sj.config.blas_one_thread()
        sj.config.set_keep_memory(True)
        sj.config.set_blas_one_thread(True)
        assert sj.config.keep_memory() and sj.config.blas_one_thread()
    finally:
        sj.config.set_keep_memory(memory_before)
        sj.config.set_blas_one_thread(blas_before)


# ----- the number of threads --------------------------------------------------------------
def _threads_in_child(env=None, cores=None):
    """(get_num_threads(), warnings) in a fresh interpreter, run on cores (a set) if given."""
    code = f"""
import json, os, warnings
warnings.simplefilter("always")
if {cores!r} is not None:
    os.sched_setaffinity(0, {cores!r})
with warnings.catch_warnings(record=True) as caught:
    import shenjing as sj
print(json.dumps([sj.config.get_num_threads(), [str(w.message) for w in caught]]))
"""
    environment = {k: v for k, v in os.environ.items() if k != "SHENJING_NUM_THREADS"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


needs_affinity = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"),
                                    reason="no affinity masks on this OS")


@needs_affinity
@pytest.mark.parametrize("count", [1, 2])
def test_default_threads_follow_the_affinity_mask(count):
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < count:
        pytest.skip(f"this process may run on {len(allowed)} core(s)")
    assert _threads_in_child(cores=set(allowed[:count])) == [count, []]


@needs_affinity
def test_the_environment_overrides_the_affinity_mask():
    cores = {min(os.sched_getaffinity(0))}
    assert _threads_in_child({"SHENJING_NUM_THREADS": "3"}, cores) == [3, []]
    assert _threads_in_child({"SHENJING_NUM_THREADS": " 1 "}, cores) == [1, []]
    assert _threads_in_child({"SHENJING_NUM_THREADS": ""}, cores) == [1, []]  # unset


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "2 cores"])
def test_a_bad_environment_value_is_refused_with_a_warning(value):
    threads, caught = _threads_in_child({"SHENJING_NUM_THREADS": value})
    assert threads == parallel.default_threads()
    assert len(caught) == 1 and "SHENJING_NUM_THREADS" in caught[0] and repr(value) in caught[0]


def test_default_threads_divides_the_cores_for_processes_sharing_a_host():
    cores = parallel.default_threads()
    assert parallel.default_threads(2) == max(1, cores // 2)
    assert parallel.default_threads(10**6) == 1


@pytest.fixture
def threads_restored():
    before = sj.config.get_num_threads()
    yield
    sj.config.set_num_threads(before)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_set_num_threads_sets_the_count_and_the_pool(threads_restored, n):
    sj.config.set_num_threads(n)
    assert sj.config.get_num_threads() == n == parallel.THREADS
    assert parallel.executor()._max_workers == max(1, n - 1)


@pytest.mark.parametrize("n, error", [(0, ArgumentError), (-1, ArgumentError),
                                      (1.5, ArgumentTypeError), (True, ArgumentTypeError),
                                      ("2", ArgumentTypeError), (None, ArgumentTypeError)])
def test_set_num_threads_refuses_what_is_not_a_positive_int(threads_restored, n, error):
    before = sj.config.get_num_threads()
    with pytest.raises(error, match="set_num_threads"):
        sj.config.set_num_threads(n)
    assert sj.config.get_num_threads() == before


def test_set_num_threads_while_another_thread_splits_work(threads_restored, monkeypatch):
    """A resize while a split runs elsewhere: that split finishes on its pool, all rows once."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    sj.config.set_num_threads(3)
    started, resized, seen = threading.Event(), threading.Event(), []

    def work(s):
        started.set()
        assert resized.wait(10)
        seen.append((s.start, s.stop))

    runner = threading.Thread(target=parallel.over_batch, args=(work, 9, 10**9))
    runner.start()
    assert started.wait(10)
    old = parallel.executor()
    sj.config.set_num_threads(2)
    assert parallel.executor() is not old and parallel.executor()._max_workers == 1
    resized.set()
    runner.join(10)
    assert not runner.is_alive() and sorted(seen) == [(0, 3), (3, 6), (6, 9)]
    out = np.empty((6, 5))
    parallel.ufunc(np.negative, np.ones((6, 5)), out=out)  # the new pool works
    assert (out == -1).all()
