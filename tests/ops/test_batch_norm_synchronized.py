"""batch_norm(synchronized=True) over R ranks simulated by R threads of one process, against
PyTorch float64 on the whole (global) batch: output, input gradient, gamma/beta gradients summed
over the ranks, and the moving statistics, to 1e-12 in float64."""

import threading

import numpy as np
import pytest

import shenjing as sj
from shenjing.distribution import context
from shenjing.errors import ArgumentError
from shenjing.ops.norm import batch_norm

torch = pytest.importorskip("torch")
F = torch.nn.functional
MOMENTUM = 0.9


class FakeRanks:
    """A distribution of `size` ranks, one thread each: `rank` and the sample scale are per
    thread; allgather / allreduce_sum exchange buffers at a barrier (the sum in rank order)."""

    def __init__(self, size):
        self.size, self.communicator = size, self
        self._local = threading.local()
        self._barrier = threading.Barrier(size, timeout=30)
        self._buffers = [None] * size
        self.calls = [[] for _ in range(size)]  # per rank, the collectives it made

    @property
    def rank(self):
        return self._local.rank

    def scale(self):
        return self._local.scale

    def _exchange(self, name, array):
        self.calls[self.rank].append(name)
        self._buffers[self.rank] = np.array(array, copy=True)
        self._barrier.wait()
        rows = np.stack(self._buffers)
        self._barrier.wait()  # all have read before any rank writes again
        return rows

    def allgather(self, array):
        return self._exchange("allgather", array)

    def allreduce_sum(self, array):
        rows = self._exchange("allreduce_sum", array)
        total = rows[0].copy()
        for row in rows[1:]:
            total += row
        return total

    def run(self, work, scales):
        """work(rank) on every rank's thread; the results in rank order."""
        results, errors = [None] * self.size, []

        def target(r):
            self._local.rank, self._local.scale = r, scales[r]
            try:
                results[r] = work(r)
            except BaseException as error:  # noqa: BLE001 - handed to the main thread
                errors.append(error)
                self._barrier.abort()

        threads = [threading.Thread(target=target, args=(r,)) for r in range(self.size)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results


@pytest.fixture
def ranks(monkeypatch):
    def install(size):
        fake = FakeRanks(size)
        monkeypatch.setattr(context, "_active", fake)
        # context._step is one module global: the sample scale is looked up per thread here
        monkeypatch.setattr(context, "sample_scale", fake.scale)
        return fake

    return install


def _pieces(x, counts, axis):
    """The global batch cut into the ranks' slices; a count of 0 is a rank with a stand-in
    sample (a copy of sample 0, scale 0)."""
    pieces, start = [], 0
    for n in counts:
        pieces.append(x[start : start + n] if n else x[:1].copy())
        start += n
    return pieces, [1.0 if n else 0.0 for n in counts]


def _synchronized_step(fake, xs, gys, scales, gamma, beta, axis, dtype=np.float64):
    """Each rank's forward and backward: [(y, dx, dgamma, dbeta, moving mean, moving var)]."""
    C = len(gamma)

    def work(r):
        x = sj.Tensor(xs[r].astype(dtype), requires_grad=True)
        g = sj.Tensor(gamma.astype(dtype), requires_grad=True)
        b = sj.Tensor(beta.astype(dtype), requires_grad=True)
        mean, var = np.linspace(-1, 1, C).astype(dtype), np.linspace(1, 2, C).astype(dtype)
        y = batch_norm(x, g, b, mean, var, training=True, momentum=MOMENTUM, axis=axis,
                       synchronized=True)
        y.backward(gys[r].astype(dtype))
        return y.numpy(), x.grad, g.grad, b.grad, mean, var

    return fake.run(work, scales)


def _torch_reference(x, gy, gamma, beta, axis):
    """y, dx, dgamma, dbeta of the loss sum(gy * y) and the moving statistics, whole batch."""
    t = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    C = len(gamma)
    mean, var = torch.linspace(-1, 1, C, dtype=torch.float64), torch.linspace(1, 2, C,
                                                                              dtype=torch.float64)
    y = F.batch_norm(t[0].movedim(axis, 1), mean.clone(), var.clone(), t[1], t[2],
                     training=True, eps=1e-3).movedim(1, axis)
    y.backward(torch.tensor(gy))
    # Keras's moving statistics: biased batch variance (PyTorch's running var is unbiased)
    dims = [d for d in range(x.ndim) if d != axis % x.ndim]
    batch_var, batch_mean = torch.var_mean(t[0].detach(), dim=dims, correction=0)
    moving = (MOMENTUM * mean + (1 - MOMENTUM) * batch_mean,
              MOMENTUM * var + (1 - MOMENTUM) * batch_var)
    return [a.detach().numpy() for a in (y, t[0].grad, t[1].grad, t[2].grad, *moving)]


def _close(ours, ref, rtol):
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * max(1.0, np.abs(ref).max()))


