"""depthwise_conv1d/2d: values and gradients against PyTorch's grouped conv (float64), numeric
gradients, dtypes and errors."""

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.conv import resolve_padding
from shenjing.ops.depthwise import depthwise_conv1d, depthwise_conv2d
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_depthwise2d(strides, pads, dilation):
    """NHWC depthwise conv in torch: conv2d with groups=C, weight (C*M, 1, KH, KW) whose row
    c*M + m is kernel[:, :, c, m] (the output channel order of Keras and of ours)."""
    (top, bottom), (left, right) = pads

    def conv(x, kernel, bias=None):
        KH, KW, C, M = kernel.shape
        w = kernel.permute(2, 3, 0, 1).reshape(C * M, 1, KH, KW)
        x = F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
        return F.conv2d(x, w, bias, stride=strides, dilation=dilation, groups=C).permute(0, 2, 3, 1)

    return conv


def torch_depthwise1d(stride, pads, dilation):
    def conv(x, kernel, bias=None):
        K, C, M = kernel.shape
        w = kernel.permute(1, 2, 0).reshape(C * M, 1, K)
        x = F.pad(x.permute(0, 2, 1), pads)
        return F.conv1d(x, w, bias, stride=stride, dilation=dilation, groups=C).permute(0, 2, 1)

    return conv


CASES_2D = [  # (input (N, H, W, C), kernel (KH, KW, M), strides, padding, dilation)
    ((2, 7, 8, 3), (3, 3, 1), 1, "valid", 1),
    ((2, 7, 8, 3), (3, 2, 2), (2, 1), "same", 1),
    ((1, 9, 9, 2), (3, 3, 3), 1, "same", (2, 3)),
    ((2, 8, 7, 4), (2, 3, 1), 2, "same", 2),  # strides and dilation together (Keras allows it)
    ((2, 6, 6, 1), (1, 1, 4), 3, "valid", 1),
    ((1, 5, 6, 3), (4, 2, 2), 1, ((1, 2), (0, 3)), 1),
]


@pytest.mark.parametrize("shape, kshape, strides, padding, dilation", CASES_2D,
                         ids=range(len(CASES_2D)))
@pytest.mark.parametrize("with_bias", [True, False])
def test_depthwise2d_against_torch_and_numeric(shape, kshape, strides, padding, dilation,
                                               with_bias, rng):
    C = shape[-1]
    x = rng.standard_normal(shape)
    kernel = rng.standard_normal((*kshape[:2], C, kshape[2]))
    inputs = (x, kernel, rng.standard_normal(C * kshape[2])) if with_bias else (x, kernel)
    s = (strides,) * 2 if isinstance(strides, int) else strides
    d = (dilation,) * 2 if isinstance(dilation, int) else dilation
    pads = resolve_padding(padding, shape[1:3], kshape[:2], s, d)

    def ours(x, k, b=None):
        return depthwise_conv2d(x, k, b, strides=strides, padding=padding, dilation_rate=dilation)

    check_against_torch(ours, torch_depthwise2d(s, pads, d), *inputs)
    check_numeric_grad(ours, *inputs)


@pytest.mark.parametrize("k, m, stride, padding, dilation", [
    (3, 1, 1, "valid", 1), (3, 2, 2, "same", 1), (2, 3, 1, "same", 3), (4, 1, 3, (2, 1), 1),
], ids=range(4))
def test_depthwise1d_against_torch_and_numeric(k, m, stride, padding, dilation, rng):
    x = rng.standard_normal((2, 11, 3))
    kernel = rng.standard_normal((k, 3, m))
    bias = rng.standard_normal(3 * m)
    ((pad,),) = (resolve_padding(padding, (11,), (k,), (stride,), (dilation,)),)

    def ours(x, kern, b):
        return depthwise_conv1d(x, kern, b, strides=stride, padding=padding,
                                dilation_rate=dilation)

    check_against_torch(ours, torch_depthwise1d(stride, pad, dilation), x, kernel, bias)
    check_numeric_grad(ours, x, kernel, bias)


def test_float32_stays_float32_and_matches_float64(rng):
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 2)).astype(np.float32)
    xt, kt = sj.Tensor(x, requires_grad=True), sj.Tensor(kernel, requires_grad=True)
    y = depthwise_conv2d(xt, kt, padding="same")
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == xt.grad.dtype == kt.grad.dtype == np.float32
    exact = depthwise_conv2d(x.astype(np.float64), kernel.astype(np.float64), padding="same")
    # a 9-term sum per output: float32 rounding, well under 1e-5
    np.testing.assert_allclose(y.numpy(), exact.numpy(), rtol=1e-5, atol=1e-5)


def test_no_grad_wanted_for_kernel_only(rng):
    """Only the input needs a gradient: backward skips the kernel's."""
    x = sj.Tensor(rng.standard_normal((1, 5, 5, 2)), requires_grad=True)
    y = depthwise_conv2d(x, rng.standard_normal((2, 2, 2, 1)))
    y.backward(np.ones(y.shape))
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("x_shape, k_shape, bias, match", [
    ((2, 5, 5), (3, 3, 5, 1), None, r"expected input of rank 4"),
    ((2, 5, 5, 3), (3, 3, 3), None, r"expected a kernel of rank 4"),
    ((2, 5, 5, 3), (3, 3, 2, 1), None, r"input has 3 channels .* kernel expects 2"),
    ((2, 5, 5, 3), (3, 3, 3, 2), (3,), r"expected a bias of shape \(6,\)"),
    ((2, 2, 5, 3), (3, 3, 3, 1), None, r"kernel height 3 is larger than the padded input"),
])
def test_errors(x_shape, k_shape, bias, match):
    with pytest.raises(ValueError, match=match):
        depthwise_conv2d(np.zeros(x_shape), np.zeros(k_shape),
                         None if bias is None else np.zeros(bias))
    with pytest.raises(ValueError, match=r"depthwise_conv1d: strides must be"):
        depthwise_conv1d(np.zeros((1, 5, 2)), np.zeros((2, 2, 1)), strides=0)


def test_split_over_two_threads_gives_the_same_values(monkeypatch, rng):
    """Small tests never split the batch; forced here, each half runs the same passes (the
    kernel gradient then sums two partial sums: equal to rounding)."""
    from shenjing.ops import parallel

    monkeypatch.setattr(parallel, "MIN_ELEMENTS", 0)
    monkeypatch.setattr(parallel, "THREADS", 2)
    x, kernel, bias = (rng.standard_normal((5, 6, 7, 3)), rng.standard_normal((3, 2, 3, 2)),
                       rng.standard_normal(6))
    pads = resolve_padding("same", (6, 7), (3, 2), (2, 2), (1, 1))

    def ours(x, k, b):
        return depthwise_conv2d(x, k, b, strides=2, padding="same")

    check_against_torch(ours, torch_depthwise2d((2, 2), pads, (1, 1)), x, kernel, bias)
