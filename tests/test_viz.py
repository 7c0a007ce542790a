"""shenjing.viz: feature maps, kernels, LSTM gate statistics and plots; matplotlib optional."""

import sys

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, viz

BLOCKED = ("matplotlib", "matplotlib.figure", "matplotlib.backends",
           "matplotlib.backends.backend_agg")


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Make `import matplotlib...` fail as if it were not installed."""
    for name in BLOCKED:
        monkeypatch.setitem(sys.modules, name, None)


def _cnn(seed=0):
    sj.utils.set_seed(seed)
    return sj.Sequential([
        layers.Input((9, 9, 2)), layers.Conv2D(3, 3, padding="same", name="c1"),
        layers.Activation("relu"), layers.MaxPooling2D(), layers.Conv2D(4, 2, name="c2"),
        layers.Flatten(), layers.Dense(2),
    ])


def _conv_same_numpy(image, kernel, bias):
    """Direct 'same' 3x3 stride-1 convolution (cross-correlation) in NumPy: the reference."""
    padded = np.pad(image, ((1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(0, 1))
    return np.einsum("hwcij,ijcf->hwf", windows, kernel) + bias


def test_feature_maps_match_a_direct_convolution_and_the_layer_chain(rng):
    model = _cnn()
    image = rng.standard_normal((9, 9, 2)).astype(np.float32)
    maps = viz.feature_maps(model, image)
    assert list(maps) == ["c1", "c2"]
    c1 = model.get_layer("c1")
    expected = _conv_same_numpy(image, c1.kernel.numpy(), c1.bias.numpy())
    np.testing.assert_allclose(maps["c1"], expected, rtol=1e-5, atol=1e-5)
    x = image[None]
    for layer in model.layers[:4]:
        x = layer(x)
    assert maps["c2"].shape == (3, 3, 4) == model.get_layer("c2").output_shape[1:]
    np.testing.assert_allclose(maps["c2"], x.numpy()[0], rtol=1e-6)
    np.testing.assert_array_equal(viz.feature_maps(model, image[None])["c1"], maps["c1"])


def test_feature_maps_of_a_functional_model_with_two_branches(rng):
    inputs = sj.Input((8, 8, 1))
    a = layers.Conv2D(2, 3, name="left")(inputs)
    b = layers.Conv2D(5, 1, strides=2, name="right")(inputs)
    out = layers.Concatenate()([layers.Flatten()(a), layers.Flatten()(b)])
    model = sj.Model(inputs, out)
    image = rng.standard_normal((8, 8, 1))
    maps = viz.feature_maps(model, image)
    assert {k: v.shape for k, v in maps.items()} == {"left": (6, 6, 2), "right": (4, 4, 5)}
    right = model.get_layer("right")
    expected = image[::2, ::2] @ right.kernel.numpy()[0, 0] + right.bias.numpy()
    np.testing.assert_allclose(maps["right"], expected, rtol=1e-5, atol=1e-6)


def test_feature_maps_errors(rng):
    model = _cnn()
    with pytest.raises(ValueError, match=r"expected one image .* got shape \(2, 9, 9, 2\)"):
        viz.feature_maps(model, rng.standard_normal((2, 9, 9, 2)))
    dense = sj.Sequential([layers.Input((4,)), layers.Dense(2)])
    with pytest.raises(ValueError, match="has no convolution layer"):
        viz.feature_maps(dense, rng.standard_normal((1, 4)))
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        viz.feature_maps(model, rng.standard_normal((9, 9, 2)), layer_names=["nope"])


def test_kernel_tiles_follow_each_layer_layout(rng):
    model = _cnn()
    c1 = model.get_layer("c1")
    tiles = viz.kernel_tiles(c1)
    assert len(tiles) == 3
    np.testing.assert_allclose(tiles[1], c1.kernel.numpy()[..., 1].mean(axis=-1))
    local = layers.LocallyConnected2D(2, (2, 3), strides=(2, 3))
    local(rng.standard_normal((1, 4, 6, 1)))  # 2 x 2 positions, window 2 x 3
    tiles = viz.kernel_tiles(local)
    assert len(tiles) == 4 and tiles[3].shape == (2, 3)
    np.testing.assert_allclose(tiles[3].ravel(), local.kernel.numpy()[3, :, 0])
    dense = layers.Dense(3)
    dense(rng.standard_normal((1, 20)))
    tiles = viz.kernel_tiles(dense, image_shape=(4, 5))
    np.testing.assert_allclose(tiles[2], dense.kernel.numpy()[:, 2].reshape(4, 5))
    with pytest.raises(ValueError, match="pass image_shape"):
        viz.kernel_tiles(dense)


def test_gate_statistics_of_known_gates(rng):
    """Zero weights, bias i = +10, f = -10, c = 0, o = 0: i ~ 1, f ~ 0, c~ = 0, o = 1/2."""
    lstm = layers.LSTM(3)
    x = rng.standard_normal((4, 6, 2)).astype(np.float32)
    lstm(x)
    bias = np.concatenate([np.full(3, 10.0), np.full(3, -10.0), np.zeros(3), np.zeros(3)])
    lstm.set_weights([np.zeros((2, 12)), np.zeros((3, 12)), bias])
    stats = viz.lstm_gate_statistics(lstm, x)
    assert (stats["i"]["near_1"], stats["i"]["near_0"]) == (1.0, 0.0)
    assert (stats["f"]["near_0"], stats["f"]["near_1"]) == (1.0, 0.0)
    assert (stats["c"]["near_0"], stats["o"]["near_0"], stats["o"]["near_1"]) == (1.0, 0.0, 0.0)
    assert stats["o"]["mean"] == pytest.approx(0.5)
    np.testing.assert_array_equal(stats["i"]["near_1_per_unit"], np.ones(3))
    assert stats["h_max_abs_diff"] < 1e-7


@pytest.mark.parametrize("options", [dict(), dict(return_sequences=True, go_backwards=True)])
def test_gate_statistics_replay_reproduces_the_layer_inside_a_model(rng, options):
    sj.utils.set_seed(3)
    model = sj.Sequential([layers.Input((7, 3)), layers.Dense(5),
                           layers.LSTM(6, **options), layers.Dense(1)])
    x = rng.standard_normal((8, 7, 3)).astype(np.float32)
    stats = viz.lstm_gate_statistics(model, x)
    assert stats["h_max_abs_diff"] < 1e-5
    for gate in viz.GATES:
        s = stats[gate]
        assert 0 <= s["near_0"] <= 1 and 0 <= s["near_1"] <= 1
        assert s["near_0_per_unit"].shape == (6,)
        assert s["near_0"] == pytest.approx(s["near_0_per_unit"].mean())


def test_gate_statistics_skip_masked_steps(rng):
    sj.utils.set_seed(4)
    model = sj.Sequential([layers.Input((None,), dtype="int32"),
                           layers.Embedding(10, 4, mask_zero=True), layers.LSTM(3)])
    tokens = np.array([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    stats = viz.lstm_gate_statistics(model, tokens)
    assert stats["h_max_abs_diff"] < 1e-6
    # the same statistics as the real steps alone, fed one sequence at a time
    one = viz.lstm_gate_statistics(model, tokens[:1, :3])
    two = viz.lstm_gate_statistics(model, tokens[1:, :2])
    expected = (3 * one["f"]["mean"] + 2 * two["f"]["mean"]) / 5
    assert stats["f"]["mean"] == pytest.approx(expected, rel=1e-5)


def test_gate_statistics_errors():
    with pytest.raises(ValueError, match="expected an LSTM layer or a model with one"):
        viz.lstm_gate_statistics(sj.Sequential([layers.Input((3, 2)), layers.GRU(2)]),
                                 np.zeros((1, 3, 2)))


def test_numeric_helpers_work_without_matplotlib(no_matplotlib, rng):
    model = _cnn()
    assert set(viz.feature_maps(model, rng.standard_normal((9, 9, 2)))) == {"c1", "c2"}
    lstm = layers.LSTM(2)
    assert viz.lstm_gate_statistics(lstm, rng.standard_normal((2, 3, 1)))["h_max_abs_diff"] < 1e-6
    with pytest.raises(ImportError, match=r'pip install "shenjing\[plot\]"'):
        viz.plot_kernels(model.get_layer("c1"))
    with pytest.raises(ImportError, match=r'pip install "shenjing\[plot\]"'):
        viz.plot_history({"loss": [1.0, 0.5]})


def test_plots_write_png_files(tmp_path, rng):
    pytest.importorskip("matplotlib")
    from tests.lab import assert_png

    model = _cnn()
    image = rng.standard_normal((9, 9, 2))
    lstm = layers.LSTM(4)
    stats = viz.lstm_gate_statistics(lstm, rng.standard_normal((3, 5, 2)))
    history = {"loss": [1.0, 0.6, 0.4], "accuracy": [0.5, 0.7, 0.8],
               "val_loss": [1.1, 0.8, 0.7], "val_accuracy": [0.4, 0.6, 0.7]}
    drawings = {
        "maps.png": lambda p: viz.plot_feature_maps(model, image, path=p),
        "kernels.png": lambda p: viz.plot_kernels(model.get_layer("c1"), path=p),
        "gates.png": lambda p: viz.plot_gate_statistics(stats, path=p),
        "history.png": lambda p: viz.plot_history(history, path=p),
    }
    for name, draw in drawings.items():
        figure = draw(tmp_path / name)
        assert_png(tmp_path / name)
        assert viz.figure_png(figure)[:4] == b"\x89PNG"
    panels = [a for a in viz.plot_history(history).axes]
    assert [a.get_title() for a in panels] == ["loss", "accuracy"]
    assert [len(a.lines) for a in panels] == [2, 2]
    np.testing.assert_allclose(panels[1].lines[1].get_ydata(), history["val_accuracy"])
    with pytest.raises(ValueError, match="history is empty"):
        viz.plot_history({})
