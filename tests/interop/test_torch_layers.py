"""Every layer with weights <-> its torch module's state dict: the torch module made by hand
with our converted weights computes what our layer computes (float64 1e-10, float32 1e-5), a
torch module's random weights loaded into ours do too, and the conventions (batch-norm
momentum and variance, missing gamma/beta) and the errors are the documented ones."""

import collections
import subprocess
import sys

import numpy as np
import pytest

from shenjing import layers as L
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.interop import (
    SUPPORTED_LAYERS,
    from_torch_state_dict,
    to_torch_state_dict,
    torch_state_dict_to_weights,
)

torch = pytest.importorskip("torch")
nn = torch.nn
TOL = {"float64": {"rtol": 1e-10, "atol": 1e-10}, "float32": {"rtol": 1e-5, "atol": 1e-5}}


def _separable(rank, c, m, filters, k, dtype):
    conv = getattr(nn, f"Conv{rank}d")
    return nn.Sequential(collections.OrderedDict(
        depthwise=conv(c, c * m, k, groups=c, bias=False, dtype=dtype),
        pointwise=conv(c * m, filters, 1, dtype=dtype)))


# id -> (our layer, input shape (channels last), torch module(dtype), channels first in torch)
CASES = {
    "conv1d": (lambda: L.Conv1D(4, 3, dilation_rate=2), (2, 9, 3),
               lambda t: nn.Conv1d(3, 4, 3, dilation=2, dtype=t), True),
    "conv2d": (lambda: L.Conv2D(4, (3, 2), strides=(2, 1)), (2, 7, 6, 3),
               lambda t: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), dtype=t), True),
    "conv2d_nobias": (lambda: L.Conv2D(2, 2, use_bias=False), (2, 4, 5, 3),
                      lambda t: nn.Conv2d(3, 2, 2, bias=False, dtype=t), True),
    "depthwise1d": (lambda: L.DepthwiseConv1D(3, depth_multiplier=2), (2, 8, 3),
                    lambda t: nn.Conv1d(3, 6, 3, groups=3, dtype=t), True),
    "depthwise2d": (lambda: L.DepthwiseConv2D((2, 3), depth_multiplier=2, strides=2),
                    (2, 7, 8, 3), lambda t: nn.Conv2d(3, 6, (2, 3), stride=2, groups=3, dtype=t),
                    True),
    "separable1d": (lambda: L.SeparableConv1D(5, 3, depth_multiplier=2), (2, 8, 3),
                    lambda t: _separable(1, 3, 2, 5, 3, t), True),
    "separable2d": (lambda: L.SeparableConv2D(4, 3), (2, 6, 5, 3),
                    lambda t: _separable(2, 3, 1, 4, 3, t), True),
    "conv1d_transpose": (lambda: L.Conv1DTranspose(4, 3, strides=2), (2, 5, 3),
                         lambda t: nn.ConvTranspose1d(3, 4, 3, stride=2, dtype=t), True),
    "conv2d_transpose": (lambda: L.Conv2DTranspose(4, (3, 2), strides=(2, 1)), (2, 4, 3, 3),
                         lambda t: nn.ConvTranspose2d(3, 4, (3, 2), stride=(2, 1), dtype=t),
                         True),
    "dense": (lambda: L.Dense(5), (3, 4), lambda t: nn.Linear(4, 5, dtype=t), False),
    "dense_3d": (lambda: L.Dense(2, use_bias=False), (2, 3, 4),
                 lambda t: nn.Linear(4, 2, bias=False, dtype=t), False),
    "batch_norm_2d": (lambda: L.BatchNormalization(), (2, 3, 4, 5),
                      lambda t: nn.BatchNorm2d(5, eps=1e-3, dtype=t), True),
    "batch_norm_1d": (lambda: L.BatchNormalization(epsilon=1e-5), (6, 4),
                      lambda t: nn.BatchNorm1d(4, dtype=t), False),
    "batch_norm_affine_off": (lambda: L.BatchNormalization(center=False, scale=False),
                              (2, 5, 3), lambda t: nn.BatchNorm1d(3, eps=1e-3, affine=False,
                                                                  dtype=t), True),
    "layer_norm": (lambda: L.LayerNormalization(), (2, 3, 4),
                   lambda t: nn.LayerNorm(4, eps=1e-3, dtype=t), False),
    "layer_norm_2_axes": (lambda: L.LayerNormalization(axis=[-2, -1], center=False),
                          (2, 3, 4), lambda t: nn.LayerNorm((3, 4), eps=1e-3, bias=False,
                                                            dtype=t), False),
    "group_norm": (lambda: L.GroupNormalization(groups=2), (2, 3, 3, 4),
                   lambda t: nn.GroupNorm(2, 4, eps=1e-3, dtype=t), True),
    "prelu_channels": (lambda: L.PReLU(shared_axes=[1, 2]), (2, 3, 4, 5),
                       lambda t: nn.PReLU(5, dtype=t), True),
    "prelu_dense": (lambda: L.PReLU(), (3, 4), lambda t: nn.PReLU(4, dtype=t), False),
}


