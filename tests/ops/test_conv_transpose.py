"""conv_transpose1d/2d: values and gradients against PyTorch's conv_transpose (float64) cropped
as Keras 3 crops it, numeric gradients, Keras's output sizes, dtypes and errors."""

import itertools

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops.conv_transpose import conv_transpose1d, conv_transpose2d, conv_transpose_crops
from tests.helpers import check_against_torch, check_numeric_grad
from tests.keras_oracle import import_keras

torch = pytest.importorskip("torch")
F = torch.nn.functional
import_keras()  # Keras's own size and crop rules are the reference below
backend_utils = pytest.importorskip("keras.src.backend.common.backend_utils")


def torch_conv_transpose(x_shape, k_shape, strides, padding, output_padding, dilation):
    """NHWC (or NWC) transposed conv in torch: the full output of conv_transpose (padding 0),
    then Keras's own per-axis crops (negative: zeros appended), then the bias."""
    crops = backend_utils.compute_conv_transpose_output_crops_for_torch(
        input_shape=x_shape, kernel_shape=k_shape, strides=strides, padding=padding,
        output_padding=output_padding, dilation_rate=dilation)
    rank = len(x_shape) - 2

    def conv(x, kernel, bias=None):
        order = (0, rank + 1, *range(1, rank + 1))
        w = kernel.permute(rank + 1, rank, *range(rank))  # (K.., F, C) -> (C, F, K..)
        fn = F.conv_transpose2d if rank == 2 else F.conv_transpose1d
        y = fn(x.permute(order), w, stride=strides, dilation=dilation)
        pads = []
        for before, after in reversed(crops):  # F.pad: last axis first; negative pads crop
            pads += [-before, -after]
        y = F.pad(y, pads).permute(0, *range(2, rank + 2), 1)
        return y if bias is None else y + bias

    return conv


def _cases_2d():
    for strides, padding, output_padding, dilation, kernel in itertools.product(
            [(1, 1), (2, 3)], ["valid", "same"], [None, (0, 0), (1, 2)], [(1, 1), (2, 1)],
            [(3, 2), (1, 1), (4, 3)]):
        if output_padding is not None and any(p >= s for p, s in zip(output_padding, strides)):
            continue
        if max(strides) > 1 and max(dilation) > 1:
            continue  # refused by Keras's layers
        yield strides, padding, output_padding, dilation, kernel


CASES_2D = list(_cases_2d())


@pytest.mark.parametrize("strides, padding, output_padding, dilation, kernel", CASES_2D,
                         ids=range(len(CASES_2D)))
def test_conv_transpose2d_against_torch(strides, padding, output_padding, dilation, kernel, rng):
    x = rng.standard_normal((2, 4, 5, 3))
    k = rng.standard_normal((*kernel, 2, 3))
    b = rng.standard_normal(2)

    def ours(x, k, b):
        return conv_transpose2d(x, k, b, strides=strides, padding=padding,
                                output_padding=output_padding, dilation_rate=dilation)

    ref = torch_conv_transpose(x.shape, k.shape, strides, padding, output_padding, dilation)
    y = check_against_torch(ours, ref, x, k, b)[0]
    expected_shape = backend_utils.compute_conv_transpose_output_shape(
        x.shape, kernel, 2, strides, padding, output_padding, dilation_rate=dilation)
    assert list(y.shape) == expected_shape


@pytest.mark.parametrize("strides, padding, output_padding, dilation", [
    (2, "same", 1, 1), (3, "valid", None, 1), (1, "same", None, 2), (2, "valid", 1, 1),
], ids=range(4))
def test_conv_transpose2d_numeric(strides, padding, output_padding, dilation, rng):
    x, k, b = (rng.standard_normal((2, 3, 4, 2)), rng.standard_normal((3, 2, 3, 2)),
               rng.standard_normal(3))
    check_numeric_grad(lambda x, k, b: conv_transpose2d(
        x, k, b, strides=strides, padding=padding, output_padding=output_padding,
        dilation_rate=dilation), x, k, b)


