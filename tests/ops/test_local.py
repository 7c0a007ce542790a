import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.local import local_conv2d
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _out(n, k, s):
    return (n - k) // s + 1


def _reference(kernel_size, strides):
    """torch: unfold the NCHW windows, reorder each to (kh, kw, c), one einsum per position."""
    (KH, KW), (SH, SW) = kernel_size, strides

    def fn(x, kernel, bias=None):
        N, H, W, C = x.shape
        OH, OW = _out(H, KH, SH), _out(W, KW, SW)
        cols = F.unfold(x.permute(0, 3, 1, 2), (KH, KW), stride=(SH, SW))  # (N, C*KH*KW, P)
        cols = cols.reshape(N, C, KH, KW, OH * OW).permute(0, 4, 2, 3, 1)
        y = torch.einsum("npk,pkf->npf", cols.reshape(N, OH * OW, KH * KW * C), kernel)
        y = y.reshape(N, OH, OW, -1)
        return y if bias is None else y + bias

    return fn


def _config(rng):
    KH, KW = (int(k) for k in rng.integers(1, 5, size=2))
    SH, SW = (int(s) for s in rng.integers(1, 5, size=2))
    H, W = KH + int(rng.integers(0, 7)), KW + int(rng.integers(0, 7))
    N, C, filters = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    OH, OW = _out(H, KH, SH), _out(W, KW, SW)
    x = rng.standard_normal((N, H, W, C))
    kernel = rng.standard_normal((OH * OW, KH * KW * C, filters))
    bias = rng.standard_normal((OH, OW, filters))
    return x, kernel, bias, (KH, KW), (SH, SW)


def test_against_torch_random_configs(rng):
    # overlapping (stride < kernel), tiling (stride = kernel) and gapped (stride > kernel)
    for _ in range(40):
        x, kernel, bias, ks, st = _config(rng)
        def ours(x, k, b, ks=ks, st=st):
            return local_conv2d(x, k, b, kernel_size=ks, strides=st)

        check_against_torch(ours, _reference(ks, st), x, kernel, bias)


def test_without_bias_against_torch(rng):
    x, kernel, _, ks, st = _config(rng)

    def ours(x, k):
        return local_conv2d(x, k, kernel_size=ks, strides=st)

    check_against_torch(ours, _reference(ks, st), x, kernel)


@pytest.mark.parametrize("ks, st", [((3, 2), (1, 1)), ((2, 3), (2, 3)), ((2, 2), (3, 4))])
def test_numeric_grad(ks, st, rng):
    x = rng.standard_normal((2, 7, 8, 2))
    OH, OW = _out(7, ks[0], st[0]), _out(8, ks[1], st[1])
    kernel = rng.standard_normal((OH * OW, ks[0] * ks[1] * 2, 3))
    bias = rng.standard_normal((OH, OW, 3))
    check_numeric_grad(lambda x, k, b: local_conv2d(x, k, b, kernel_size=ks, strides=st),
                       x, kernel, bias)


def test_keras2_kernel_layout(rng):
    """Position p = oh * OW + ow, window rows in (kh, kw, c) order: one output by hand."""
    x = rng.standard_normal((1, 5, 6, 2))
    kernel = rng.standard_normal((2 * 2, 3 * 2 * 2, 1))  # OH = 2, OW = 2 for kernel (3, 2)
    y = local_conv2d(x, kernel, kernel_size=(3, 2), strides=(2, 3)).numpy()
    oh, ow = 1, 1
    window = x[0, oh * 2 : oh * 2 + 3, ow * 3 : ow * 3 + 2, :]  # (kh, kw, c)
    expected = window.reshape(-1) @ kernel[oh * 2 + ow, :, 0]
    np.testing.assert_allclose(y[0, oh, ow, 0], expected, rtol=1e-12)


def test_matches_conv2d_when_every_position_has_the_same_kernel(rng):
    x = rng.standard_normal((2, 6, 7, 3))
    shared = rng.standard_normal((3, 2, 3, 4))  # (KH, KW, C, F)
    OH, OW = _out(6, 3, 1), _out(7, 2, 2)
    kernel = np.broadcast_to(shared.reshape(1, 3 * 2 * 3, 4), (OH * OW, 18, 4)).copy()
    y = local_conv2d(x, kernel, kernel_size=(3, 2), strides=(1, 2)).numpy()
    expected = sj.ops.conv2d(x, shared, strides=(1, 2)).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_float32_stays_float32(rng):
    x = sj.Tensor(rng.standard_normal((2, 5, 5, 2)).astype(np.float32), requires_grad=True)
    kernel = sj.Tensor(rng.standard_normal((4, 18, 3)).astype(np.float32), requires_grad=True)
    bias = sj.Tensor(np.zeros((2, 2, 3), np.float32), requires_grad=True)
    y = local_conv2d(x, kernel, bias, kernel_size=3, strides=2)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == kernel.grad.dtype == bias.grad.dtype == np.float32
    # every window sees each of its 9 pixels once: gbias = batch size, gkernel = window sums
    np.testing.assert_array_equal(bias.grad, np.full((2, 2, 3), 2, np.float32))
    window = x.numpy()[:, 2:5, 0:3, :].sum(axis=0).reshape(-1)  # position (1, 0) -> p = 2
    np.testing.assert_allclose(kernel.grad[2], np.repeat(window[:, None], 3, axis=1), rtol=1e-6)


def test_errors(rng):
    x = rng.standard_normal((2, 5, 5, 2))
    kernel = rng.standard_normal((9, 18, 1))
    with pytest.raises(ValueError, match=r"local_conv2d: expected input of rank 4 .*got shape "
                                         r"\(5, 5, 2\)"):
        local_conv2d(x[0], kernel, kernel_size=3)
    with pytest.raises(ValueError, match="input height 5 is smaller than the kernel height 6"):
        local_conv2d(x, kernel, kernel_size=(6, 3))
    with pytest.raises(ValueError, match=r"expected a kernel of shape \(9, 18, filters\).*got "
                                         r"shape \(4, 18, 1\)"):
        local_conv2d(x, kernel[:4], kernel_size=3)
    with pytest.raises(ValueError, match=r"expected a bias of shape .* = \(3, 3, 1\), got shape "
                                         r"\(1,\)"):
        local_conv2d(x, kernel, np.zeros(1), kernel_size=3)
    with pytest.raises(ValueError, match="strides must be positive"):
        local_conv2d(x, kernel, kernel_size=3, strides=0)
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2 ints"):
        local_conv2d(x, kernel, kernel_size=(3, 3, 3))
    with pytest.raises(TypeError, match="expected a floating-point array"):
        local_conv2d(x.astype(np.int64), kernel, kernel_size=3)
