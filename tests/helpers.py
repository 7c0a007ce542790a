"""Shared checks: compare an op with PyTorch (float64) and with central differences."""

import numpy as np

import shenjing as sj


def _as_tuple(x):
    return x if isinstance(x, (tuple, list)) else (x,)


def _weighted_loss(outputs, weights):
    """sum_i sum(out_i * w_i): one scalar whose gradient is the random upstream gradient."""
    total = None
    for out, w in zip(outputs, weights):
        term = (out * w).sum()
        total = term if total is None else total + term
    return total


def check_against_torch(fn, torch_fn, *inputs, rtol=1e-7, atol=1e-9, seed=0, grads=True):
    """Run fn on shenjing Tensors and torch_fn on torch tensors built from the same float64
    inputs; assert equal outputs (shape, dtype, values) and equal gradients of every floating
    input under one random upstream gradient. Non-array inputs are passed through unchanged."""
    import torch

    rng = np.random.default_rng(seed)
    is_array = [isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating) for x in inputs]
    ours = [sj.Tensor(x, requires_grad=grads) if a else x for x, a in zip(inputs, is_array)]
    theirs = [torch.tensor(x, requires_grad=grads) if a else x for x, a in zip(inputs, is_array)]
    our_out, their_out = _as_tuple(fn(*ours)), _as_tuple(torch_fn(*theirs))
    assert len(our_out) == len(their_out), f"{len(our_out)} outputs vs torch {len(their_out)}"
    for mine, ref in zip(our_out, their_out):
        ref_np = ref.detach().numpy()
        assert mine.shape == ref_np.shape, f"shape {mine.shape} vs torch {ref_np.shape}"
        assert mine.dtype == ref_np.dtype, f"dtype {mine.dtype} vs torch {ref_np.dtype}"
        np.testing.assert_allclose(mine.numpy(), ref_np, rtol=rtol, atol=atol, err_msg="forward")
    if not grads:
        return our_out
    weights = [rng.standard_normal(o.shape) for o in our_out]
    _weighted_loss(our_out, weights).backward()
    _weighted_loss(their_out, [torch.tensor(w) for w in weights]).backward()
    for i, (mine, ref, a) in enumerate(zip(ours, theirs, is_array)):
        if not a:
            continue
        ref_grad = np.zeros(mine.shape) if ref.grad is None else ref.grad.numpy()
        mine_grad = np.zeros(mine.shape) if mine.grad is None else mine.grad
        np.testing.assert_allclose(
            mine_grad, ref_grad, rtol=rtol, atol=atol, err_msg=f"gradient of input {i}"
        )
    return our_out


def check_numeric_grad(fn, *inputs, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0, max_points=40):
    """Compare the autograd gradient of every floating input with central differences.

    A random upstream gradient weighs the outputs; at most max_points coordinates per input
    are probed (chosen at random), which keeps large inputs cheap.
    """
    rng = np.random.default_rng(seed)
    is_array = [isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating) for x in inputs]
    arrays = [np.array(x, dtype=np.float64) if a else x for x, a in zip(inputs, is_array)]
    tensors = [sj.Tensor(x, requires_grad=True) if a else x for x, a in zip(arrays, is_array)]
    outputs = _as_tuple(fn(*tensors))
    weights = [rng.standard_normal(o.shape) for o in outputs]
    _weighted_loss(outputs, weights).backward()

    def loss_at():
        with sj.no_grad():
            outs = _as_tuple(fn(*[sj.Tensor(x) if a else x for x, a in zip(arrays, is_array)]))
            return float(sum((o.numpy() * w).sum() for o, w in zip(outs, weights)))

    for i, (x, a) in enumerate(zip(arrays, is_array)):
        if not a:
            continue
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros(x.shape)
        flat = x.reshape(-1)
        points = np.arange(flat.size)
        if flat.size > max_points:
            points = rng.choice(flat.size, max_points, replace=False)
        for p in points:
            original = flat[p]
            flat[p] = original + eps
            up = loss_at()
            flat[p] = original - eps
            down = loss_at()
            flat[p] = original
            numeric = (up - down) / (2 * eps)
            np.testing.assert_allclose(
                analytic.reshape(-1)[p], numeric, rtol=rtol, atol=atol,
                err_msg=f"numeric gradient of input {i} at flat index {p}",
            )


def assert_equal_to_rounding(actual, expected, *, magnitude, length, err_msg=""):
    """Two computations of the same sums of `length` products each, in another order: a BLAS
    splits, blocks and vectorizes a product by the CPU it finds and by the product's shape, so
    the same sums over other chunks of rows or on another processor round differently.

    Each sum is within length * u * sum|a_i b_i| of the exact one (u = eps / 2, the classic
    bound for any order of summation), so the two are within length * eps * magnitude, where
    `magnitude` bounds sum|a_i b_i| (an array broadcasting against the results, or a scalar).
    The bound is from the dtype and the reduction length alone; a wrong index or a lost term
    is off by the size of a term, orders of magnitude more.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} vs {expected.shape}"
    assert actual.dtype == expected.dtype, f"dtype {actual.dtype} vs {expected.dtype}"
    bound = length * np.finfo(actual.dtype).eps * np.asarray(magnitude, np.float64)
    error = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    worst = np.unravel_index(np.argmax(error - bound), error.shape) if error.size else ()
    assert np.all(error <= bound), (
        f"{err_msg} differs by {error[worst]:.3g} at {worst}, beyond the rounding bound "
        f"{np.broadcast_to(bound, error.shape)[worst]:.3g} (length {length}, {actual.dtype})")