def _first(x):
    return np.moveaxis(x, -1, 1)


def _last(x):
    return np.moveaxis(x, 1, -1)


def make_ours_typed(case, dtype, rng):
    factory, shape = CASES[case][:2]
    layer = factory()
    config = {**layer.get_config(), "dtype": dtype}
    layer = type(layer).from_config(config)
    layer.build_for((None, *shape[1:]))
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.name
                       else 0.5 * rng.standard_normal(w.shape) for w in layer.weights])
    return layer


def run_both(case, ours, module, dtype, rng):
    shape, first = CASES[case][1], CASES[case][3]
    x = rng.standard_normal(shape).astype(dtype)
    expected = ours(x).data
    module.eval()
    with torch.no_grad():
        got = module(torch.from_numpy(_first(x) if first else x)).numpy()
    return expected, _last(got) if first else got


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES)
def test_our_weights_in_the_torch_module_compute_the_same(case, dtype):
    rng = np.random.default_rng(0)
    ours = make_ours_typed(case, dtype, rng)
    module = CASES[case][2](getattr(torch, dtype))
    state = to_torch_state_dict(ours)
    assert all(v.dtype == np.dtype(dtype) for k, v in state.items() if k != "num_batches_tracked")
    module.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})  # strict
    expected, got = run_both(case, ours, module, dtype, rng)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOL[dtype])


@pytest.mark.parametrize("case", CASES)
def test_torch_weights_loaded_into_ours_compute_the_same_and_round_trip(case):
    rng = np.random.default_rng(1)
    module = CASES[case][2](torch.float64)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                low = 0.5 if "running_var" in name else -1.0
                value.copy_(torch.from_numpy(rng.uniform(low, 1.5, tuple(value.shape))))
    ours = make_ours_typed(case, "float64", rng)  # other random weights, all replaced
    before = [w.copy() for w in ours.get_weights()]
    from_torch_state_dict(ours, module.state_dict())
    assert any(not np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))
    expected, got = run_both(case, ours, module, "float64", rng)
    np.testing.assert_allclose(got, expected, **TOL["float64"])
    back = to_torch_state_dict(ours)
    assert back.keys() == module.state_dict().keys()
    for key, value in module.state_dict().items():
        np.testing.assert_array_equal(back[key], value.numpy())
    # and ours -> torch -> ours gives the very same arrays
    weights = torch_state_dict_to_weights(ours, back)
    for a, b in zip(weights, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_conventions_momentum_and_variance():
    """Keras momentum m is torch's 1 - m; the moving mean follows the same update, the moving
    variance takes the biased batch variance where torch takes the unbiased one."""
    rng = np.random.default_rng(2)
    ours = L.BatchNormalization(momentum=0.9, dtype="float64")
    ours.build_for((None, 3))
    module = nn.BatchNorm1d(3, momentum=1 - 0.9, eps=1e-3, dtype=torch.float64)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch_state_dict(ours).items()})
    x = rng.standard_normal((5, 3))
    y = ours(x, training=True).data
    module.train()
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), y, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(module.running_mean.numpy(), ours.moving_mean.data, rtol=1e-12)
    m = len(x)
    biased_step = ours.moving_variance.data - 0.9  # (1 - 0.9) * batch variance
    unbiased_step = module.running_var.numpy() - 0.9
    np.testing.assert_allclose(unbiased_step, biased_step * m / (m - 1), rtol=1e-10)
    assert to_torch_state_dict(ours)["num_batches_tracked"].dtype == np.int64


