import itertools
import math
from functools import partial

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import conv as conv_module
from shenjing.ops.conv import conv1d, conv2d, conv_output_length, resolve_padding
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torch_conv2d(strides, pads, dilation):
    """NHWC conv2d in torch: explicit (possibly asymmetric) zero pads, then padding=0."""
    (top, bottom), (left, right) = pads

    def conv(x, kernel, bias=None):
        x = F.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom)).contiguous()
        w = kernel.permute(3, 2, 0, 1).contiguous()  # (KH, KW, C, F) -> (F, C, KH, KW)
        return F.conv2d(x, w, bias, stride=strides, dilation=dilation).permute(0, 2, 3, 1)

    return conv


def torch_conv1d(stride, pads, dilation):
    def conv(x, kernel, bias=None):
        x = F.pad(x.permute(0, 2, 1), pads).contiguous()
        w = kernel.permute(2, 1, 0).contiguous()  # (K, C, F) -> (F, C, K)
        return F.conv1d(x, w, bias, stride=stride, dilation=dilation).permute(0, 2, 1)

    return conv


@pytest.fixture(params=["im2col", "winograd"])
def path(request, monkeypatch):
    """Run a test once per algorithm: Winograd for every 3x3 stride-1 conv, or never."""
    threshold = 1 if request.param == "winograd" else 1 << 62
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CF", threshold)
    return request.param


def random_padding(rng, rank):
    mode = rng.integers(4)
    if mode == 0:
        return "valid" if rng.integers(2) else "VALID"
    if mode == 1:
        return "same" if rng.integers(2) else "Same"
    if mode == 2:
        return int(rng.integers(0, 3))
    pairs = tuple(tuple(int(p) for p in rng.integers(0, 4, 2)) for _ in range(rank))
    return pairs[0] if rank == 1 else pairs


def random_conv2d_case(rng, kernel=None, strides=None, dilation=None):
    """A random valid configuration: (x, kernel, bias, strides, padding, dilation, pads)."""
    while True:
        KH, KW = kernel or (int(k) for k in rng.integers(1, 6, 2))
        s = strides or tuple(int(v) for v in rng.integers(1, 4, 2))
        d = dilation or tuple(int(v) for v in rng.integers(1, 3, 2))
        N, C, Fi = (int(v) for v in rng.integers(1, 9, 3))
        N = N % 4 + 1
        H, W = (int(v) for v in rng.integers(1, 13, 2))
        padding = random_padding(rng, 2)
        pads = resolve_padding(padding, (H, W), (KH, KW), s, d)
        if all(n + sum(p) >= dd * (k - 1) + 1 for n, p, k, dd in zip((H, W), pads, (KH, KW), d)):
            break
    x = rng.standard_normal((N, H, W, C))
    k = rng.standard_normal((KH, KW, C, Fi))
    b = rng.standard_normal(Fi)
    return x, k, b, s, padding, d, pads


def test_conv2d_matches_torch_random_configs(rng):
    for _ in range(50):
        x, k, b, s, padding, d, pads = random_conv2d_case(rng)
        ours = partial(conv2d, strides=s, padding=padding, dilation_rate=d)
        check_against_torch(ours, torch_conv2d(s, pads, d), x, k, b)


def test_conv2d_stride1_im2col_matches_torch(rng):
    # stride 1 takes its own input-gradient branches (1x1, flipped-kernel im2col, col2im)
    for _ in range(25):
        x, k, b, s, padding, d, pads = random_conv2d_case(rng, strides=(1, 1))
        ours = partial(conv2d, strides=s, padding=padding, dilation_rate=d)
        check_against_torch(ours, torch_conv2d(s, pads, d), x, k, b)


def test_conv2d_pointwise_and_single_channel(rng):
    # 1x1 kernels (the input itself is the column matrix) and C = 1 (per-offset im2col)
    cases = [((1, 1, 3, 5), "valid", 1), ((1, 1, 5, 3), 1, 1), ((1, 1, 4, 4), "same", 2),
             ((3, 3, 1, 4), "same", 1), ((3, 2, 1, 2), "valid", 2)]
    for shape, padding, s in cases:
        x = rng.standard_normal((2, 6, 5, shape[2]))
        k, b = rng.standard_normal(shape), rng.standard_normal(shape[3])
        pads = resolve_padding(padding, (6, 5), shape[:2], (s, s), (1, 1))
        check_against_torch(partial(conv2d, strides=s, padding=padding),
                            torch_conv2d((s, s), pads, (1, 1)), x, k, b)


