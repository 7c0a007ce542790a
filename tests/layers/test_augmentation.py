"""Random augmentation layers against Keras 3 (torch backend): the same drawn parameters give
the same images; draws are per image, seeded, within the factor ranges; inference is the
identity; configs round-trip and a model holding them trains, saves and loads."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers, utils
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras

keras = import_keras()
torch = pytest.importorskip("torch")

GEOMETRIC = {
    "RandomRotation": {"factor": 0.2},
    "RandomTranslation": {"height_factor": 0.3, "width_factor": (-0.4, 0.2)},
    "RandomZoom": {"height_factor": (-0.3, 0.4), "width_factor": 0.3},
}


def _numpy(value):
    return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)


def _to_keras(transformation):
    """Our drawn parameters as Keras takes them (torch tensors; copies, as Keras's torch
    affine_transform writes into its transform)."""
    return {k: torch.tensor(np.array(v)) if isinstance(v, np.ndarray) else v
            for k, v in transformation.items()}


def _same_transform(ours, theirs, x, atol=1e-5):
    transformation = ours.get_random_transformation(x)
    got = ours.transform_images(x, transformation).numpy()
    expected = _numpy(theirs.transform_images(torch.tensor(x), _to_keras(transformation)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=atol)
    return got, transformation


@pytest.mark.parametrize("name", list(GEOMETRIC))
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_geometric_layers_match_keras_for_the_same_draw(name, fill_mode, interpolation, rng):
    x = rng.uniform(0, 1, (4, 6, 7, 2)).astype(np.float32)
    config = {**GEOMETRIC[name], "fill_mode": fill_mode, "interpolation": interpolation,
              "fill_value": 0.25}
    _same_transform(getattr(layers, name)(**config), getattr(keras.layers, name)(**config), x)


@pytest.mark.parametrize("name", list(GEOMETRIC))
def test_geometric_layers_channels_first_and_one_image(name, rng):
    x = rng.uniform(0, 1, (3, 2, 6, 5)).astype(np.float32)
    config = {**GEOMETRIC[name], "data_format": "channels_first"}
    _same_transform(getattr(layers, name)(**config), getattr(keras.layers, name)(**config), x)
    _same_transform(getattr(layers, name)(**GEOMETRIC[name]),
                    getattr(keras.layers, name)(**GEOMETRIC[name]), x[0].transpose(1, 2, 0))


@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_random_flip_matches_keras(mode, data_format, rng):
    x = rng.standard_normal((8, 3, 4, 2)).astype(np.float32)
    ours = layers.RandomFlip(mode, seed=4, data_format=data_format)
    got, transformation = _same_transform(
        ours, keras.layers.RandomFlip(mode, data_format=data_format), x,
        atol=0)  # copies of the input values: exact
    flips = transformation["flips"].ravel()
    assert flips.any() and not flips.all()  # this seed flips some of the 8, not all
    np.testing.assert_array_equal(got[~flips], x[~flips])


def test_random_contrast_matches_keras(rng):
    x = rng.uniform(0, 255, (4, 5, 6, 3)).astype(np.float32)
    ours, theirs = layers.RandomContrast(0.9), keras.layers.RandomContrast(0.9)
    assert tuple(ours.factor) == tuple(theirs.factor) == (0.0, 0.9)  # Keras 3's (0, f)
    _same_transform(ours, theirs, x, atol=1e-3)  # values up to 255
    clipped = layers.RandomContrast((0.5, 0.9), value_range=(0, 1))
    _same_transform(clipped, keras.layers.RandomContrast((0.5, 0.9), value_range=(0, 1)),
                    x / 255)


DETERMINISTIC = [
    ("RandomRotation", {"factor": (0.25, 0.25)}),
    ("RandomRotation", {"factor": (-0.1, -0.1), "fill_mode": "constant"}),
    ("RandomTranslation", {"height_factor": (0.2, 0.2), "width_factor": (-0.3, -0.3)}),
    ("RandomZoom", {"height_factor": (0.3, 0.3), "width_factor": (-0.2, -0.2)}),
    ("RandomZoom", {"height_factor": (-0.25, -0.25), "interpolation": "nearest"}),
    ("RandomContrast", {"factor": 0.0, "value_range": (0.2, 0.8)}),
]


@pytest.mark.parametrize("name, config", DETERMINISTIC, ids=range(len(DETERMINISTIC)))
def test_fixed_factors_give_keras_output_from_the_call(name, config, rng):
    x = rng.uniform(0, 1, (3, 6, 5, 2)).astype(np.float32)
    ours, theirs = getattr(layers, name)(**config), getattr(keras.layers, name)(**config)
    expected = _numpy(theirs(x, training=True))
    np.testing.assert_allclose(ours(x, training=True).numpy(), expected, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(ours(x).numpy(), expected, rtol=1e-5, atol=2e-5)  # direct: trains
    np.testing.assert_array_equal(ours(x, training=False).numpy(), x)  # identity


def test_augmentation_in_a_model_sgd_step_matches_keras(rng):
    x = rng.uniform(0, 1, (4, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((4, 2)).astype(np.float32)

    def stack(lib):
        return [lib.Input((6, 6, 2)), lib.layers.RandomRotation((0.25, 0.25)),
                lib.layers.RandomTranslation((0.2, 0.2), (-0.3, -0.3), fill_mode="wrap"),
                lib.layers.RandomZoom((0.3, 0.3)), lib.layers.RandomContrast(0.0, (0.3, 0.7)),
                lib.layers.Flatten(), lib.layers.Dense(2)]

    theirs, ours = keras.Sequential(stack(keras)), sj.Sequential(stack(sj))
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=sj.optimizers.SGD(0.1), loss="mse")
    theirs.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    for mine, ref in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)  # predict: no augmentation in either


ALL = [("RandomFlip", {}), ("RandomRotation", {"factor": 0.3}),
       ("RandomTranslation", {"height_factor": 0.3, "width_factor": 0.3}),
       ("RandomZoom", {"height_factor": 0.3}), ("RandomContrast", {"factor": 0.5})]


@pytest.mark.parametrize("name, config", ALL, ids=[n for n, _ in ALL])
def test_seeds_batches_and_inference(name, config, rng):
    x = np.repeat(rng.uniform(0, 1, (1, 8, 8, 3)).astype(np.float32), 6, axis=0)
    cls = getattr(layers, name)
    first, second = cls(**config, seed=7), cls(**config, seed=7)
    a = first(x, training=True).numpy()
    np.testing.assert_array_equal(a, second(x, training=True).numpy())  # same seed, same draws
    assert not np.array_equal(a, first(x, training=True).numpy())  # a stream, not one draw
    assert len({a[i].tobytes() for i in range(len(a))}) > 1  # per image, not per batch
    np.testing.assert_array_equal(first(x, training=False).numpy(), x)
    # no seed: shenjing's generator, reseeded by set_seed; NumPy's global state untouched
    utils.set_seed(3)
    _, keys, position, *_ = np.random.get_state()
    b = cls(**config)(x, training=True).numpy()
    _, keys_after, position_after, *_ = np.random.get_state()
    assert position_after == position and np.array_equal(keys_after, keys)
    utils.set_seed(3)
    np.testing.assert_array_equal(b, cls(**config)(x, training=True).numpy())


def test_drawn_parameters_stay_in_their_ranges():
    images = np.zeros((2000, 5, 4, 1), dtype=np.float32)

    def spread(values, low, high):
        values = np.asarray(values, dtype=np.float64).ravel()
        assert low - 1e-4 <= values.min() < low + 0.05 * (high - low)
        assert high - 0.05 * (high - low) < values.max() <= high + 1e-4

    angle = layers.RandomRotation((-0.1, 0.3), seed=1).get_random_transformation(images)["angle"]
    spread(angle, -36.0, 108.0)
    shifts = layers.RandomTranslation((-0.2, 0.4), 0.5, seed=1).get_random_transformation(images)
    spread(shifts["translations"][:, 1], -0.2 * 5, 0.4 * 5)
    spread(shifts["translations"][:, 0], -0.5 * 4, 0.5 * 4)
    zoom = layers.RandomZoom(0.3, (-0.5, 0.1), seed=1).get_random_transformation(images)
    spread(zoom["height_zoom"], 0.7, 1.3)
    spread(zoom["width_zoom"], 0.5, 1.1)
    same = layers.RandomZoom(0.3, seed=1).get_random_transformation(images)
    np.testing.assert_array_equal(same["height_zoom"], same["width_zoom"])
    spread(layers.RandomContrast((0.2, 0.6), seed=1).get_random_transformation(images)[
        "contrast_factor"], 0.8, 1.6)
    flips = layers.RandomFlip(seed=1).get_random_transformation(images)["flips"]
    assert 0.45 < flips.mean() < 0.55


@pytest.mark.parametrize("name, config", ALL, ids=[n for n, _ in ALL])
def test_config_round_trip_and_keras_keys(name, config):
    ours = getattr(layers, name)(**config, seed=3)
    theirs = getattr(keras.layers, name)(**config, seed=3)
    ours_config = ours.get_config()
    keys = set(theirs.get_config()) - {"dtype"}
    assert keys <= set(ours_config)
    for key in keys - {"name"}:
        ours_value, their_value = ours_config[key], theirs.get_config()[key]
        assert (list(ours_value) if isinstance(ours_value, (list, tuple)) else ours_value) == (
            list(their_value) if isinstance(their_value, (list, tuple)) else their_value), key
    again = type(ours).from_config(ours_config)
    assert again.get_config() == ours_config


def test_model_with_augmentation_trains_saves_and_loads(tmp_path, rng):
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype(np.float32)
    y = rng.integers(0, 2, 16)
    model = sj.Sequential([
        layers.Input((16, 16, 3)), layers.Rescaling(1 / 255), layers.RandomFlip(seed=1),
        layers.RandomRotation(0.1, seed=2), layers.RandomTranslation(0.1, 0.1, seed=3),
        layers.RandomZoom(0.1, seed=4), layers.RandomContrast(0.2, value_range=(0, 1), seed=5),
        layers.Conv2D(4, 3, activation="relu"), layers.GlobalAveragePooling2D(),
        layers.Dense(2, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0),
                                  model.predict(x, verbose=0))  # inference: same ops, exact


def test_gradient_flows_through_the_geometric_layers(rng):
    x = sj.Tensor(rng.uniform(0, 1, (2, 5, 5, 1)), requires_grad=True)
    layers.RandomRotation(0.2, seed=0, dtype="float64")(x, training=True).sum().backward()
    assert x.grad is not None and np.abs(x.grad).sum() > 0


@pytest.mark.parametrize("name, kwargs, error, words", [
    ("RandomRotation", {"factor": 1.5}, ArgumentError, "factor"),
    ("RandomRotation", {"factor": (0.1, 0.2, 0.3)}, ArgumentError, "factor"),
    ("RandomRotation", {"factor": "0.1"}, ArgumentTypeError, "factor"),
    ("RandomRotation", {"factor": 0.1, "fill_mode": "mirror"}, ArgumentError, "fill_mode"),
    ("RandomZoom", {"height_factor": -1.0}, ArgumentError, "height_factor"),
    ("RandomZoom", {"height_factor": 0.1, "interpolation": "bicubic"}, ArgumentError,
     "interpolation"),
    ("RandomTranslation", {"height_factor": 0.1, "width_factor": 2}, ArgumentError,
     "width_factor"),
    ("RandomFlip", {"mode": "diagonal"}, ArgumentError, "mode"),
    ("RandomFlip", {"seed": -1}, ArgumentError, "seed"),
    ("RandomContrast", {"factor": -0.2}, ArgumentError, "factor"),
    ("RandomContrast", {"factor": 0.2, "value_range": (1, 0)}, ArgumentError, "value_range"),
])
def test_bad_arguments_name_the_layer(name, kwargs, error, words):
    with pytest.raises(error, match=f"{name} .*{words}"):
        getattr(layers, name)(**kwargs)


def test_wrong_rank_is_refused():
    with pytest.raises(ArgumentError, match="RandomFlip 'f'.*rank 4"):
        layers.RandomFlip(name="f")(np.zeros((2, 3)), training=True)