def test_missing_gamma_is_written_as_ones_and_must_be_ones_back():
    ours = L.BatchNormalization(scale=False, dtype="float64")
    ours.build_for((None, 3))
    state = to_torch_state_dict(ours)
    np.testing.assert_array_equal(state["weight"], np.ones(3))
    from_torch_state_dict(ours, state)  # neutral values are accepted
    state["weight"] = np.full(3, 2.0)
    with pytest.raises(ArgumentError, match=r"'weight' holds values other than 1.0.*"
                                            r"BatchNormalization"):
        from_torch_state_dict(ours, state)


def test_shape_mismatch_names_the_layer_and_the_key():
    ours = L.Conv2D(4, 3, name="c1")
    ours.build_for((None, 8, 8, 3))
    state = nn.Conv2d(2, 4, 3).state_dict()
    with pytest.raises(ArgumentError, match=r"'weight' has shape \(4, 2, 3, 3\), expected "
                                            r"\(4, 3, 3, 3\) for Conv2D 'c1'"):
        from_torch_state_dict(ours, state)


def test_missing_and_unexpected_keys_are_named():
    ours = L.Dense(3, name="d1")
    ours.build_for((None, 2))
    with pytest.raises(ArgumentError, match=r"missing key 'bias' for Dense 'd1'"):
        from_torch_state_dict(ours, {"weight": np.zeros((3, 2))})
    with pytest.raises(ArgumentError, match=r"unexpected key\(s\) \['0.weight'\] for Dense"):
        from_torch_state_dict(ours, {"0.weight": np.zeros((3, 2)), "weight": np.zeros((3, 2)),
                                     "bias": np.zeros(3)})
    with pytest.raises(ArgumentError, match="layer_index applies to the recurrent layers"):
        to_torch_state_dict(ours, layer_index=1)
    with pytest.raises(ArgumentTypeError, match="expected a state dict"):
        from_torch_state_dict(ours, [np.zeros((3, 2))])


def test_unsupported_unbuilt_and_per_position_prelu_are_refused():
    attention = L.MultiHeadAttention(2, 4, name="mha")
    with pytest.raises(ArgumentTypeError, match="MultiHeadAttention 'mha' has no PyTorch state "
                                                "dict conversion; supported: BatchNormalization"):
        to_torch_state_dict(attention)
    with pytest.raises(ArgumentError, match="Dense 'late' is not built"):
        to_torch_state_dict(L.Dense(2, name="late"))
    prelu = L.PReLU(name="p")
    prelu.build_for((None, 3, 4))
    with pytest.raises(ArgumentError, match=r"PReLU 'p' has alpha of shape \(3, 4\).*"
                                            r"shared_axes=\[1\]"):
        to_torch_state_dict(prelu)


def test_every_supported_name_is_a_layer_and_recurrent_layers_still_route():
    assert {"Conv2D", "Dense", "LSTM", "Bidirectional", "PReLU"} <= SUPPORTED_LAYERS
    assert all(hasattr(L, name) for name in SUPPORTED_LAYERS)
    lstm = L.LSTM(2, dtype="float64")
    lstm.build_for((None, None, 3))
    assert sorted(to_torch_state_dict(lstm)) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0",
                                                 "weight_ih_l0"]


def test_interop_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None; import shenjing.interop as i; "
            "print(i.to_torch_sequential.__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
