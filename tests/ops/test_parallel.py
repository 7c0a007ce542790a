"""shenjing.ops.parallel: ops that split the batch over two threads give the one-thread answer
(and PyTorch's). The split is forced on small inputs so that every machine runs it."""

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import parallel
from shenjing.ops.conv import resolve_padding
from tests.helpers import check_against_torch
from tests.ops.test_pool import OURS_2D, torch_pool2d

torch = pytest.importorskip("torch")


@pytest.fixture
def split_always(monkeypatch):
    monkeypatch.setattr(parallel, "THREADS", 2)
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)


def test_over_batch_covers_every_row_once_on_two_threads(split_always):
    seen, threads = [], set()

    def work(s):
        seen.append((s.start, s.stop))
        threads.add(threading.get_ident())

    parallel.over_batch(work, 7, 10**9)
    assert sorted(seen) == [(0, 3), (3, 7)] and len(threads) == 2


def test_over_batch_raises_the_workers_error(split_always):
    def work(s):
        if s.start == 0:
            raise ValueError("half one failed")

    with pytest.raises(ValueError, match="half one failed"):
        parallel.over_batch(work, 4, 10**9)


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("window,strides,padding", [
    ((2, 2), (2, 2), "valid"), ((3, 3), (2, 2), "same"), ((3, 2), (1, 1), "same"),
    ((2, 2), (3, 3), "valid"), ((2, 3), (2, 3), "same"),
])
def test_split_pools_match_torch(split_always, rng, mode, window, strides, padding):
    x = rng.standard_normal((5, 9, 11, 3))
    x[0, :4, :4] = 0.0  # ties: the first maximum (row-major) takes the gradient, as in torch
    pads = resolve_padding(padding, x.shape[1:3], window, strides, (1, 1))
    check_against_torch(lambda t: OURS_2D[mode](t, window, strides, padding),
                        torch_pool2d(mode, window, strides, pads), x)


def test_split_relu_matches_torch(split_always, rng):
    x = rng.standard_normal((5, 4, 3))
    x[1] = 0.0
    check_against_torch(sj.ops.relu, torch.relu, x)


def test_split_products_equal_numpys(split_always, rng):
    a, b, c = rng.standard_normal((9, 4)), rng.standard_normal((4, 3)), rng.standard_normal((9, 3))
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-12)
    np.testing.assert_allclose(parallel.matmul_tn(a, c), a.T @ c, rtol=1e-12)


def _blas_controls():
    """(set, get) of the first BLAS parallel.py controls through threadpoolctl, or a skip."""
    if not parallel._blas:
        pytest.skip("threadpoolctl finds no BLAS loaded")
    lib = parallel._blas[0]
    return lib.set_num_threads, lib.get_num_threads


def test_blas_runs_on_one_thread_inside_ops_only(monkeypatch):
    set_threads, get_threads = _blas_controls()
    monkeypatch.setattr(parallel, "THREADS", 2)
    before = get_threads()
    set_threads(2)
    try:
        seen = {}

        class Probe(sj.tensor.Op):
            def forward(self, x):
                seen["forward"] = get_threads()
                return x * 2

            def backward(self, gy):
                seen["backward"] = get_threads()
                return gy * 2

        class BlasProbe(Probe):
            blas_threads = True

        Probe()(sj.Tensor(np.ones(3), requires_grad=True)).backward(np.ones(3))
        assert seen == {"forward": 1, "backward": 1} and get_threads() == 2
        BlasProbe()(sj.Tensor(np.ones(3), requires_grad=True)).backward(np.ones(3))
        assert seen == {"forward": 2, "backward": 2} and get_threads() == 2
    finally:
        set_threads(before)


