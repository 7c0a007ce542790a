from functools import partial

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.conv import resolve_padding
from shenjing.ops.pool import (
    avg_pool1d,
    avg_pool2d,
    global_avg_pool1d,
    global_avg_pool2d,
    global_max_pool1d,
    global_max_pool2d,
    max_pool1d,
    max_pool2d,
)
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_pool2d(mode, window, strides, pads):
    """NHWC pooling in torch. Max pads with -inf; average is sum-pool(zero-padded x) divided by
    sum-pool(zero-padded ones), so only real pixels count, even for asymmetric pads."""
    (top, bottom), (left, right) = pads
    torch_pads = (left, right, top, bottom)

    def pool(x):
        x = x.permute(0, 3, 1, 2)
        if mode == "max":
            y = F.max_pool2d(F.pad(x, torch_pads, value=-float("inf")), window, strides)
        else:
            total = F.avg_pool2d(F.pad(x, torch_pads), window, strides, divisor_override=1)
            ones = F.pad(torch.ones_like(x), torch_pads)
            y = total / F.avg_pool2d(ones, window, strides, divisor_override=1)
        return y.permute(0, 2, 3, 1)

    return pool


def torch_pool1d(mode, window, stride, pads):
    def pool(x):
        x = x.permute(0, 2, 1)
        if mode == "max":
            y = F.max_pool1d(F.pad(x, pads, value=-float("inf")), window, stride)
        else:
            total = F.avg_pool1d(F.pad(x, pads), window, stride) * window
            ones = F.pad(torch.ones_like(x), pads)
            y = total / (F.avg_pool1d(ones, window, stride) * window)
        return y.permute(0, 2, 1)

    return pool


OURS_2D = {"max": max_pool2d, "avg": avg_pool2d}
OURS_1D = {"max": max_pool1d, "avg": avg_pool1d}


def random_pool2d_case(rng):
    while True:
        window = tuple(int(v) for v in rng.integers(1, 5, 2))
        strides = None if rng.integers(2) else tuple(int(v) for v in rng.integers(1, 4, 2))
        padding = ("valid", "same", "SAME")[rng.integers(3)]
        N, C = int(rng.integers(1, 4)), int(rng.integers(1, 6))
        H, W = (int(v) for v in rng.integers(1, 12, 2))
        s = strides or window
        pads = resolve_padding(padding, (H, W), window, s, (1, 1))
        if all(n + sum(p) >= k for n, p, k in zip((H, W), pads, window)):
            return rng.standard_normal((N, H, W, C)), window, strides, padding, pads


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool2d_matches_torch_random_configs(rng, mode):
    for _ in range(40):
        x, window, strides, padding, pads = random_pool2d_case(rng)
        ours = partial(OURS_2D[mode], pool_size=window, strides=strides, padding=padding)
        check_against_torch(ours, torch_pool2d(mode, window, strides or window, pads), x)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool1d_matches_torch_random_configs(rng, mode):
    for _ in range(30):
        window, stride = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        padding = ("valid", "same")[rng.integers(2)]
        W = int(rng.integers(1, 14))
        (pads,) = resolve_padding(padding, (W,), (window,), (stride,), (1,))
        if W + sum(pads) < window:
            continue
        x = rng.standard_normal((int(rng.integers(1, 4)), W, int(rng.integers(1, 6))))
        ours = partial(OURS_1D[mode], pool_size=window, strides=stride, padding=padding)
        check_against_torch(ours, torch_pool1d(mode, window, stride, pads), x)


def test_avg_pool_same_counts_only_real_pixels():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    y = avg_pool2d(x, 2, 1, "same").numpy()[0, :, :, 0]
    # windows at the bottom/right edge see 2 or 1 real pixels, not 4
    expected = [[3.0, 4.0, 4.5], [6.0, 7.0, 7.5], [7.5, 8.5, 9.0]]
    np.testing.assert_allclose(y, expected)


def test_max_pool_ties_follow_torch(rng):
    # integer data makes ties common: the gradient goes to the first maximum of each window
    cases = [(2, None, "valid"), (3, 1, "valid"), ((3, 2), (2, 1), "same"), (2, None, "same")]
    for window, strides, padding in cases:
        w2 = (window,) * 2 if np.isscalar(window) else window
        s2 = w2 if strides is None else (strides,) * 2 if np.isscalar(strides) else strides
        for _ in range(5):
            x = rng.integers(0, 3, (2, 7, 6, 3)).astype(float)
            pads = resolve_padding(padding, (7, 6), w2, s2, (1, 1))
            ours = partial(max_pool2d, pool_size=window, strides=strides, padding=padding)
            check_against_torch(ours, torch_pool2d("max", w2, s2, pads), x)
    x = rng.integers(0, 2, (2, 9, 3)).astype(float)
    check_against_torch(lambda x: max_pool1d(x, 3), torch_pool1d("max", 3, 3, (0, 0)), x)