@pytest.mark.parametrize("k, stride, padding, output_padding, dilation", [
    (3, 1, "valid", None, 1), (3, 2, "same", None, 1), (4, 3, "same", 2, 1),
    (2, 2, "valid", 1, 1), (3, 1, "same", 0, 3), (1, 4, "valid", None, 1),
], ids=range(6))
def test_conv_transpose1d_against_torch_and_numeric(k, stride, padding, output_padding,
                                                    dilation, rng):
    x, kernel, b = (rng.standard_normal((2, 6, 3)), rng.standard_normal((k, 4, 3)),
                    rng.standard_normal(4))

    def ours(x, kernel, b):
        return conv_transpose1d(x, kernel, b, strides=stride, padding=padding,
                                output_padding=output_padding, dilation_rate=dilation)

    ref = torch_conv_transpose(x.shape, kernel.shape, (stride,), padding,
                               None if output_padding is None else (output_padding,),
                               (dilation,))
    check_against_torch(ours, ref, x, kernel, b)
    check_numeric_grad(ours, x, kernel, b)


def test_no_bias_and_input_gradient_only(rng):
    x = rng.standard_normal((2, 3, 3, 2))
    k = rng.standard_normal((3, 3, 4, 2))
    ref = torch_conv_transpose(x.shape, k.shape, (2, 2), "same", None, (1, 1))
    check_against_torch(lambda x, k: conv_transpose2d(x, k, strides=2, padding="same"),
                        ref, x, k)
    xt = sj.Tensor(x, requires_grad=True)
    y = conv_transpose2d(xt, k, strides=2)
    y.backward(np.ones(y.shape))
    assert xt.grad.shape == x.shape


def test_sizes_follow_keras():
    """Every size rule against Keras's own, including the odd 'same' + output_padding one."""
    for n, k, s, padding, p, d in itertools.product(
            [1, 2, 5], [1, 2, 3, 4], [1, 2, 3], ["valid", "same"], [None, 0, 1, 2], [1, 2]):
        if (p is not None and p >= s) or (s > 1 and d > 1):
            continue
        expected = backend_utils.compute_conv_transpose_output_shape(
            (1, n, 1), (k,), 1, (s,), padding, None if p is None else (p,), dilation_rate=d)[1]
        assert conv_transpose_crops(n, k, s, padding, p, d)[2] == expected


def test_float32_stays_float32(rng):
    x = sj.Tensor(rng.standard_normal((2, 4, 4, 3)).astype(np.float32), requires_grad=True)
    k = sj.Tensor(rng.standard_normal((3, 3, 2, 3)).astype(np.float32), requires_grad=True)
    b = sj.Tensor(np.zeros(2, np.float32), requires_grad=True)
    y = conv_transpose2d(x, k, b, strides=2, padding="same")
    y.backward(np.ones(y.shape, np.float32))
    assert y.dtype == x.grad.dtype == k.grad.dtype == b.grad.dtype == np.float32


@pytest.mark.parametrize("x_shape, k_shape, kwargs, match", [
    ((2, 5, 3), (3, 3, 2, 3), {}, r"expected input of rank 4"),
    ((2, 5, 5, 3), (3, 3, 3), {}, r"expected a kernel of rank 4"),
    ((2, 5, 5, 3), (3, 3, 3, 2), {}, r"input has 3 channels .* kernel expects 2"),
    ((2, 5, 5, 3), (3, 3, 2, 3), {"strides": 2, "output_padding": 2},
     r"output_padding must be >= 0 and less than the strides"),
    ((2, 5, 5, 3), (3, 3, 2, 3), {"padding": "causal"}, r"padding must be 'valid' or 'same'"),
    ((2, 1, 5, 3), (2, 2, 2, 3), {"padding": "same", "output_padding": 0},
     r"the output height would be 0"),
])
def test_errors(x_shape, k_shape, kwargs, match):
    with pytest.raises(ValueError, match=match):
        conv_transpose2d(np.zeros(x_shape), np.zeros(k_shape), **kwargs)