def _openblas_threads():
    """NumPy's OpenBLAS thread count as threadpoolctl reads it (independent of parallel.py)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    counts = [info["num_threads"] for info in threadpoolctl.threadpool_info()
              if info["internal_api"] == "openblas" and "numpy" in info["filepath"]]
    if not counts:
        pytest.skip("threadpoolctl finds no OpenBLAS in NumPy")
    return counts[0]


class _Reads(sj.tensor.Op):
    """An op whose forward records the BLAS thread count, and may run a hook first."""

    def __init__(self, seen, hook=None):
        self.seen, self.hook = seen, hook

    def forward(self, x):
        self.seen.append(_openblas_threads())
        if self.hook is not None:
            self.hook()
            self.seen.append(_openblas_threads())
        return x * 2


@pytest.fixture
def two_blas_threads(monkeypatch):
    """THREADS 2 (as on a multi-core machine), the BLAS on 2 threads; both restored after."""
    set_threads, get_threads = _blas_controls()
    monkeypatch.setattr(parallel, "THREADS", 2)
    before = get_threads()
    set_threads(2)
    yield
    sj.config.set_blas_one_thread(True)
    set_threads(before)


def test_blas_switch_off_leaves_the_thread_count_alone(two_blas_threads):
    seen = []
    _Reads(seen)(sj.Tensor(np.ones(3)))
    assert seen == [1] and sj.config.blas_one_thread()  # on by default: narrowed inside
    sj.config.set_blas_one_thread(False)
    _Reads(seen)(sj.Tensor(np.ones(3)))
    assert seen == [1, 2] and _openblas_threads() == 2 and not sj.config.blas_one_thread()


def test_blas_switch_off_inside_an_op_gives_the_count_back_at_once(two_blas_threads):
    seen = []
    _Reads(seen, hook=lambda: sj.config.set_blas_one_thread(False))(sj.Tensor(np.ones(3)))
    assert seen == [1, 2] and _openblas_threads() == 2
    sj.config.set_blas_one_thread(True)  # back on: narrowed again from the next op
    _Reads(seen)(sj.Tensor(np.ones(3)))
    assert seen == [1, 2, 1] and _openblas_threads() == 2


def test_blas_switch_from_the_environment():
    _openblas_threads()  # skips where threadpoolctl finds no OpenBLAS in NumPy
    code = """
import json, numpy as np, shenjing as sj, threadpoolctl
from shenjing.ops import parallel
def openblas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info()
            if i["internal_api"] == "openblas" and "numpy" in i["filepath"]][0]
class Reads(sj.tensor.Op):
    def forward(self, x):
        seen.append(openblas_threads())
        return x
parallel.THREADS, seen = 2, []
with threadpoolctl.threadpool_limits(2, user_api="blas"):
    Reads()(sj.Tensor(np.ones(3)))
