"""Reshaping layers (UpSampling1D/2D, RepeatVector, Permute, ZeroPadding1D, Cropping1D/2D) and
ops.resize, against Keras 3 on torch, PyTorch float64 and numeric gradients."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, ops
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.ops.resize import interpolation_matrix
from tests.helpers import check_against_torch, check_numeric_grad
from tests.keras_oracle import import_keras
from tests.layers.keras_step import compare_sgd_step

keras = import_keras()
BASE_KEYS = {"name", "trainable", "dtype"}


def _keras_out(layer, x):
    return keras.ops.convert_to_numpy(layer(x))


def _compare(name, config, x, exact=True):
    """Same output as Keras, and the same values for every Keras config key of the layer."""
    ours, theirs = getattr(layers, name)(**config), getattr(keras.layers, name)(**config)
    expected, got = _keras_out(theirs, x), ours(x).numpy()
    assert got.shape == expected.shape == ours.compute_output_shape(x.shape)
    if exact:  # copies, zeros and slices of the input: the same values by construction
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    their_config, our_config = theirs.get_config(), ours.get_config()
    for key in set(their_config) - BASE_KEYS:
        value = their_config[key]
        value = [list(v) if isinstance(v, tuple) else v for v in value] \
            if isinstance(value, (tuple, list)) else value
        assert our_config[key] == value, key
    assert ours.count_params() == theirs.count_params() == 0


@pytest.mark.parametrize("config", [{}, {"size": 1}, {"size": 3}], ids=str)
def test_up_sampling_1d(config, rng):
    _compare("UpSampling1D", config, rng.standard_normal((2, 4, 3)).astype(np.float32))


UP_2D = [
    {}, {"size": (1, 3)}, {"size": 3, "data_format": "channels_first"},
    {"size": (2, 3), "interpolation": "bilinear"},
    {"size": (3, 2), "interpolation": "bilinear", "data_format": "channels_first"},
    {"size": (2, 4), "interpolation": "bicubic"}, {"size": 1, "interpolation": "bilinear"},
]


@pytest.mark.parametrize("config", UP_2D, ids=str)
def test_up_sampling_2d(config, rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    _compare("UpSampling2D", config, x, exact=config.get("interpolation", "nearest") == "nearest")


def test_repeat_vector_and_permute(rng):
    _compare("RepeatVector", {"n": 3}, rng.standard_normal((2, 5)).astype(np.float32))
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    for dims in [(2, 1, 3), (3, 1, 2), (1, 2, 3)]:
        _compare("Permute", {"dims": dims}, x)


@pytest.mark.parametrize("config", [
    {}, {"padding": 0}, {"padding": (2, 0)}, {"padding": (1, 3), "data_format": "channels_first"},
], ids=str)
def test_zero_padding_1d(config, rng):
    _compare("ZeroPadding1D", config, rng.standard_normal((2, 4, 3)).astype(np.float32))


@pytest.mark.parametrize("config", [{}, {"cropping": 2}, {"cropping": (0, 3)},
                                    {"cropping": (2, 0)}], ids=str)
def test_cropping_1d(config, rng):
    _compare("Cropping1D", config, rng.standard_normal((2, 6, 3)).astype(np.float32))


@pytest.mark.parametrize("config", [
    {}, {"cropping": 1}, {"cropping": (1, 2)}, {"cropping": ((0, 2), (1, 0))},
    {"cropping": ((1, 1), (0, 3)), "data_format": "channels_first"},
], ids=str)
def test_cropping_2d(config, rng):
    _compare("Cropping2D", config, rng.standard_normal((2, 5, 6, 4)).astype(np.float32))


# ----- ops.resize: PyTorch float64 and numeric gradients ------------------------------------
@pytest.mark.parametrize("interpolation, size", [
    ("bilinear", (8, 9)), ("bilinear", (2, 5)), ("bicubic", (7, 12)), ("bicubic", (3, 2)),
    ("nearest", (7, 5)),
], ids=str)
def test_resize_against_torch(interpolation, size, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 4, 3, 2))  # N, H, W, C
    mode = "nearest-exact" if interpolation == "nearest" else interpolation
    corners = None if interpolation == "nearest" else False

    def theirs(t):
        y = F.interpolate(t.permute(0, 3, 1, 2), size=size, mode=mode, align_corners=corners)
        return y.permute(0, 2, 3, 1)

    check_against_torch(lambda t: ops.resize(t, size, interpolation), theirs, x)
    check_numeric_grad(lambda t: ops.resize(t, size, interpolation), x)


def test_resize_channels_first_and_rows_sum_to_one(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    first = ops.resize(x, (8, 7), "bicubic", data_format="channels_first").numpy()
    last = ops.resize(x.transpose(0, 2, 3, 1), (8, 7), "bicubic").numpy()
    np.testing.assert_allclose(first, last.transpose(0, 3, 1, 2), rtol=1e-12, atol=1e-12)
    for method in ("nearest", "bilinear", "bicubic"):  # interpolation keeps constants
        np.testing.assert_allclose(interpolation_matrix(5, 13, method).sum(axis=1), 1.0,
                                   rtol=1e-12)


def test_resize_errors():
    x = np.zeros((1, 2, 2, 1))
    with pytest.raises(ArgumentError, match="interpolation"):
        ops.resize(x, (4, 4), "lanczos3")
    with pytest.raises(ArgumentTypeError, match="size"):
        ops.resize(x, (4.0, 4), "bilinear")
    with pytest.raises(ArgumentError, match="rank 4"):
        ops.resize(np.zeros((2, 2, 1)), (4, 4))
    with pytest.raises(ArgumentError, match="matrix"):
        ops.axis_linear_map(x, np.ones((3, 5)), 1)


# ----- gradients through a model: one SGD step against Keras --------------------------------
def test_sgd_step_1d_layers(rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)

    def stack(lib):
        return [lib.Dense(3), lib.UpSampling1D(2), lib.Cropping1D((1, 2)),
                lib.ZeroPadding1D((2, 1)), lib.Permute((2, 1)), lib.Flatten(), lib.Dense(2)]

    compare_sgd_step(stack(layers), stack(keras.layers), x, y)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear", "bicubic"])
def test_sgd_step_2d_layers(interpolation, rng):
    x = rng.standard_normal((3, 4, 5, 2)).astype(np.float32)
    y = rng.standard_normal((3, 1)).astype(np.float32)

    def stack(lib):
        return [lib.Conv2D(3, 2, padding="same"),
                lib.UpSampling2D((2, 3), interpolation=interpolation),
                lib.Cropping2D(((1, 2), (3, 0))), lib.Flatten(), lib.Dense(4),
                lib.RepeatVector(2), lib.Flatten(), lib.Dense(1)]

    compare_sgd_step(stack(layers), stack(keras.layers), x, y)


# ----- errors, config, saving ---------------------------------------------------------------
@pytest.mark.parametrize("make, kind, words", [
    (lambda: layers.UpSampling1D(0), ArgumentError, "size"),
    (lambda: layers.UpSampling1D(1.5), ArgumentTypeError, "size"),
    (lambda: layers.UpSampling2D((2, 0)), ArgumentError, "size"),
    (lambda: layers.UpSampling2D(interpolation="cubic"), ArgumentError, "interpolation"),
    (lambda: layers.UpSampling2D(interpolation="lanczos3"), ArgumentError, "lanczos3"),
    (lambda: layers.UpSampling2D(data_format="nhwc"), ArgumentError, "data_format"),
    (lambda: layers.RepeatVector(-1), ArgumentError, "n must"),
    (lambda: layers.Permute((1, 3)), ArgumentError, "dims"),
    (lambda: layers.Permute(2), ArgumentTypeError, "dims"),
    (lambda: layers.ZeroPadding1D(-1), ArgumentError, "padding"),
    (lambda: layers.Cropping1D((1, 2, 3)), ArgumentError, "cropping"),
    (lambda: layers.Cropping2D(((1, 1), (1, -1))), ArgumentError, "cropping"),
    (lambda: layers.Cropping2D("1"), ArgumentTypeError, "cropping"),
], ids=range(13))
def test_bad_arguments(make, kind, words):
    with pytest.raises(kind, match=words):
        make()


@pytest.mark.parametrize("layer, shape, words", [
    (layers.UpSampling1D(), (2, 3), "rank 3"),
    (layers.UpSampling2D(), (2, 3, 3), "rank 4"),
    (layers.RepeatVector(2), (2, 3, 4), "rank 2"),
    (layers.Permute((2, 1)), (2, 3, 4, 5), "rank 3"),
    (layers.Cropping1D((2, 2)), (2, 4, 3), "at least one"),
    (layers.Cropping2D(((0, 0), (3, 3))), (2, 4, 6, 3), "at least one"),
], ids=range(6))
def test_bad_input_shapes_name_the_layer(layer, shape, words):
    with pytest.raises(ArgumentError, match=f"{type(layer).__name__} '{layer.name}'.*{words}"):
        layer(np.zeros(shape, np.float32))


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([
        layers.Input((4, 5, 2)), layers.Cropping2D(((1, 0), (0, 2))),
        layers.UpSampling2D((2, 1), interpolation="bilinear"), layers.Conv2D(2, 3),
        layers.Reshape((-1, 2)), layers.ZeroPadding1D((1, 2)), layers.UpSampling1D(3),
        layers.Cropping1D((2, 1)), layers.Permute((2, 1)), layers.Flatten(), layers.Dense(3),
        layers.RepeatVector(2),
    ])
    for layer in model.layers:
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    x = rng.standard_normal((2, 4, 5, 2)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.shenjing").predict(x, verbose=0),
                                  model.predict(x, verbose=0))