def test_max_pool_with_relu_matches_torch_relu_then_pool(rng):
    """relu=True against torch's ReLU then max pool, forward and backward in float64: random
    configurations, and integer data around zero (ties, zeros, all-negative windows)."""
    for _ in range(30):
        x, window, strides, padding, pads = random_pool2d_case(rng)
        if rng.integers(2):
            x = np.round(x * 1.5)  # ties and zeros
        ours = partial(max_pool2d, pool_size=window, strides=strides, padding=padding, relu=True)
        pool = torch_pool2d("max", window, strides or window, pads)
        check_against_torch(ours, lambda t, pool=pool: pool(torch.relu(t)), x)
    for window, stride, padding in ((2, 2, "valid"), (3, 1, "same"), (3, 2, "same")):
        x = rng.integers(-2, 3, (2, 9, 3)).astype(float)
        (pads,) = resolve_padding(padding, (9,), (window,), (stride,), (1,))
        pool = torch_pool1d("max", window, stride, pads)
        check_against_torch(partial(max_pool1d, pool_size=window, strides=stride,
                                    padding=padding, relu=True),
                            lambda t, pool=pool: pool(torch.relu(t)), x)


def test_max_pool_with_relu_equals_relu_of_the_pool_bit_for_bit(rng):
    """float32, with and without autograd: the same values as relu(max_pool2d(x)), and the
    same input gradient (here the windows all tile the input and many maxima are <= 0)."""
    x = rng.integers(-3, 3, (4, 12, 10, 5)).astype(np.float32)
    g = rng.standard_normal((4, 6, 5, 5)).astype(np.float32)
    results = []
    for fused in (True, False):
        with sj.no_grad():
            plain = max_pool2d(x, relu=True) if fused else sj.ops.relu(max_pool2d(x))
        t = sj.Tensor(x, requires_grad=True)
        y = max_pool2d(t, relu=True) if fused else sj.ops.relu(max_pool2d(t))
        y.backward(g)
        results.append((plain.numpy(), y.numpy(), t.grad))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert (results[0][1] == 0).any() and (results[0][1] > 0).any()  # both kinds of window


def test_global_pools_match_torch(rng):
    x = rng.standard_normal((3, 5, 4, 6))
    x1 = rng.standard_normal((3, 7, 6))
    ties = rng.integers(0, 2, (2, 3, 3, 4)).astype(float)  # amax splits ties evenly
    for keepdims in (False, True):
        cases = [
            (global_avg_pool2d, lambda t, k: t.mean(dim=(1, 2), keepdim=k), x),
            (global_max_pool2d, lambda t, k: torch.amax(t, dim=(1, 2), keepdim=k), x),
            (global_max_pool2d, lambda t, k: torch.amax(t, dim=(1, 2), keepdim=k), ties),
            (global_avg_pool1d, lambda t, k: t.mean(dim=1, keepdim=k), x1),
            (global_max_pool1d, lambda t, k: torch.amax(t, dim=1, keepdim=k), x1),
        ]
        for ours, theirs, data in cases:
            ours, theirs = partial(ours, keepdims=keepdims), partial(theirs, k=keepdims)
            check_against_torch(ours, theirs, data)
    assert global_avg_pool2d(x, keepdims=True).shape == (3, 1, 1, 6)
    assert global_max_pool1d(x1).shape == (3, 6)


