"""LocallyConnected2D: Keras 2 shapes, parameter counts and kernel layout; values and
gradients against a torch unfold + einsum reference (float64)."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.helpers import check_against_torch

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _reference(kernel_size, strides, activation=None, channels_first=False):
    """torch: unfold gives each window in (c, kh, kw) order, Keras 2's channels_first layout;
    for channels_last the window is reordered to (kh, kw, c)."""
    (KH, KW), (SH, SW) = kernel_size, strides

    def fn(x, kernel, bias=None):
        x_nchw = x if channels_first else x.permute(0, 3, 1, 2)
        N, C, H, W = x_nchw.shape
        OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
        cols = F.unfold(x_nchw, (KH, KW), stride=(SH, SW))  # (N, C*KH*KW, P)
        cols = cols.reshape(N, C, KH, KW, OH * OW)
        cols = cols.permute(0, 4, 1, 2, 3) if channels_first else cols.permute(0, 4, 2, 3, 1)
        y = torch.einsum("npk,pkf->npf", cols.reshape(N, OH * OW, -1), kernel)
        y = y.reshape(N, OH, OW, -1)
        if bias is not None:
            y = y + bias
        y = {None: y, "relu": torch.relu(y), "tanh": torch.tanh(y)}[activation]
        return y.permute(0, 3, 1, 2) if channels_first else y

    return fn


CASES = [
    dict(filters=3, kernel_size=3),
    dict(filters=2, kernel_size=(2, 3), strides=(2, 1), activation="relu"),
    dict(filters=4, kernel_size=2, strides=3, use_bias=False),
    dict(filters=1, kernel_size=(4, 2), strides=(1, 4), activation="tanh"),
    dict(filters=2, kernel_size=3, strides=2, data_format="channels_first"),
    dict(filters=3, kernel_size=(1, 2), data_format="channels_first", use_bias=False),
]


def _run_through_layer(layer):
    """fn(x, kernel[, bias]) that computes the built layer with the given weight tensors."""

    def fn(x, kernel, bias=None):
        layer.kernel, layer.bias = kernel, bias
        return layer.call(x)

    return fn


@pytest.mark.parametrize("config", CASES, ids=range(len(CASES)))
def test_values_and_gradients_against_torch(config, rng):
    first = config.get("data_format") == "channels_first"
    x = rng.standard_normal((2, 3, 7, 8) if first else (2, 7, 8, 3))
    layer = layers.LocallyConnected2D(**config, dtype="float64")
    layer(x)
    weights = [rng.standard_normal(w.shape) for w in layer.get_weights()]
    ks, st = layer.kernel_size, layer.strides
    ref = _reference(ks, st, config.get("activation"), first)
    check_against_torch(_run_through_layer(layer), ref, x, *weights)


@pytest.mark.parametrize("config", CASES, ids=range(len(CASES)))
def test_shapes_and_params_formula(config):
    first = config.get("data_format") == "channels_first"
    H, W, C = 9, 11, 3
    layer = layers.LocallyConnected2D(**config)
    y = layer(np.zeros((2, C, H, W) if first else (2, H, W, C), np.float32))
    (KH, KW), (SH, SW), f = layer.kernel_size, layer.strides, layer.filters
    OH, OW = (H - KH) // SH + 1, (W - KW) // SW + 1
    bias = config.get("use_bias", True)
    assert y.shape == ((2, f, OH, OW) if first else (2, OH, OW, f))
    assert layer.compute_output_shape((None, C, H, W) if first else (None, H, W, C)) == (
        (None, f, OH, OW) if first else (None, OH, OW, f))
    assert [w.name.split("/")[-1] for w in layer.weights] == ["kernel", "bias"][: 1 + bias]
    assert layer.kernel.shape == (OH * OW, KH * KW * C, f)
    if bias:
        assert layer.bias.shape == (OH, OW, f)
    assert layer.count_params() == OH * OW * (KH * KW * C + bias) * f


def test_keras2_docstring_example():
    """Keras 2: 3x3, 64 filters on 32x32x3 -> (30, 30, 64), (30*30)*(3*3*3*64) + (30*30)*64."""
    model = sj.Sequential([layers.Input((32, 32, 3)), layers.LocallyConnected2D(64, (3, 3)),
                           layers.LocallyConnected2D(32, (3, 3))])
    assert model.layers[0].output_shape == (None, 30, 30, 64)
    assert model.layers[0].count_params() == 30 * 30 * 3 * 3 * 3 * 64 + 30 * 30 * 64
    assert model.output_shape == (None, 28, 28, 32)


def test_connectivity_recipe_100x100_to_10_units(rng):
    """Dense 100000 weights, local 10x10 patches 1000, one shared 10x10 kernel 100: ten hidden
    units each, the local and shared ones on a 2 x 5 grid of disjoint 10x10 patches."""
    shape = (100, 100, 1)
    dense = sj.Sequential([layers.Input(shape), layers.Flatten(),
                           layers.Dense(10, use_bias=False)])
    local = sj.Sequential([layers.Input(shape), layers.LocallyConnected2D(
        1, 10, strides=(50, 20), use_bias=False)])
    shared = sj.Sequential([layers.Input(shape), layers.Conv2D(
        1, 10, strides=(50, 20), use_bias=False)])
    assert [m.count_params() for m in (dense, local, shared)] == [100 * 100 * 10, 10 * 100, 100]
    assert dense.output_shape == (None, 10)
    assert local.output_shape == shared.output_shape == (None, 2, 5, 1)
    # each local unit depends on exactly its own 10x10 patch: rows 50*i.., columns 20*j..
    x = sj.Tensor(rng.standard_normal((1, *shape)).astype(np.float32), requires_grad=True)
    y = local.layers[-1](x)
    for i, j in [(0, 0), (1, 3)]:
        x.grad = None
        upstream = np.zeros(y.shape, np.float32)
        upstream[0, i, j, 0] = 1
        y.backward(upstream)
        expected = np.zeros(shape, bool)
        expected[50 * i : 50 * i + 10, 20 * j : 20 * j + 10] = True
        np.testing.assert_array_equal(x.grad[0] != 0, expected)
        kernel = local.layers[-1].kernel.numpy()[i * 5 + j, :, 0].reshape(10, 10)
        np.testing.assert_array_equal(x.grad[0, ..., 0][expected[..., 0]].reshape(10, 10),
                                      kernel)


def test_float32_stays_float32(rng):
    layer = layers.LocallyConnected2D(2, 3, strides=2, activation="relu")
    x = sj.Tensor(rng.standard_normal((2, 7, 7, 3)).astype(np.float32), requires_grad=True)
    y = layer(x)
    assert y.dtype == np.float32
    y.backward(np.ones(y.shape, np.float32))
    assert x.grad.dtype == layer.kernel.grad.dtype == layer.bias.grad.dtype == np.float32


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([layers.Input((3, 8, 8)), layers.LocallyConnected2D(
        2, (3, 2), strides=(2, 3), data_format="channels_first", activation="tanh"),
        layers.Flatten(), layers.Dense(2)])
    layer = model.layers[0]
    clone = layers.LocallyConnected2D.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.kernel_size, clone.strides, clone.data_format) == ((3, 2), (2, 3),
                                                                    "channels_first")
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    model.save(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.safetensors").predict(x),
                                  model.predict(x))


def test_errors():
    with pytest.raises(ValueError, match=r"only padding='valid' is supported .*got 'same'"):
        layers.LocallyConnected2D(2, 3, padding="same")
    with pytest.raises(ValueError, match="only implementation=1 is supported"):
        layers.LocallyConnected2D(2, 3, implementation=2)
    with pytest.raises(ValueError, match="filters must be a positive integer, got 0"):
        layers.LocallyConnected2D(0, 3)
    with pytest.raises(ValueError, match=r"kernel_size must be a positive int or 2 of them"):
        layers.LocallyConnected2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="data_format must be"):
        layers.LocallyConnected2D(2, 3, data_format="nhwc")
    layer = layers.LocallyConnected2D(2, 3, name="lc")
    with pytest.raises(ValueError, match=r"LocallyConnected2D 'lc': expected input of rank 4 "
                                         r"\(batch, height, width, channels\), got shape "
                                         r"\(2, 8, 3\)"):
        layer(np.zeros((2, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"input shape \(2, 2, 8, 3\) is too small for "
                                         r"kernel_size \(3, 3\)"):
        layer(np.zeros((2, 2, 8, 3), np.float32))
    with pytest.raises(ValueError, match="needs the height, width and channels known"):
        sj.Sequential([layers.Input((None, 8, 3)), layer])
    layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"was built for \(height, width, channels\) = "
                                         r"\(5, 5, 3\), got \(6, 5, 3\)"):
        layer(np.zeros((1, 6, 5, 3), np.float32))
