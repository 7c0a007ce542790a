"""ops.conv2d_block: the ops it fuses (to the rounding of their products: the block runs its conv
products a chunk of images at a time, which a BLAS may round otherwise than one product over the
whole batch), and right against torch."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import ops
from shenjing.ops import conv, parallel
from shenjing.ops.conv_block import conv2d_block
from shenjing.ops.norm import inference_affine
from tests.helpers import assert_equal_to_rounding

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _norm_params(rng, channels, dtype):
    mean = rng.standard_normal(channels).astype(dtype)
    var = (rng.random(channels) + 0.2).astype(dtype)
    gamma = rng.standard_normal(channels).astype(dtype)  # some negative: max and scale differ
    beta = rng.standard_normal(channels).astype(dtype)
    return mean, var, gamma, beta


def _layer_by_layer(x, kernel, bias, conv_args, steps, norm):
    """The unfused ops, in order: what the layers compute one by one."""
    with sj.no_grad():
        y = ops.conv2d(x, kernel, bias, **conv_args)
        for step in steps:
            if step[0] == "relu":
                y = ops.relu(y)
            elif step[0] == "affine":
                mean, var, gamma, beta = norm
                y = ops.batch_norm(y, gamma, beta, mean, var, training=False, epsilon=1e-3)
            else:
                y = ops.max_pool2d(y, step[1], step[2])
    return y.numpy()


def _fused_steps(steps, norm, dtype):
    mean, var, gamma, beta = norm
    return [("affine", *inference_affine(mean, var, gamma, beta, 1e-3, dtype))
            if step[0] == "affine" else step for step in steps]


CASES = [  # (N, H, W, C, F, kernel, conv settings, steps)
    (6, 28, 28, 1, 8, 3, {"padding": "same"},
     [("affine",), ("relu",), ("max_pool", (2, 2), (2, 2))]),
    (5, 14, 14, 8, 16, 3, {"padding": "same"}, [("affine",), ("relu",)]),
    (4, 11, 9, 3, 5, 3, {"padding": "valid"}, [("relu",), ("max_pool", (2, 2), (2, 2))]),
    (3, 12, 12, 4, 6, 5, {"padding": ((2, 1), (0, 3)), "strides": 2},
     [("relu",), ("affine",), ("relu",), ("max_pool", (3, 3), (2, 2))]),
    (2, 10, 10, 3, 4, 3, {"padding": "same", "dilation_rate": 2}, [("affine",)]),
    (3, 8, 8, 6, 7, 1, {}, [("max_pool", (2, 3), (1, 2))]),
    (2, 7, 7, 2, 3, 3, {"padding": "same"}, []),
    # one input channel and a 2x2 pool: the conv's outputs come in four blocks (conv._im2col)
    (3, 11, 9, 1, 4, 3, {"padding": "valid"}, [("relu",), ("max_pool", (2, 2), (2, 2))]),
    (2, 15, 13, 1, 5, 3, {"padding": "same", "strides": 2, "dilation_rate": 1},
     [("affine",), ("max_pool", (2, 2), (2, 2))]),
    (2, 12, 12, 1, 3, 3, {"padding": "same", "dilation_rate": 2},
     [("relu",), ("affine",), ("relu",), ("max_pool", (2, 2), (2, 2))]),
]


def _magnitude(x, kernel, bias, conv_args, steps, norm):
    """A bound on sum|x_i k_i| + |b| behind every output, carried through the steps: an affine
    scales it by |scale| (plus |shift|), a ReLU passes it on, a max pool takes its window's
    largest (|max a - max b| <= max |a - b|)."""
    with sj.no_grad():
        m = ops.conv2d(np.abs(x).astype(np.float64), np.abs(kernel).astype(np.float64),
                       None if bias is None else np.abs(bias).astype(np.float64), **conv_args)
        for step in steps:
            if step[0] == "affine":
                scale, shift = inference_affine(*norm, 1e-3, np.float64)
                m = m * np.abs(scale) + np.abs(shift)
            elif step[0] == "max_pool":
                m = ops.max_pool2d(m, step[1], step[2])
    return m.numpy()


def _check_fused(x, kernel, bias, conv_args, steps, norm):
    """conv2d_block against the layers one by one, and against the layers with a leading batch
    norm folded into the conv's kernel and bias by hand: equal to the rounding of the conv's
    sums (kh * kw * C products and the bias; folding rounds k * s and b * s + t once more)."""
    dtype = x.dtype
    expected = _layer_by_layer(x, kernel, bias, conv_args, steps, norm)
    fused = conv2d_block(x, kernel, bias, steps=_fused_steps(steps, norm, dtype), **conv_args)
    assert fused.dtype == dtype
    length = kernel.shape[0] * kernel.shape[1] * kernel.shape[2] + 1
    magnitude = _magnitude(x, kernel, bias, conv_args, steps, norm)
    folded = steps[:1] == [("affine",)]
    assert_equal_to_rounding(fused, expected, magnitude=magnitude,
                             length=length + (3 if folded else 0), err_msg="layer by layer")
    if not folded:
        return
    scale, shift = inference_affine(*norm, 1e-3, dtype)
    folded_bias = shift if bias is None else bias * scale + shift
    by_hand = _layer_by_layer(x, kernel * scale, folded_bias, conv_args, steps[1:], norm)
    assert_equal_to_rounding(fused, by_hand, magnitude=magnitude, length=length,
                             err_msg="folded by hand")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_the_ops_it_fuses(rng, case, dtype):
    N, H, W, C, Fo, k, conv_args, steps = case
    x = rng.standard_normal((N, H, W, C)).astype(dtype)
    kernel = (rng.standard_normal((k, k, C, Fo)) * 0.4).astype(dtype)
    bias = rng.standard_normal(Fo).astype(dtype)
    _check_fused(x, kernel, bias, conv_args, steps, _norm_params(rng, Fo, dtype))


@pytest.mark.parametrize("steps", [[("affine",), ("relu",), ("max_pool", (2, 2), (2, 2))],
                                   [("relu",), ("max_pool", (2, 2), (2, 2))]])
@pytest.mark.parametrize("chunk_bytes", [None, 1 << 18])
def test_large_batch_over_chunks_and_threads(rng, monkeypatch, steps, chunk_bytes):
    """256 images: the two halves of the batch on two threads, in one chunk each or in many (9
    images, the last one shorter)."""
    if chunk_bytes is not None:
        monkeypatch.setattr(conv, "_COLUMN_CHUNK_BYTES", chunk_bytes)
    x = rng.standard_normal((256, 28, 28, 1), dtype=np.float32)
    kernel = rng.standard_normal((3, 3, 1, 32), dtype=np.float32)
    bias = rng.standard_normal(32, dtype=np.float32)
    assert parallel.worth_splitting(256, 256 * 28 * 28 * 32) == (parallel.THREADS > 1)
    _check_fused(x, kernel, bias, {"padding": "same"}, steps, _norm_params(rng, 32, np.float32))


def test_matches_torch_conv_batchnorm_relu_maxpool(rng):
    x = rng.standard_normal((4, 13, 13, 3))
    kernel, bias = rng.standard_normal((3, 3, 3, 5)) * 0.5, rng.standard_normal(5)
    mean, var, gamma, beta = _norm_params(rng, 5, np.float64)
    fused = conv2d_block(x, kernel, bias, padding="same", steps=[
        ("affine", *inference_affine(mean, var, gamma, beta, 1e-3, np.float64)), ("relu",),
        ("max_pool", 2, 2)])
    t = torch.tensor
    y = F.conv2d(t(x).permute(0, 3, 1, 2), t(kernel).permute(3, 2, 0, 1), t(bias), padding=1)
    y = F.batch_norm(y, t(mean), t(var), t(gamma), t(beta), training=False, eps=1e-3)
    y = F.max_pool2d(F.relu(y), 2).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(fused, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps, message", [
    (["softmax"], "step 0 must be one of"),
    ([("max_pool", 2, 2), "relu"], "max_pool can only be the last step"),
    ([("affine", np.ones(3), np.zeros(4))], r"scale and a shift of shape \(4,\)"),
])
def test_bad_steps_are_refused(steps, message):
    x, kernel = np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 2, 4))
    with pytest.raises(ValueError, match=message):
        conv2d_block(x, kernel, steps=steps)


def test_bad_shapes_are_refused_as_conv2d_does():
    with pytest.raises(ValueError, match="input has 2 channels"):
        conv2d_block(np.zeros((1, 5, 5, 2)), np.zeros((3, 3, 3, 4)))
    with pytest.raises(ValueError, match="pool window"):
        conv2d_block(np.zeros((1, 3, 3, 2)), np.zeros((3, 3, 2, 4)),
                     steps=[("max_pool", 2, 2)])
