"""DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1DTranspose/2D against Keras 3 itself: Keras's
weights copied in, same outputs, weight shapes, parameter counts and output shapes, one SGD
step in a tiny model; config round trips, save/load and argument errors."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


def _compare(name, config, x, rtol=1e-5, atol=1e-5):
    """Build ours and Keras's `name` on x, copy Keras's weights into ours, compare."""
    ours, theirs = getattr(layers, name)(**config), getattr(keras.layers, name)(**config)
    expected = theirs(x).detach().cpu().numpy()
    ours(x)  # build
    their_weights = theirs.get_weights()
    assert [w.name.split("/")[-1] for w in ours.weights] == [w.name for w in theirs.weights]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in their_weights]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(their_weights)
    got = ours(x).numpy()
    assert got.shape == expected.shape
    assert tuple(ours.compute_output_shape(x.shape)) == tuple(theirs.compute_output_shape(x.shape))
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


DEPTHWISE_2D = [
    {"kernel_size": 3},
    {"kernel_size": (3, 2), "strides": 2, "padding": "same", "depth_multiplier": 2},
    {"kernel_size": 3, "dilation_rate": (2, 1), "padding": "same", "use_bias": False},
    {"kernel_size": 2, "strides": (2, 3), "dilation_rate": 2, "padding": "SAME",
     "activation": "relu"},
    {"kernel_size": 3, "depth_multiplier": 3, "padding": "same",
     "data_format": "channels_first"},
]
SEPARABLE_2D = [
    {"filters": 4, "kernel_size": 3},
    {"filters": 2, "kernel_size": (2, 3), "strides": 2, "padding": "same", "depth_multiplier": 2},
    {"filters": 5, "kernel_size": 3, "dilation_rate": 2, "padding": "same", "use_bias": False,
     "activation": "tanh"},
    {"filters": 3, "kernel_size": 3, "strides": (1, 2), "depth_multiplier": 2,
     "data_format": "channels_first"},
]
TRANSPOSE_2D = [
    {"filters": 4, "kernel_size": 3},
    {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
    {"filters": 2, "kernel_size": (4, 3), "strides": (2, 3), "output_padding": (1, 2)},
    {"filters": 2, "kernel_size": (3, 2), "strides": 2, "padding": "same", "output_padding": 1,
     "use_bias": False},
    {"filters": 2, "kernel_size": 2, "strides": (3, 2), "padding": "same", "output_padding": 0},
    {"filters": 3, "kernel_size": 3, "dilation_rate": (2, 3), "padding": "same",
     "activation": "relu"},
    {"filters": 2, "kernel_size": (1, 2), "strides": 3},  # stride > kernel: zeros between
    {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
     "data_format": "channels_first"},
]


def _input(config, rng, rank=2):
    shape = (2, 7, 6, 3) if rank == 2 else (2, 9, 3)
    if config.get("data_format") == "channels_first":
        shape = (shape[0], shape[-1], *shape[1:-1])
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name, config", [("DepthwiseConv2D", c) for c in DEPTHWISE_2D]
                         + [("SeparableConv2D", c) for c in SEPARABLE_2D]
                         + [("Conv2DTranspose", c) for c in TRANSPOSE_2D],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_2d_layers_match_keras(name, config, rng):
    _compare(name, config, _input(config, rng))


CASES_1D = [
    ("DepthwiseConv1D", {"kernel_size": 3}),
    ("DepthwiseConv1D", {"kernel_size": 4, "strides": 2, "padding": "same",
                         "depth_multiplier": 2}),
    ("DepthwiseConv1D", {"kernel_size": 2, "dilation_rate": 3, "data_format": "channels_first"}),
    ("SeparableConv1D", {"filters": 4, "kernel_size": 3, "padding": "same"}),
    ("SeparableConv1D", {"filters": 2, "kernel_size": 3, "strides": 2, "depth_multiplier": 3,
                         "activation": "relu"}),
    ("Conv1DTranspose", {"filters": 4, "kernel_size": 3, "strides": 2}),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 4, "strides": 3, "padding": "same",
                         "output_padding": 2}),
    ("Conv1DTranspose", {"filters": 3, "kernel_size": 3, "dilation_rate": 2, "padding": "same",
                         "data_format": "channels_first"}),
]


@pytest.mark.parametrize("name, config", CASES_1D,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_1d_layers_match_keras(name, config, rng):
    _compare(name, config, _input(config, rng, rank=1))


@pytest.mark.parametrize("name, config, shape", [
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same"},
     (6, 5, 2)),
    ("SeparableConv2D", {"filters": 3, "kernel_size": 3, "strides": 2}, (7, 7, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"},
     (3, 4, 2)),
    ("DepthwiseConv1D", {"kernel_size": 3, "depth_multiplier": 2}, (8, 3)),
    ("SeparableConv1D", {"filters": 3, "kernel_size": 2, "padding": "same"}, (8, 3)),
    ("Conv1DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1},
     (5, 3)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_one_sgd_step_matches_keras(name, config, shape, rng):
    """The same tiny model in both libraries, the same weights, one train_on_batch with SGD:
    every weight (the conv's included) ends the same."""
    theirs = keras.Sequential([keras.Input(shape), getattr(keras.layers, name)(**config),
                               keras.layers.Flatten(), keras.layers.Dense(2)])
    ours = sj.Sequential([layers.Input(shape), getattr(layers, name)(**config),
                          layers.Flatten(), layers.Dense(2)])
    start = theirs.get_weights()
    ours.set_weights(start)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=sj.optimizers.SGD(0.1), loss="mse")
    x = rng.standard_normal((4, *shape)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    theirs.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    for before, mine, expected in zip(start, ours.get_weights(), theirs.get_weights()):
        assert not np.allclose(before, expected)  # the step changed every weight
        np.testing.assert_allclose(mine, expected, rtol=1e-5, atol=1e-6)


FAMILIES = [
    (layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                            activation="relu", depthwise_regularizer="l2"), (7, 6, 3)),
    (layers.SeparableConv1D(4, 3, dilation_rate=2, depth_multiplier=2,
                            data_format="channels_first", pointwise_initializer="he_normal"),
     (3, 10)),
    (layers.Conv2DTranspose(2, (3, 2), strides=(2, 1), padding="same", output_padding=(1, 0),
                            kernel_regularizer="l1"), (4, 5, 3)),
]