def test_pool_numeric_gradients(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    x1 = rng.standard_normal((2, 9, 3))
    check_numeric_grad(lambda x: max_pool2d(x, 2), x)
    check_numeric_grad(lambda x: max_pool2d(x, (3, 2), (2, 1), "same"), x)
    check_numeric_grad(lambda x: avg_pool2d(x, 2, padding="same"), x)
    check_numeric_grad(lambda x: avg_pool2d(x, 3, (1, 2), "same"), x)
    check_numeric_grad(lambda x: max_pool1d(x, 3, 2, "same"), x1)
    check_numeric_grad(lambda x: avg_pool1d(x, 2, 1), x1)
    check_numeric_grad(global_avg_pool2d, x)
    check_numeric_grad(global_max_pool2d, x)
    check_numeric_grad(global_avg_pool1d, x1)
    check_numeric_grad(global_max_pool1d, x1)


def test_pool_second_backward_accumulates(rng):
    x = rng.standard_normal((2, 7, 6, 3))
    pads = ((1, 1), (0, 1))  # 'same' for a 3x2 window at stride 1
    for mode in ("max", "avg"):
        xs, xt = sj.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gy = rng.standard_normal((2, 7, 6, 3))
        y = OURS_2D[mode](xs, (3, 2), 1, "same")
        y_ref = torch_pool2d(mode, (3, 2), (1, 1), pads)(xt)
        for _ in range(2):
            y.backward(gy)
            y_ref.backward(torch.tensor(gy), retain_graph=True)
        np.testing.assert_allclose(xs.grad, xt.grad.numpy(), rtol=1e-7, atol=1e-9)


def test_pool_no_grad_matches_torch(rng):
    x = rng.standard_normal((2, 6, 7, 3))
    with sj.no_grad():
        y = max_pool2d(sj.Tensor(x, requires_grad=True), 2, padding="same")
    ref = torch_pool2d("max", (2, 2), (2, 2), ((0, 0), (0, 1)))(torch.tensor(x))
    np.testing.assert_allclose(y.numpy(), ref.numpy())


@pytest.mark.parametrize(
    "pool", [max_pool2d, avg_pool2d, global_max_pool2d, global_avg_pool2d]
)
def test_pool_float32_stays_float32(rng, pool):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    xs, xt = sj.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    if pool in (max_pool2d, avg_pool2d):
        y = pool(xs, 2, padding="same")
        y_ref = torch_pool2d("max" if pool is max_pool2d else "avg", (2, 2), (2, 2),
                             ((0, 0), (0, 0)))(xt)
    else:
        y = pool(xs)
        y_ref = xt.mean(dim=(1, 2)) if pool is global_avg_pool2d else torch.amax(xt, dim=(1, 2))
    assert y.dtype == np.float32
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    y_ref.backward(torch.tensor(gy))
    assert xs.grad.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xs.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    x1 = x[:, 0]
    assert max_pool1d(x1, 2).dtype == avg_pool1d(x1, 2).dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: max_pool2d(np.zeros((2, 4, 4)), 2),
         (r"max_pool2d: expected input of rank 4 \(batch, height, width, channels\), got shape "
          r"\(2, 4, 4\)")),
        (lambda: avg_pool1d(np.zeros((2, 4, 4, 1)), 2),
         r"avg_pool1d: expected input of rank 3 \(batch, width, channels\), got shape"),
        (lambda: max_pool2d(np.zeros((1, 4, 4, 1)), 0),
         r"max_pool2d: pool_size must be positive, got 0"),
        (lambda: avg_pool2d(np.zeros((1, 4, 4, 1)), (2, 2, 2)),
         r"avg_pool2d: pool_size must be an int or a tuple of 2 ints, got \(2, 2, 2\)"),
        (lambda: max_pool2d(np.zeros((1, 4, 4, 1)), 2, (1, 0)),
         r"max_pool2d: strides must be positive, got \(1, 0\)"),
        (lambda: max_pool1d(np.zeros((1, 4, 1)), 2, 1.5),
         r"max_pool1d: strides must be an int or a tuple of 1 ints, got 1.5"),
        (lambda: max_pool2d(np.zeros((1, 4, 4, 1)), 2, padding="full"),
         r"max_pool2d: padding must be 'valid' or 'same', got 'full'"),
        (lambda: avg_pool2d(np.zeros((1, 4, 4, 1)), 2, padding=1),
         r"avg_pool2d: padding must be 'valid' or 'same', got 1"),
        (lambda: max_pool2d(np.zeros((1, 1, 4, 1)), 2),
         (r"max_pool2d: the pool window height 2 is larger than the "
          r"padded input height 1 \(input 1, padding \(0, 0\)\); the output height would be 0")),
        (lambda: global_avg_pool2d(np.zeros((2, 4, 4))),
         r"global_avg_pool2d: expected input of rank 4 \(batch, height, width, channels\)"),
        (lambda: global_max_pool1d(np.zeros((2, 4, 4, 1))),
         r"global_max_pool1d: expected input of rank 3 \(batch, width, channels\), got shape"),
    ],
)
def test_pool_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("mode, relu", [("max", False), ("max", True), ("avg", False)])
def test_same_windows_cut_to_the_input_give_the_uncut_values_and_gradients(mode, relu):
    # pool_geometry cuts a 'same' window reaching past the input (MaxPooling1D(10**9) on 8
    # steps looped 10**9 times); every cut must read the same real pixels as the full window
    from shenjing.ops.conv import window_geometry
    from shenjing.ops.pool import Pool, pool_geometry

    rng = np.random.default_rng(0)
    cut = 0
    for n in range(1, 7):
        for k in range(1, 16, 2):
            for s in (1, 2, 3, 7):
                x = rng.standard_normal((2, 1, n, 2))
                gy_seed = rng.integers(1 << 30)
                window, pads, out = pool_geometry("t", (1, n), (1, k), (1, s), "same")
                full, _ = window_geometry("t", (1, n), (1, k), (1, s), "same", (1, 1))
                cut += window != (1, k)
                results = []
                for w, p in ((window, pads), ((1, k), full)):
                    t = sj.Tensor(x.copy(), requires_grad=True)
                    y = Pool("t", mode, w, (1, s), p, out, relu)(t)
                    gy = np.random.default_rng(gy_seed).standard_normal(y.shape)
                    (y * sj.Tensor(gy)).sum().backward()
                    results.append((y.data, t.grad))
                # the same max / the same real pixels summed in the same order: exact
                np.testing.assert_array_equal(results[0][0], results[1][0])
                np.testing.assert_array_equal(results[0][1], results[1][1])
    assert cut > 50  # the cut was exercised, not only the windows within the input