def test_conv2d_winograd_path_matches_torch(rng, monkeypatch):
    # 3x3, stride 1, dilation 1 runs as Winograd F(4x4, 3x3); force it for few channels
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CF", 1)
    for _ in range(25):
        x, k, b, s, padding, d, pads = random_conv2d_case(rng, (3, 3), (1, 1), (1, 1))
        y = conv2d(sj.Tensor(x, requires_grad=True), k, b, padding=padding)
        assert y._op.winograd == (min(y.shape[1:3]) >= 4)
        ours = partial(conv2d, padding=padding)
        check_against_torch(ours, torch_conv2d(s, pads, d), x, k, b)


def test_conv2d_winograd_default_choice_and_larger_shape(rng):
    x = rng.standard_normal((2, 13, 10, 64))
    k = rng.standard_normal((3, 3, 64, 64))  # C * F = 4096: Winograd by default
    b = rng.standard_normal(64)
    assert conv2d(sj.Tensor(x, requires_grad=True), k, b, padding="same")._op.winograd
    small = conv2d(sj.Tensor(x[..., :3], requires_grad=True), k[:, :, :3, :4], padding="same")
    assert not small._op.winograd
    pads = resolve_padding("same", (13, 10), (3, 3), (1, 1), (1, 1))
    ours = partial(conv2d, padding="same")
    check_against_torch(ours, torch_conv2d((1, 1), pads, (1, 1)), x, k, b)


def test_conv2d_without_bias(rng):
    x, k, _, s, padding, d, pads = random_conv2d_case(rng, (3, 3), (2, 1), (1, 2))
    ours = partial(conv2d, strides=s, padding=padding, dilation_rate=d)
    check_against_torch(ours, torch_conv2d(s, pads, d), x, k)


def test_conv2d_partial_grads(rng, path):
    # each subset of (x, kernel, bias) asks for gradients; the bias rides on the kernel's
    # product (a column of ones in the im2col columns) only when the kernel's gradient is taken
    for needs in itertools.product((True, False), repeat=3):
        for size in (1, 3, 5):
            xx, kk = rng.standard_normal((2, 6, 7, size)), rng.standard_normal((3, 3, size, 4))
            bb = rng.standard_normal(4)
            ours = [sj.Tensor(a, requires_grad=n) for a, n in zip((xx, kk, bb), needs)]
            theirs = [torch.tensor(a, requires_grad=n) for a, n in zip((xx, kk, bb), needs)]
            gy = rng.standard_normal((2, 6, 7, 4))
            y = conv2d(*ours, padding="same")
            if not any(needs):
                assert y._op is None
                continue
            assert y._op.winograd == (path == "winograd")
            if path == "im2col":
                assert y._op.bias_column == needs[1]
            y.backward(gy)
            torch_conv2d((1, 1), ((1, 1), (1, 1)), (1, 1))(*theirs).backward(torch.tensor(gy))
            for ours_t, ref_t in zip(ours, theirs):
                assert (ours_t.grad is None) == (ref_t.grad is None)
                if ref_t.grad is not None:
                    expected = ref_t.grad.numpy()
                    np.testing.assert_allclose(ours_t.grad, expected, rtol=1e-7, atol=1e-9)


def test_conv2d_second_backward_accumulates(rng, path):
    # the first backward hands its saved buffers back; a second one must rebuild them (with
    # the bias's column of ones)
    for size in (1, 3, 5):
        x, k = rng.standard_normal((2, 8, 8, size)), rng.standard_normal((3, 3, size, 4))
        b = rng.standard_normal(4)
        ours = [sj.Tensor(a, requires_grad=True) for a in (x, k, b)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (x, k, b)]
        gy = rng.standard_normal((2, 8, 8, 4))
        y = conv2d(*ours, padding=1)
        yt = torch_conv2d((1, 1), ((1, 1), (1, 1)), (1, 1))(*theirs)
        y.backward(gy)
        y.backward(gy)
        yt.backward(torch.tensor(gy), retain_graph=True)
        yt.backward(torch.tensor(gy))
        for ours_t, ref_t in zip(ours, theirs):
            np.testing.assert_allclose(ours_t.grad, ref_t.grad.numpy(), rtol=1e-7, atol=1e-9)