@pytest.mark.parametrize("layer, shape", FAMILIES, ids=lambda v: getattr(v, "name", None))
def test_config_round_trip_and_save_load(layer, shape, tmp_path, rng):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    required = {k: config[k] for k in ("filters", "kernel_size") if k in config}
    keras_keys = set(getattr(keras.layers, type(layer).__name__)(**required).get_config())
    # ours holds every Keras key but the ones we do not take (constraints, activity_regularizer)
    assert keras_keys - set(config) <= {"activity_regularizer", "kernel_constraint",
                                        "bias_constraint", "depthwise_constraint",
                                        "pointwise_constraint"}
    model = sj.Sequential([layers.Input(shape), layer, layers.Flatten(), layers.Dense(2)])
    x = rng.standard_normal((3, *shape)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    assert loaded.layers[0].get_config() == config
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))  # same weights, same ops
    assert len(layer.regularization_losses()) == (0 if "Separable" in type(layer).__name__
                                                  else 1)


@pytest.mark.parametrize("make, match", [
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=0), r"depth_multiplier must be"),
    (lambda: layers.DepthwiseConv2D(3, padding="causal"), r"padding must be one of"),
    (lambda: layers.DepthwiseConv1D((3, 3)), r"kernel_size must be"),
    (lambda: layers.SeparableConv2D(0, 3), r"filters must be"),
    (lambda: layers.SeparableConv2D(2, 3, padding=1), r"padding must be one of"),
    (lambda: layers.SeparableConv1D(2, 3, pointwise_initializer="nope"),
     r"pointwise_initializer"),
    (lambda: layers.Conv2DTranspose(2, 3, padding="full"), r"padding must be one of"),
    (lambda: layers.Conv2DTranspose(2, 3, strides=2, output_padding=2),
     r"output_padding must be less than strides"),
    (lambda: layers.Conv2DTranspose(2, 3, output_padding=(0, -1)), r"output_padding must be"),
    (lambda: layers.Conv1DTranspose(2, 3, strides=2, dilation_rate=2),
     r"strides > 1 is not supported together with dilation_rate > 1"),
    (lambda: layers.Conv2DTranspose(2, 3, depthwise_initializer="zeros"),
     r"Unrecognized keyword arguments"),
])
def test_bad_arguments_are_refused_naming_the_layer(make, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        make()
    assert "'" in str(info.value).split(":")[0] or "Unrecognized" in str(info.value)


def test_bad_inputs_are_refused_naming_the_layer():
    layer = layers.DepthwiseConv2D(3, name="dw")
    layer(np.zeros((1, 5, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"DepthwiseConv2D 'dw': expected 2 input channels"):
        layer(np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"DepthwiseConv2D 'dw': expected input of rank 4"):
        layer(np.zeros((1, 5, 2), np.float32))
    with pytest.raises(ValueError, match=r"SeparableConv1D 's': input shape .* too small"):
        layers.SeparableConv1D(2, 5, name="s")(np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"Conv2DTranspose 't': input shape .* output of size 0"):
        layers.Conv2DTranspose(2, 2, padding="same", output_padding=0, name="t")(
            np.zeros((1, 1, 4, 2), np.float32))
    transpose = layers.Conv1DTranspose(2, 3, name="t1")
    transpose(np.zeros((1, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"Conv1DTranspose 't1': expected 3 input channels"):
        transpose(np.zeros((1, 4, 2), np.float32))


def test_separable_equals_depthwise_then_pointwise(rng):
    """The separable layer is the depthwise layer then a 1x1 Conv2D, weights shared."""
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    sep = layers.SeparableConv2D(4, 3, depth_multiplier=2, padding="same")
    y = sep(x).numpy()
    depthwise, kernel, bias = sep.get_weights()
    dw = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False)
    pw = layers.Conv2D(4, 1)
    mid = dw(x)
    dw.set_weights([depthwise])
    pw(mid)
    pw.set_weights([kernel, bias])
    np.testing.assert_allclose(y, pw(dw(x)).numpy(), rtol=1e-6, atol=1e-6)
