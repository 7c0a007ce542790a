"""Rescaling, Normalization and Resizing against Keras 3 (torch backend): outputs, weights,
adapt, one SGD step through a model, config round trips and save/load."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras

keras = import_keras()


def _numpy(value):
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _one_sgd_step(ours, theirs, x, y):
    """Both models (same weights, Keras's copied into ours) take one SGD(0.1) step on mse;
    returns the weights after, ours and theirs."""
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=sj.optimizers.SGD(0.1), loss="mse")
    theirs.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    return ours.get_weights(), theirs.get_weights()


def _assert_weights_close(ours, theirs, rtol=1e-5, atol=1e-6):
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    for mine, ref in zip(ours, theirs):
        np.testing.assert_allclose(mine, ref, rtol=rtol, atol=atol)


# ----- Rescaling ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0),
                                           ([0.5, 2.0, -1.0], [0.0, 1.0, 2.0])])
def test_rescaling_matches_keras(scale, offset, rng):
    x = rng.uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    ours, theirs = layers.Rescaling(scale, offset), keras.layers.Rescaling(scale, offset)
    np.testing.assert_allclose(ours(x).numpy(), _numpy(theirs(x)), rtol=1e-6, atol=1e-6)
    assert ours.count_params() == theirs.count_params() == 0
    config = ours.get_config()
    assert {"scale", "offset"} <= set(config) and config["scale"] == scale
    again = layers.Rescaling.from_config(config)
    np.testing.assert_array_equal(again(x).numpy(), ours(x).numpy())  # same ops: exact


def test_rescaling_integer_images_become_floats():
    x = np.array([[0, 128, 255]], dtype=np.uint8)
    got = layers.Rescaling(1 / 255)(x)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), [[0.0, 128 / 255, 1.0]], rtol=1e-6)


def test_rescaling_refuses_bad_scale():
    with pytest.raises(ArgumentTypeError, match="scale"):
        layers.Rescaling("1/255")
    with pytest.raises(ArgumentError, match="scale"):
        layers.Rescaling(float("nan"))


# ----- Normalization -----------------------------------------------------------------------
@pytest.mark.parametrize("axis, shape", [(-1, (20, 3)), (None, (20, 3)), (-1, (6, 4, 5, 3)),
                                         ((1, 2), (6, 4, 5, 3)), ((-1, 1), (5, 4, 3))])
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_adapt_matches_keras(axis, shape, invert, rng):
    data = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    ours = layers.Normalization(axis=axis, invert=invert)
    theirs = keras.layers.Normalization(axis=axis, invert=invert)
    ours.adapt(data)
    theirs.adapt(data)
    assert [w.name.split("/")[-1] for w in ours.weights] == [w.name for w in theirs.weights]
    assert [(w.shape, w.dtype) for w in ours.get_weights()] == [
        (w.shape, w.dtype) for w in theirs.get_weights()]  # mean, variance, count (int32)
    assert ours.count_params() == theirs.count_params()
    assert ours.trainable_weights == [] and len(ours.non_trainable_weights) == 3
    _assert_weights_close(ours.get_weights(), theirs.get_weights(), rtol=1e-5, atol=1e-5)
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(ours(x).numpy(), _numpy(theirs(x)), rtol=1e-5, atol=1e-5)


def test_normalization_adapt_from_batches_matches_keras(rng):
    batches = [(rng.standard_normal((n, 4)) * [1, 2, 3, 4] + 5).astype(np.float32)
               for n in (7, 3, 11)]
    ours, theirs = layers.Normalization(), keras.layers.Normalization()
    ours.adapt(batches)
    # Keras adapts from an iterable only with tensorflow installed; the merged statistics are
    # those of all the data at once, which Keras adapts from an array
    theirs.adapt(np.concatenate(batches))
    _assert_weights_close(ours.get_weights(), theirs.get_weights(), rtol=1e-5, atol=1e-5)
    # a generator of (x, y) pairs, as fit takes
    again = layers.Normalization()
    again.adapt((b, np.zeros(len(b))) for b in batches)
    _assert_weights_close(again.get_weights(), ours.get_weights(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("mean, variance, axis, shape", [
    (3.0, 2.0, -1, (4, 3)), ([1.0, 2.0, 3.0], [4.0, 5.0, 0.0], -1, (4, 3)),
    ([[1.0], [2.0]], [[1.0], [9.0]], (1, 2), (3, 2, 1)),
])
@pytest.mark.parametrize("invert", [False, True])
def test_normalization_given_mean_and_variance_matches_keras(mean, variance, axis, shape,
                                                             invert, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    ours = layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    theirs = keras.layers.Normalization(axis=axis, mean=mean, variance=variance, invert=invert)
    np.testing.assert_allclose(ours(x).numpy(), _numpy(theirs(x)), rtol=1e-6, atol=1e-6)
    assert ours.count_params() == theirs.count_params() == 0
    assert ours.get_weights() == theirs.get_weights() == []
    again = layers.Normalization.from_config(ours.get_config())
    np.testing.assert_array_equal(again(x).numpy(), ours(x).numpy())  # same ops: exact


def test_normalization_takes_keras_weights_and_config(rng):
    data = rng.standard_normal((10, 5)).astype(np.float32)
    theirs = keras.layers.Normalization()
    theirs.adapt(data)
    ours = layers.Normalization.from_config(
        {k: v for k, v in theirs.get_config().items() if k in ("axis", "invert", "mean",
                                                               "variance")})
    ours.build_for((None, 5))
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(data).numpy(), _numpy(theirs(data)), rtol=1e-6, atol=1e-6)


def test_normalization_in_a_model_sgd_step_matches_keras(rng):
    data = (rng.standard_normal((16, 4)) * 2 + 1).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    theirs_norm, ours_norm = keras.layers.Normalization(), layers.Normalization()
    theirs_norm.adapt(data)
    ours_norm.adapt(data)
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Rescaling(0.5, -1.0),
                               theirs_norm, keras.layers.Dense(2)])
    ours = sj.Sequential([layers.Input((4,)), layers.Rescaling(0.5, -1.0), ours_norm,
                          layers.Dense(2)])
    _assert_weights_close(*_one_sgd_step(ours, theirs, data, y))


def test_normalization_errors_name_the_layer(rng):
    with pytest.raises(ArgumentError, match="both mean and variance"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ArgumentError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0])
    with pytest.raises(ArgumentTypeError, match="invert"):
        layers.Normalization(invert=1)
    layer = layers.Normalization(name="norm")
    layer.adapt(rng.standard_normal((5, 3)))
    with pytest.raises(ArgumentError, match="Normalization 'norm'.*built for"):
        layer.adapt(rng.standard_normal((5, 4)))
    with pytest.raises(ArgumentError, match="no data"):
        layers.Normalization().adapt([])
    with pytest.raises(ArgumentTypeError, match=r"np.asarray\(data\)"):
        layers.Normalization().adapt([[1.0, 2.0], [3.0, 4.0]])  # rows, not batches
    with pytest.raises(ArgumentError, match="out of range"):
        layers.Normalization(axis=3)(np.zeros((2, 3)))


# ----- Resizing ----------------------------------------------------------------------------
RESIZE_CASES = [
    {"height": 4, "width": 3}, {"height": 13, "width": 20}, {"height": 7, "width": 9},
    {"height": 3, "width": 10, "interpolation": "nearest"},
    {"height": 14, "width": 5, "interpolation": "nearest"},
    {"height": 4, "width": 4, "crop_to_aspect_ratio": True},
    {"height": 5, "width": 11, "crop_to_aspect_ratio": True, "interpolation": "nearest"},
    {"height": 4, "width": 4, "pad_to_aspect_ratio": True, "fill_value": 2.0},
    {"height": 6, "width": 4, "data_format": "channels_first"},
]


@pytest.mark.parametrize("config", RESIZE_CASES, ids=range(len(RESIZE_CASES)))
def test_resizing_matches_keras(config, rng):
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    ours, theirs = layers.Resizing(**config), keras.layers.Resizing(**config)
    got, expected = ours(x).numpy(), _numpy(theirs(x))
    assert got.shape == expected.shape == ours.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours(x[0]).numpy(), _numpy(theirs(x[0])), rtol=1e-5, atol=1e-5)
    keras_config = theirs.get_config()
    keys = set(keras_config) - {"name", "dtype", "trainable"}
    assert {k: ours.get_config()[k] for k in keys} == {k: keras_config[k] for k in keys}
    again = layers.Resizing.from_config(ours.get_config())
    np.testing.assert_array_equal(again(x).numpy(), got)  # same ops: exact


def test_resizing_in_a_model_sgd_step_matches_keras(rng):
    x = rng.standard_normal((4, 6, 5, 2)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)
    theirs = keras.Sequential([keras.Input((6, 5, 2)), keras.layers.Resizing(4, 8),
                               keras.layers.Conv2D(3, 3), keras.layers.Flatten(),
                               keras.layers.Dense(2)])
    ours = sj.Sequential([layers.Input((6, 5, 2)), layers.Resizing(4, 8), layers.Conv2D(3, 3),
                          layers.Flatten(), layers.Dense(2)])
    assert ours.count_params() == theirs.count_params()
    _assert_weights_close(*_one_sgd_step(ours, theirs, x, y))


@pytest.mark.parametrize("kwargs, error, words", [
    ({"interpolation": "bicubic"}, ArgumentError, "not implemented"),
    ({"interpolation": "lanczos3"}, ArgumentError, "not implemented"),
    ({"interpolation": "cubic"}, ArgumentError, "interpolation"),
    ({"antialias": True}, ArgumentError, "antialias"),
    ({"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, ArgumentError, "not both"),
    ({"fill_mode": "reflect"}, ArgumentError, "fill_mode"),
    ({"height": 0}, ArgumentError, "height"),
    ({"width": 2.5}, ArgumentTypeError, "width"),
])
def test_resizing_refuses_what_it_does_not_do(kwargs, error, words):
    with pytest.raises(error, match=words):
        layers.Resizing(**{"height": 4, "width": 4, **kwargs})


def test_resizing_refuses_wrong_rank():
    with pytest.raises(ArgumentError, match="Resizing 'r'.*rank 4"):
        layers.Resizing(2, 2, name="r")(np.zeros((3, 4)))


def test_preprocessing_model_saves_and_loads(tmp_path, rng):
    data = rng.uniform(0, 255, (8, 6, 6, 3)).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(data / 255)
    model = sj.Sequential([layers.Input((6, 6, 3)), layers.Rescaling(1 / 255), norm,
                           layers.Resizing(4, 4, interpolation="nearest"),
                           layers.Normalization(mean=0.5, variance=4.0, invert=True),
                           layers.Flatten(), layers.Dense(2)])
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(data, verbose=0),
                                  model.predict(data, verbose=0))  # same ops, same weights
    assert [w.dtype for w in loaded.get_weights()] == [w.dtype for w in model.get_weights()]


def test_rescaling_per_channel_scale_must_fit_the_channels():
    layer = layers.Rescaling([0.5, 2.0], name="rs")
    with pytest.raises(ArgumentError, match=r"Rescaling 'rs': scale of shape \(2,\)"):
        layer(np.ones((2, 4, 3)))
    assert layers.Rescaling([0.5, 2.0])(np.ones((3, 2))).shape == (3, 2)


def test_resizing_refuses_an_output_too_large_to_allocate():
    with pytest.raises(ArgumentError, match="one output image"):
        layers.Resizing(2**30, 2**30)(np.ones((1, 2, 2, 1)))