print(json.dumps([sj.config.blas_one_thread(), seen]))
"""
    env = dict(os.environ, SHENJING_BLAS_ONE_THREAD="0")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [False, [2]]  # on, it would read [1]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("strides,padding", [((1, 1), "same"), ((2, 1), "valid"), ((2, 2), "same")])
def test_split_chunked_inference_conv_matches_torch(split_always, monkeypatch, rng, strides,
                                                    padding, channels):
    from shenjing.ops import conv as conv_module
    from tests.ops.test_conv import torch_conv2d

    monkeypatch.setattr(conv_module, "_COLUMN_CHUNK_BYTES", 1)  # one image per chunk
    x, k = rng.standard_normal((7, 9, 8, channels)), rng.standard_normal((3, 2, channels, 4))
    b = rng.standard_normal(4)
    pads = resolve_padding(padding, (9, 8), (3, 2), strides, (1, 1))
    with sj.no_grad():
        ours = sj.ops.conv2d(x, k, b, strides=strides, padding=padding).numpy()
    reference = torch_conv2d(strides, pads, (1, 1))(*(torch.tensor(a) for a in (x, k, b)))
    np.testing.assert_allclose(ours, reference.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("channels", [1, 3])
def test_split_conv_training_matches_torch(split_always, rng, channels):
    from tests.ops.test_conv import torch_conv2d

    x, k = rng.standard_normal((5, 7, 6, channels)), rng.standard_normal((3, 3, channels, 4))
    b = rng.standard_normal(4)
    pads = resolve_padding("same", (7, 6), (3, 3), (1, 1), (1, 1))
    check_against_torch(lambda *a: sj.ops.conv2d(*a, padding="same"),
                        torch_conv2d((1, 1), pads, (1, 1)), x, k, b)


def test_split_dense_matches_torch(split_always, rng):
    x, k, b = rng.standard_normal((6, 2, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    check_against_torch(sj.ops.dense, lambda x, k, b: x @ k + b, x, k, b)


# ----- n threads: THREADS from shenjing.config, any n (3 and 4 oversubscribe 2 cores) ---------
@pytest.fixture
def on_threads(monkeypatch):
    """on_threads(n, fn): fn() with THREADS = n and every split forced; THREADS restored."""
    before = parallel.THREADS
    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)

    def run(n, fn):
        parallel.set_threads(n)
        try:
            return fn()
        finally:
            parallel.set_threads(before)

    return run


def test_parts_keep_half_the_threshold_per_thread(monkeypatch):
    monkeypatch.setattr(parallel, "THREADS", 4)
    m = parallel.MIN_ELEMENTS
    assert [parallel.parts(100, e) for e in (m - 1, m, 3 * m // 2, 2 * m, 100 * m)] == [1, 2, 3,
                                                                                        4, 4]
    assert parallel.parts(3, 100 * m) == 3 and parallel.parts(1, 100 * m) == 1
    monkeypatch.setattr(parallel, "THREADS", 1)
    assert parallel.parts(100, 100 * m) == 1


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_split_runs_n_parts_at_once_on_n_threads(on_threads, n):
    barrier, seen = threading.Barrier(n, timeout=10), []

    def work(s):
        barrier.wait()  # passes only when all n parts run at the same time
        seen.append((s.start, s.stop, threading.get_ident()))
        return s.start

    results = on_threads(n, lambda: parallel.split(work, 10, n))
    assert results == [10 * i // n for i in range(n)]  # in order
    assert sorted(r[:2] for r in seen) == [(10 * i // n, 10 * (i + 1) // n) for i in range(n)]
    assert len({r[2] for r in seen}) == n


def test_split_waits_for_every_part_then_raises_the_first_error(on_threads):
    finished = []

    def work(s):
        if s.start in (3, 6):
            raise ValueError(f"part at {s.start} failed")
        time.sleep(0.05)
        finished.append(s.start)

    with pytest.raises(ValueError, match="part at 3 failed"):
        on_threads(4, lambda: parallel.split(work, 12, 4))
    assert sorted(finished) == [0, 9]


def _per_thread_count(on_threads, fn, counts=(1, 2, 3, 4)):
    return [on_threads(n, fn) for n in counts]


def test_elementwise_passes_identical_on_1_to_4_threads(on_threads, rng):
    x = rng.standard_normal((11, 6, 5))

    def relu():
        t = sj.Tensor(x, requires_grad=True)
        y = sj.ops.relu(t)
        y.backward(np.cos(x))
        return y.numpy(), t.grad

    first, *others = _per_thread_count(on_threads, relu)
    for other in others:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_identical_on_1_to_4_threads(on_threads, rng, mode):
    x = rng.standard_normal((9, 8, 7, 3))

    def pool():
        t = sj.Tensor(x, requires_grad=True)
        y = OURS_2D[mode](t, (3, 3), (2, 2), "same")
        y.backward(np.sin(y.numpy()))
        return y.numpy(), t.grad

    first, *others = _per_thread_count(on_threads, pool)
    for other in others:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)


def test_batch_norm_identical_on_1_to_4_threads(on_threads, rng, monkeypatch):
    from shenjing.ops import norm

    monkeypatch.setattr(norm, "_BLOCK_BYTES", 1)  # many blocks: the threads share them
    x, gamma, beta = rng.standard_normal((10, 4, 3, 5)), rng.random(5) + 0.5, rng.random(5)

    def bn():
        tensors = [sj.Tensor(a, requires_grad=True) for a in (x, gamma, beta)]
        y = sj.ops.batch_norm(*tensors, training=True)
        y.backward(np.cos(x))
        return [y.numpy()] + [t.grad for t in tensors]

    first, *others = _per_thread_count(on_threads, bn)
    for other in others:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)  # blocks merged in block order on any count


@pytest.mark.parametrize("make", [lambda: sj.optimizers.Adam(0.01),
                                  lambda: sj.optimizers.SGD(0.1, momentum=0.9)])
def test_optimizer_updates_identical_on_1_to_4_threads(on_threads, rng, make):
    start, grads = rng.standard_normal((9, 4)), [rng.standard_normal((9, 4)) for _ in range(3)]

    def train():
        variable, opt = sj.Variable(start.copy(), name="w"), make()
        for g in grads:
            opt.apply([variable], [g])
        return variable.numpy()

    first, *others = _per_thread_count(on_threads, train)
    for other in others:
        np.testing.assert_array_equal(first, other)


def test_products_and_conv_on_1_to_4_threads(on_threads, rng):
    """Rows of a product are the same product on any split (tolerance only for the BLAS's
    kernels); the kernel gradient sums over the split batch: equal to rounding."""
    x, k, b = rng.standard_normal((7, 6, 5, 2)), rng.standard_normal((3, 3, 2, 4)), rng.random(4)
    a, c, w = (rng.standard_normal(s) for s in ((13, 6), (13, 4), (6, 4)))

    def run():
        tensors = [sj.Tensor(v, requires_grad=True) for v in (x, k, b)]
        y = sj.ops.conv2d(*tensors, padding="same")
        y.backward(np.cos(y.numpy()))
        return [y.numpy(), tensors[0].grad, tensors[1].grad, tensors[2].grad,
                parallel.matmul(a, w), parallel.matmul_tn(a, c)]

    first, *others = _per_thread_count(on_threads, run)
    for other in others:
        for i, (p, q) in enumerate(zip(first, other)):
            np.testing.assert_allclose(p, q, rtol=1e-13, atol=1e-13, err_msg=f"result {i}")


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_ops_on_1_to_4_threads(on_threads, rng, monkeypatch, kind):
    from shenjing.ops import recurrent

    monkeypatch.setattr(recurrent._Recurrent, "MIN_SPLIT_BLOCK", 1)
    N, T, d, u = 9, 5, 3, 4
    gates = 4 if kind == "lstm" else 3
    x = rng.standard_normal((N, T, d))
    weights = [rng.standard_normal((d, gates * u)), rng.standard_normal((u, gates * u)),
               rng.standard_normal((2, gates * u) if kind == "gru" else gates * u)]

    def run():
        tensors = [sj.Tensor(v, requires_grad=True) for v in [x, *weights]]
        ys = getattr(sj.ops, kind)(*tensors)[0]
        (ys * ys).sum().backward()
        return [len(ys._op.parts or [None]), ys.numpy()] + [t.grad for t in tensors]

    first, *others = _per_thread_count(on_threads, run)
    assert [first[0]] + [o[0] for o in others] == [1, 2, 3, 4]
    for other in others:
        for p, q in zip(first[1:], other[1:]):
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-13)


def test_the_blas_is_set_through_threadpoolctl(two_blas_threads):
    """parallel's BLAS controls are threadpoolctl's; threadpool_info sees every BLAS at 1
    inside an op, and the count back after."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert all(isinstance(lib, threadpoolctl.LibController) for lib in parallel._blas)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    seen = []

    class Reads(sj.tensor.Op):
        def forward(self, x):
            seen.extend(i["num_threads"] for i in threadpoolctl.threadpool_info()
                        if i["user_api"] == "blas")
            return x

    Reads()(sj.Tensor(np.ones(3)))
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert 2 in before and set(seen) == {1} and after == before
