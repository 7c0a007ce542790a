import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import norm
from shenjing.ops.norm import batch_norm
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _split(params, has_gamma, has_beta):
    params = list(params)
    gamma = params.pop(0) if has_gamma else None
    beta = params.pop(0) if has_beta else None
    return gamma, beta


def _ours(has_gamma, has_beta, training, eps, moving=(None, None), axis=-1, momentum=0.99):
    def fn(x, *params):
        gamma, beta = _split(params, has_gamma, has_beta)
        return batch_norm(x, gamma, beta, *moving, training=training, momentum=momentum,
                          epsilon=eps, axis=axis)

    return fn


def _theirs(has_gamma, has_beta, training, eps, moving=(None, None), axis=-1, momentum=0.99):
    """torch.nn.functional.batch_norm with the channel axis moved to 1 and back."""

    def fn(x, *params):
        gamma, beta = _split(params, has_gamma, has_beta)
        running = [None if m is None else torch.tensor(m) for m in moving]
        y = F.batch_norm(x.movedim(axis, 1), *running, gamma, beta, training=training,
                         momentum=1.0 - momentum, eps=eps)
        return y.movedim(1, axis)

    return fn


def _config(rng, rank):
    shape = tuple(int(n) for n in rng.integers(2, 5, size=rank - 1)) + (int(rng.integers(1, 6)),)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    C = shape[-1]
    moving = (rng.standard_normal(C), rng.uniform(0.5, 2.0, C))
    return x, rng.standard_normal(C), rng.standard_normal(C), moving


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_against_torch_random_configs(rng, rank):
    for _ in range(16):
        x, gamma, beta, moving = _config(rng, rank)
        training = bool(rng.integers(2))
        has_gamma, has_beta = bool(rng.integers(2)), bool(rng.integers(2))
        eps = float(rng.choice([1e-3, 1e-5, 0.1]))
        params = [p for p, has in ((gamma, has_gamma), (beta, has_beta)) if has]
        ours_moving = tuple(m.copy() for m in moving)
        check_against_torch(_ours(has_gamma, has_beta, training, eps, ours_moving),
                            _theirs(has_gamma, has_beta, training, eps, moving), x, *params)


