"""shenjing.config: the switches for what shenjing changes in its process (their effects are
checked in tests/test_memory.py and tests/ops/test_parallel.py)."""

import pytest

import shenjing as sj
from shenjing.errors import ArgumentError, ArgumentTypeError


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