def test_conv2d_no_grad_matches_torch(rng, path):
    for size in (3, 5):
        x, k = rng.standard_normal((2, 9, 6, size)), rng.standard_normal((3, 3, size, 5))
        with sj.no_grad():
            y = conv2d(sj.Tensor(x, requires_grad=True), k, padding="same")
        ref = torch_conv2d((1, 1), ((1, 1), (1, 1)), (1, 1))(torch.tensor(x), torch.tensor(k))
        np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-7, atol=1e-9)


def test_conv1d_matches_torch_random_configs(rng):
    for _ in range(30):
        k_size, s, d = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
        N, W = int(rng.integers(1, 5)), int(rng.integers(1, 16))
        C, Fi = (int(v) for v in rng.integers(1, 9, 2))
        padding = random_padding(rng, 1)
        (pad,) = resolve_padding(padding, (W,), (k_size,), (s,), (d,))
        if W + sum(pad) < d * (k_size - 1) + 1:
            continue
        x, k, b = (rng.standard_normal(shape) for shape in ((N, W, C), (k_size, C, Fi), (Fi,)))
        ours = partial(conv1d, strides=s, padding=padding, dilation_rate=d)
        check_against_torch(ours, torch_conv1d(s, pad, d), x, k, b)


def test_same_padding_rule_and_output_sizes():
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 4):
                for d in (1, 2):
                    ((before, after),) = resolve_padding("same", (n,), (k,), (s,), (d,))
                    total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
                    assert (before, after) == (total // 2, total - total // 2)
                    assert conv_output_length(n, k, s, "same", d) == math.ceil(n / s)
                    for pads in ((0, 0), (2, 1), (0, 3)):
                        expected = (n + sum(pads) - d * (k - 1) - 1) // s + 1
                        assert conv_output_length(n, k, s, pads, d) == expected
                        if expected >= 1:  # torch agrees on the size
                            z = F.pad(torch.zeros(1, 1, n, dtype=torch.float64), pads)
                            w = torch.zeros(1, 1, k, dtype=torch.float64)
                            assert F.conv1d(z, w, stride=s, dilation=d).shape[-1] == expected
    assert conv_output_length(7, 3, 2, "valid") == 3
    assert conv_output_length(7, 3, 1, 1) == 7
    x = np.zeros((1, 7, 9, 1))
    assert conv2d(x, np.zeros((3, 4, 1, 2)), strides=(2, 3), padding="same").shape == (1, 4, 3, 2)


def test_resolve_padding_forms():
    sizes, kernel, ones = (5, 6), (3, 3), (1, 1)
    assert resolve_padding("VALID", sizes, kernel, ones, ones) == ((0, 0), (0, 0))
    assert resolve_padding(2, sizes, kernel, ones, ones) == ((2, 2), (2, 2))
    assert resolve_padding((1, 2), sizes, kernel, ones, ones) == ((1, 1), (2, 2))
    assert resolve_padding(((0, 1), (2, 3)), sizes, kernel, ones, ones) == ((0, 1), (2, 3))
    assert resolve_padding((1, 2), (5,), (3,), (1,), (1,)) == ((1, 2),)
    assert resolve_padding("same", (6,), (4,), (1,), (1,)) == ((1, 2),)  # odd pixel after


def test_conv_numeric_gradients(rng, monkeypatch):
    x, k, b = rng.standard_normal((2, 7, 6, 3)), rng.standard_normal((3, 2, 3, 4)), rng.random(4)
    check_numeric_grad(
        lambda x, k, b: conv2d(x, k, b, strides=(2, 1), padding="same", dilation_rate=(1, 2)),
        x, k, b,
    )
    check_numeric_grad(lambda x, k, b: conv2d(x, k, b, padding=((2, 0), (1, 3))), x, k, b)
    monkeypatch.setattr(conv_module, "WINOGRAD_MIN_CF", 1)  # Winograd path
    k3 = rng.standard_normal((3, 3, 3, 2))
    assert conv2d(sj.Tensor(x, requires_grad=True), k3, padding=1)._op.winograd
    check_numeric_grad(lambda x, k: conv2d(x, k, padding=((1, 2), (0, 1))), x, k3)
    x1, k1 = rng.standard_normal((2, 9, 3)), rng.standard_normal((3, 3, 2))
    check_numeric_grad(
        lambda x, k, b: conv1d(x, k, b, strides=2, padding="same", dilation_rate=2), x1, k1, b[:2]
    )


def test_conv_float32_stays_float32(rng, path):
    # NOTE: Winograd's transforms cost float32 accuracy (max error ~1e-5 of the output scale)
    x = rng.standard_normal((2, 8, 8, 16)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 16, 16)) / 16).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    tensors = [sj.Tensor(a, requires_grad=True) for a in (x, k, b)]
    y = conv2d(*tensors, padding="same")
    assert y._op.winograd == (path == "winograd")
    assert y.dtype == np.float32
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(gy)
    refs = [torch.tensor(a, requires_grad=True) for a in (x, k, b)]
    y_ref = torch_conv2d((1, 1), ((1, 1), (1, 1)), (1, 1))(*refs)
    y_ref.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.numpy(), y_ref.detach().numpy(), rtol=1e-4, atol=1e-4)
    for t, r in zip(tensors, refs):
        assert t.grad.dtype == np.float32
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-4, atol=1e-3)
    y1 = conv1d(x[:, 0], k[0], b, padding="same")
    assert y1.dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: conv2d(np.zeros((2, 5, 5)), np.zeros((3, 3, 5, 2))),
         (r"conv2d: expected input of rank 4 \(batch, height, width, channels\), "
          r"got shape \(2, 5, 5\)")),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3))),
         r"conv2d: expected a kernel of rank 4 .*got shape \(3, 3, 3\)"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 4, 2))),
         r"conv2d: input has 3 channels .* but the kernel expects 4"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), np.zeros((2, 1))),
         r"conv2d: expected a bias of rank 1 \(filters,\), got shape \(2, 1\)"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), np.zeros(3)),
         r"conv2d: bias has 3 entries but the kernel has 2 filters"),
        (lambda: conv2d(np.zeros((1, 2, 5, 3)), np.zeros((3, 3, 3, 2))),
         (r"conv2d: the kernel height 3 is larger than the "
          r"padded input height 2 \(input 2, padding \(0, 0\)\); the output height would be 0")),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), dilation_rate=3),
         (r"conv2d: the effective kernel height 7 \(kernel 3, dilation 3\) is larger than the "
          r"padded input height 5")),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), strides=0),
         r"conv2d: strides must be positive, got 0"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), strides=(1, 2, 1)),
         r"conv2d: strides must be an int or a tuple of 2 ints, got \(1, 2, 1\)"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), dilation_rate=(1, -1)),
         r"conv2d: dilation_rate must be positive, got \(1, -1\)"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), padding="full"),
         (r"conv2d: padding must be 'valid', 'same', an int or explicit pairs like "
          r"\(\(top, bottom\), \(left, right\)\), got 'full'")),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 3, 2)), padding=((1, -1), 0)),
         r"conv2d: padding must be non-negative, got \(\(1, -1\), 0\)"),
        (lambda: conv2d(np.zeros((1, 5, 5, 3)), np.zeros((0, 3, 3, 2))),
         r"conv2d: every kernel dimension must be >= 1, got shape \(0, 3, 3, 2\)"),
        (lambda: conv1d(np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 2))),
         r"conv1d: expected input of rank 3 \(batch, width, channels\), got shape \(1, 5, 5, 3\)"),
        (lambda: conv1d(np.zeros((1, 5, 3)), np.zeros((3, 3, 2)), padding=(1, 2, 3)),
         (r"conv1d: padding must be 'valid', 'same', an int or explicit pairs like "
          r"\(left, right\), got \(1, 2, 3\)")),
        (lambda: conv1d(np.zeros((1, 2, 3)), np.zeros((4, 3, 2)), padding=(0, 1)),
         (r"conv1d: the kernel width 4 is larger than the "
          r"padded input width 3 \(input 2, padding \(0, 1\)\); the output width would be 0")),
    ],
)
def test_conv_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()