@pytest.mark.parametrize("shape", [(32, 16, 16, 64), (7, 37, 41, 24), (3, 5000, 3), (300, 2100)])
def test_against_torch_large_inputs(rng, monkeypatch, shape):
    # several blocks shared by two threads, and a last block that the tile does not divide
    monkeypatch.setattr(norm.parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(norm.parallel, "THREADS", 2)
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
    check_against_torch(_ours(True, True, True, 1e-3), _theirs(True, True, True, 1e-3),
                        x, gamma, beta)


def test_against_torch_tiny_blocks(rng, monkeypatch):
    # many small blocks, an untiled remainder block and two threads on a small input
    monkeypatch.setattr(norm, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(norm, "_TILE_ELEMS", 12)
    monkeypatch.setattr(norm, "_SUM_ELEMS", 6)
    monkeypatch.setattr(norm.parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(norm.parallel, "THREADS", 2)
    blocks = norm._Blocks(5 * 23, 3, np.dtype(np.float64))
    assert len(blocks.spans) > 8 and blocks.parallel and (5 * 23) % blocks.reps != 0
    for training in (True, False):
        x = rng.standard_normal((5, 23, 3)) + 4
        moving = (rng.standard_normal(3), rng.uniform(0.5, 2.0, 3))
        check_against_torch(_ours(True, True, training, 1e-3, moving),
                            _theirs(True, True, training, 1e-3, moving),
                            x, rng.standard_normal(3), rng.standard_normal(3))


@pytest.mark.parametrize("shape, axis", [((4, 3, 5, 6), 1), ((4, 3, 5), 1), ((5, 4, 3), -2)])
def test_against_torch_channel_axis(rng, shape, axis):
    x = rng.standard_normal(shape) + 1
    C = shape[axis]
    moving = (rng.standard_normal(C), rng.uniform(0.5, 2.0, C))
    for training in (True, False):
        check_against_torch(_ours(True, True, training, 1e-3, moving, axis=axis),
                            _theirs(True, True, training, 1e-3, moving, axis=axis),
                            x, rng.standard_normal(C), rng.standard_normal(C))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("rank", [2, 4])
def test_numeric_grad(rng, training, rank):
    shape = (5, 3) if rank == 2 else (3, 2, 3, 4)
    C = shape[-1]
    x = rng.standard_normal(shape) * 2 + 1
    moving = (rng.standard_normal(C), rng.uniform(0.5, 2.0, C))
    fn = _ours(True, True, training, 1e-3, tuple(m.copy() for m in moving), momentum=1.0)
    check_numeric_grad(fn, x, rng.standard_normal(C), rng.standard_normal(C))


def test_moving_statistics_against_torch(rng):
    # Keras: moving = k * moving + (1 - k) * batch, biased variance. PyTorch, with momentum
    # 1 - k, stores the unbiased variance: rv_t = k rv_{t-1} + (1 - k) b_t m/(m-1). Unrolled from
    # the same start v0: rv_T - k^T v0 = m/(m-1) (ours_T - k^T v0), for m values per channel.
    k, steps, shape = 0.9, 5, (4, 3, 2, 5)
    m, C = 4 * 3 * 2, shape[-1]
    mean0, var0 = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    ours_mean, ours_var = mean0.copy(), var0.copy()
    moving_t = (torch.tensor(mean0), torch.tensor(var0))
    for _ in range(steps):
        x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
        batch_norm(x, moving_mean=ours_mean, moving_variance=ours_var, training=True, momentum=k)
        F.batch_norm(torch.tensor(x).movedim(-1, 1), *moving_t, training=True, momentum=1 - k)
    np.testing.assert_allclose(ours_mean, moving_t[0].numpy(), rtol=1e-12, atol=1e-14)
    start = k**steps * var0
    np.testing.assert_allclose(moving_t[1].numpy() - start, m / (m - 1) * (ours_var - start),
                               rtol=1e-12, atol=1e-14)


def test_moving_statistics_as_tensors_and_formula(rng):
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    mean_t = sj.Tensor(np.zeros(3, np.float32))
    var_t = sj.Tensor(np.ones(3, np.float32))
    batch_norm(x, moving_mean=mean_t, moving_variance=var_t, training=True, momentum=0.8)
    x64 = x.astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(mean_t.data, 0.2 * x64.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var_t.data, 0.8 + 0.2 * x64.var(axis=0), rtol=1e-6)
    assert mean_t.dtype == var_t.dtype == np.float32


def test_inference_uses_moving_statistics_only(rng):
    x = rng.standard_normal((4, 3))
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y = batch_norm(x, gamma, beta, mean, var, epsilon=0.01)
    np.testing.assert_allclose(y.numpy(), gamma * (x - mean) / np.sqrt(var + 0.01) + beta,
                               rtol=1e-12)


@pytest.mark.parametrize("dtype, offset, var_tol, y_tol, grad_tol", [
    (np.float64, 1e8, 1e-12, 1e-7, 1e-7),
    # x is quantized to 1e-3 here and y = x * scale + shift rounds at |x * scale| ~ 1e4 |gamma|:
    # PyTorch's float32 batch norm is no closer (2e-3 to 8e-3 on such data)
    (np.float32, 1e4, 1e-5, 2e-3, 2e-3),
])
def test_two_pass_accuracy_large_offset(rng, dtype, offset, var_tol, y_tol, grad_tol):
    x = (offset + rng.standard_normal((64, 8, 8, 4))).astype(dtype)
    deviation = x.astype(np.float64).reshape(-1, 4) - offset  # exact: x is within 2x of offset
    ref_mean, ref_var = offset + deviation.mean(axis=0), deviation.var(axis=0)
    # the one-pass formula E[x^2] - E[x]^2 is useless here, so this test can tell them apart
    flat = x.reshape(-1, 4)
    one_pass = (flat * flat).mean(axis=0) - flat.mean(axis=0) ** 2
    assert np.max(np.abs(one_pass - ref_var) / ref_var) > 1e-2
    mean, var = np.zeros(4, dtype), np.zeros(4, dtype)
    params = [sj.Tensor(a, requires_grad=True) for a in (x, rng.standard_normal(4).astype(dtype),
                                                         rng.standard_normal(4).astype(dtype))]
    y = batch_norm(*params, mean, var, training=True, momentum=0.0)
    gy = rng.standard_normal(x.shape)
    y.backward(gy.astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(var, ref_var, rtol=var_tol)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-7 if dtype == np.float32 else 1e-15)
    # torch in float64 on the same values as the reference for the output and the gradients
    refs = [torch.tensor(p.numpy().astype(np.float64), requires_grad=True) for p in params]
    y_ref = F.batch_norm(refs[0].movedim(-1, 1), None, None, refs[1], refs[2], training=True,
                         eps=1e-3).movedim(1, -1)
    y_ref.backward(torch.tensor(gy))
    y_tol *= max(1.0, float(np.abs(params[1].numpy()).max()))
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), atol=y_tol)
    for ours, ref in zip(params, refs):
        ref = ref.grad.numpy()
        np.testing.assert_allclose(ours.grad, ref, atol=grad_tol * np.abs(ref).max())


def test_float32_stays_float32(rng):
    x = sj.Tensor(rng.standard_normal((8, 4, 4, 3)).astype(np.float32), requires_grad=True)
    gamma = sj.Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    beta = sj.Tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)
    mean, var = np.zeros(3, np.float32), np.ones(3, np.float32)
    for training in (True, False):
        y = batch_norm(x, gamma, beta, mean, var, training=training)
        assert y.dtype == np.float32
        x.grad = gamma.grad = beta.grad = None
        y.backward(np.ones(y.shape, np.float32))
        assert x.grad.dtype == gamma.grad.dtype == beta.grad.dtype == np.float32
        assert mean.dtype == var.dtype == np.float32