CASES = {  # name: (global batch shape, channel axis, samples per rank (0: a stand-in sample))
    "even 4+4": ((8, 3), -1, (4, 4)),
    "uneven 5+3": ((8, 5, 3), -1, (5, 3)),
    "three ranks 3+3+2": ((8, 4, 4, 3), -1, (3, 3, 2)),
    "stand-in rank": ((5, 2, 3, 4), -1, (3, 2, 0)),
    "one sample per rank, one stand-in": ((2, 3), -1, (1, 1, 0)),
    "channels first 4-D": ((7, 3, 4, 5), 1, (4, 3)),
    "channels first sequence": ((6, 2, 5), 1, (2, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_global_batch_statistics_and_gradients_against_torch(rng, ranks, name):
    shape, axis, counts = CASES[name]
    C = shape[axis]
    x = rng.standard_normal(shape) * 2 + 3
    gy = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    xs, scales = _pieces(x, counts, axis)
    gys, _ = _pieces(gy, counts, axis)
    # a stand-in rank's gradient seed is not zero here: its scale alone keeps it out
    gys = [g if s else rng.standard_normal(g.shape) for g, s in zip(gys, scales)]
    fake = ranks(len(counts))
    results = _synchronized_step(fake, xs, gys, scales, gamma, beta, axis)
    y_ref, dx_ref, dgamma_ref, dbeta_ref, mean_ref, var_ref = _torch_reference(
        x, gy, gamma, beta, axis)
    real = [r for r, s in zip(results, scales) if s]
    _close(np.concatenate([r[0] for r in real]), y_ref, 1e-12)
    _close(np.concatenate([r[1] for r in real]), dx_ref, 1e-12)
    _close(sum(r[2] for r in results), dgamma_ref, 1e-12)
    _close(sum(r[3] for r in results), dbeta_ref, 1e-12)
    for r in results:  # the same moving statistics, bit for bit, on every rank
        np.testing.assert_array_equal(r[4], results[0][4])
        np.testing.assert_array_equal(r[5], results[0][5])
    _close(results[0][4], mean_ref, 1e-12)
    _close(results[0][5], var_ref, 1e-12)
    for r, s in zip(results, scales):
        if not s:  # a stand-in sample adds nothing to the parameter gradients, and gets no
            # input gradient (the global statistics do not depend on it)
            assert not r[2].any() and not r[3].any() and not r[1].any()
    # one collective each way per rank
    assert fake.calls == [["allgather", "allreduce_sum"]] * len(counts)


def test_numeric_gradient_of_the_global_loss(rng, ranks):
    shape, counts = (6, 2, 3), (2, 3, 1)
    x, w = rng.standard_normal(shape) + 1, rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    fake = ranks(len(counts))
    xs, scales = _pieces(x, counts, -1)
    ws, _ = _pieces(w, counts, -1)
    dx = np.concatenate([r[1] for r in _synchronized_step(fake, xs, ws, scales, gamma, beta,
                                                          -1)])

    def loss(x_global):
        def work(r):
            y = batch_norm(_pieces(x_global, counts, -1)[0][r], gamma, beta, training=True,
                           synchronized=True)
            return float((y.numpy() * ws[r]).sum())

        return sum(fake.run(work, scales))

    eps = 1e-6
    for index in [tuple(rng.integers(0, n) for n in shape) for _ in range(8)]:
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        numeric = (loss(up) - loss(down)) / (2 * eps)
        assert abs(numeric - dx[index]) <= 1e-6 * max(1.0, abs(dx[index]))


def test_float32_to_rounding(rng, ranks):
    shape, counts = (9, 3, 4), (4, 5)
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    xs, scales = _pieces(x, counts, -1)
    gys, _ = _pieces(gy, counts, -1)
    results = _synchronized_step(ranks(2), xs, gys, scales, gamma, beta, -1, np.float32)
    refs = _torch_reference(x.astype(np.float64), gy.astype(np.float64),
                            gamma.astype(np.float32).astype(np.float64),
                            beta.astype(np.float32).astype(np.float64), -1)
    assert all(a.dtype == np.float32 for r in results for a in r)
    ours = [np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results]),
            sum(r[2] for r in results), sum(r[3] for r in results), results[0][4], results[0][5]]
    for got, ref in zip(ours, refs):
        _close(got, ref, 2e-5)


def test_too_small_global_batch_is_refused_on_every_rank(rng, ranks):
    fake = ranks(2)
    xs = [rng.standard_normal((1, 3)), rng.standard_normal((1, 3))]

    def work(r):
        with pytest.raises(ArgumentError, match="global batch.*got 1 over 2 ranks"):
            batch_norm(xs[r], training=True, synchronized=True)
        return True

    assert fake.run(work, [1.0, 0.0]) == [True, True]


@pytest.mark.parametrize("axis, shape", [(-1, (6, 4, 3)), (1, (5, 3, 2, 2))])
def test_without_distribution_identical_to_unsynchronized(rng, monkeypatch, axis, shape):
    x = rng.standard_normal(shape).astype(np.float32) + 2
    gy = rng.standard_normal(shape).astype(np.float32)
    C = shape[axis]
    gamma, beta = (rng.standard_normal(C).astype(np.float32) for _ in range(2))
    for active in (None, FakeRanks(1)):  # no distribution, and one process
        monkeypatch.setattr(context, "_active", active)
        outs = []
        for synchronized in (False, True):
            for training in (True, False):
                t = [sj.Tensor(a, requires_grad=True) for a in (x, gamma, beta)]
                mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)
                y = batch_norm(*t, mean, var, training=training, axis=axis,
                               synchronized=synchronized)
                y.backward(gy)
                outs.append([y.numpy(), *(a.grad for a in t), mean, var])
        for plain, synced in zip(outs[:2], outs[2:]):
            for a, b in zip(plain, synced):
                np.testing.assert_array_equal(a, b)
        if active is not None:
            assert active.calls == [[]]


def test_inference_makes_no_collective(rng, ranks):
    fake = ranks(2)
    x = rng.standard_normal((4, 3))

    def work(r):
        return batch_norm(x, moving_mean=np.zeros(3), moving_variance=np.ones(3),
                          synchronized=True).numpy()

    ys = fake.run(work, [1.0, 1.0])
    np.testing.assert_allclose(ys[0], x / np.sqrt(1 + 1e-3), rtol=1e-15)
    assert fake.calls == [[], []]


def test_synchronized_must_be_a_bool():
    with pytest.raises(TypeError, match="synchronized must be True or False"):
        batch_norm(np.zeros((2, 3)), training=True, synchronized="yes")