def test_float32_matches_float64(rng):
    x = rng.standard_normal((16, 8, 8, 16)) * 3 + 2
    gamma, beta, gy = rng.standard_normal(16), rng.standard_normal(16), rng.standard_normal(x.shape)
    results = []
    for dtype in (np.float32, np.float64):
        ts = [sj.Tensor(a.astype(dtype), requires_grad=True) for a in (x, gamma, beta)]
        y = batch_norm(*ts, training=True)
        y.backward(gy.astype(dtype))
        results.append([y.numpy()] + [t.grad for t in ts])
    for low, high in zip(*results):
        np.testing.assert_allclose(low, high, rtol=1e-4, atol=1e-4 * np.abs(high).max())


def test_pooled_outputs_are_not_overwritten(rng):
    x = rng.standard_normal((32, 16, 16, 64)).astype(np.float32)
    first = batch_norm(x, training=True)
    view = first.numpy()[::2]  # a view alone must keep its base from being reused
    copy, view_copy = first.numpy().copy(), view.copy()
    for _ in range(3):
        batch_norm(x * 2 + 1, training=True)
    np.testing.assert_array_equal(first.numpy(), copy)
    del first
    for _ in range(3):
        batch_norm(x * 3 - 1, training=True)
    np.testing.assert_array_equal(view, view_copy)


def test_gradients_of_two_batch_norms_in_one_graph(rng):
    # both backward passes draw gx from the pool while the engine still holds the other one
    x = rng.standard_normal((32, 16, 16, 64))
    gamma = rng.standard_normal(64)

    def fn(x, gamma):
        return batch_norm(batch_norm(x, gamma, training=True) * 3, gamma, training=True)

    def fn_torch(x, gamma):
        h = F.batch_norm(x.movedim(-1, 1), None, None, gamma, training=True, eps=1e-3)
        return F.batch_norm(h * 3, None, None, gamma, training=True, eps=1e-3).movedim(1, -1)

    check_against_torch(fn, fn_torch, x, gamma)


@pytest.mark.parametrize("kwargs, match", [
    ({"x": np.zeros(4)}, r"rank >= 2 .* got shape \(4,\)"),
    ({"gamma": np.ones(4)}, r"gamma of shape \(3,\) .* got shape \(4,\)"),
    ({"beta": np.ones((3, 1))}, r"beta of shape \(3,\) .* got shape \(3, 1\)"),
    ({"moving_mean": np.zeros(2), "moving_variance": np.ones(3)}, r"moving_mean of shape \(3,\)"),
    ({"momentum": 1.5}, r"momentum must be a number in \[0, 1\], got 1.5"),
    ({"momentum": -0.1}, r"momentum must be a number in \[0, 1\], got -0.1"),
    ({"epsilon": 0.0}, r"epsilon must be a number > 0, got 0.0"),
    ({"epsilon": -1e-3}, r"epsilon must be a number > 0"),
    ({"axis": 2}, r"axis 2 is out of range for an input of rank 2"),
    ({"axis": -3}, r"axis -3 is out of range"),
    ({"x": np.zeros((1, 3)), "training": True}, r"more than one value per channel.*\(1, 3\)"),
    ({"x": np.zeros((1, 1, 1, 3)), "training": True}, r"1 per channel on axis 3\): the variance of one value is 0"),
    ({"training": False}, r"inference \(training=False\) normalizes with moving_mean"),
    ({"moving_mean": np.zeros(3), "training": True}, r"both moving_mean and moving_variance"),
])
def test_errors(kwargs, match):
    args = {"x": np.zeros((4, 3)), "training": True}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        batch_norm(**args)


def test_type_errors():
    with pytest.raises(TypeError, match="moving_mean must be a floating NumPy array or Tensor"):
        batch_norm(np.zeros((4, 3)), moving_mean=[0.0] * 3, moving_variance=np.ones(3))
    with pytest.raises(TypeError, match="axis must be an int"):
        batch_norm(np.zeros((4, 3)), training=True, axis=1.0)
    with pytest.raises(TypeError, match="batch_norm: expected a floating-point array"):
        batch_norm(np.zeros((4, 3), dtype=np.int64), training=True)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_threaded_path_works_in_a_forked_child(rng, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(norm.parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(norm.parallel, "THREADS", 2)
    x = rng.standard_normal((32, 16, 16, 64)).astype(np.float32)
    expected = batch_norm(x, training=True).numpy().copy()  # starts the worker thread here
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_forked_batch_norm, (x,)).get(timeout=60)
    np.testing.assert_array_equal(result, expected)


def _forked_batch_norm(x):
    return batch_norm(x, training=True).numpy().copy()
