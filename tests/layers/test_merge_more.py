"""Subtract, Average, Maximum, Minimum, Dot and the functional merge forms against Keras 3:
values, broadcasting, masks, errors, a training step in a functional model, saving."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras
from tests.layers.keras_models import compare_sgd_step, copy_weights

keras = import_keras()
torch = pytest.importorskip("torch")
get_keras_mask, set_keras_mask = keras.src.backend.get_keras_mask, keras.src.backend.set_keras_mask

ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("shapes", [
    [(3, 4, 5), (3, 4, 5), (3, 4, 5)],
    [(3, 4, 5), (3, 5), (3, 4, 5)],      # lower rank: a new axis after the batch axis
    [(3, 1, 5), (3, 4, 1), (3, 4, 5)],   # axes of size 1 broadcast
], ids=["same", "rank", "ones"])
def test_elementwise_matches_keras(name, shapes, rng):
    inputs = [_f32(rng, *s) for s in shapes[:2 if name == "Subtract" else 3]]
    expected = getattr(keras.layers, name)()(inputs).detach().numpy()
    got = getattr(layers, name)()(inputs).numpy()
    assert got.shape == expected.shape
    # the same sequence of float operations elementwise: exact up to the last bit
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_masks_merge_as_in_keras(name, rng):
    a, b = _f32(rng, 2, 5, 3), _f32(rng, 2, 5, 3)
    mask_a = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 1, 1]], bool)
    mask_b = np.array([[1, 0, 0, 1, 1], [1, 1, 0, 1, 0]], bool)
    for masks in ([mask_a, mask_b], [mask_a, None]):
        ta, tb = torch.tensor(a), torch.tensor(b)
        for t, m in zip((ta, tb), masks):
            if m is not None:
                set_keras_mask(t, torch.tensor(m))
        out = getattr(keras.layers, name)()([ta, tb])
        got = getattr(layers, name)()([a, b], mask=masks)
        np.testing.assert_allclose(got.numpy(), out.detach().numpy(), rtol=1e-6, atol=1e-7)
        their_mask = get_keras_mask(out)
        our_mask = getattr(got, "_keras_mask", None)
        if their_mask is None:
            assert our_mask is None
        else:
            np.testing.assert_array_equal(our_mask, their_mask.numpy())


DOT_CASES = [(1, (3, 4), (3, 4)), ((1, 2), (3, 5, 2), (3, 6, 5)), (-1, (3, 4, 5), (3, 6, 5)),
             ((2, 1), (2, 3, 4, 5), (2, 4, 6)), ((1, 1), (3, 4), (3, 4, 2))]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("axes, first, second", DOT_CASES, ids=range(len(DOT_CASES)))
def test_dot_matches_keras(axes, first, second, normalize, rng):
    x, y = _f32(rng, *first), _f32(rng, *second)
    expected = keras.layers.Dot(axes, normalize=normalize)([x, y]).detach().numpy()
    layer = layers.Dot(axes, normalize=normalize)
    got = layer([x, y]).numpy()
    assert got.shape == expected.shape == layer.compute_output_shape([first, second])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_concatenate_mask_as_in_keras(rng):
    a, b = _f32(rng, 2, 4, 3), _f32(rng, 2, 4, 2)
    mask_a = np.array([[1, 1, 0, 0], [1, 0, 0, 0]], bool)
    mask_b = np.array([[1, 0, 0, 1], [1, 1, 0, 0]], bool)
    for axis, masks in ((-1, [mask_a, mask_b]), (1, [mask_a, mask_b]), (-1, [mask_a, None])):
        ta, tb = torch.tensor(a), torch.tensor(b if axis == -1 else a)
        for t, m in zip((ta, tb), masks):
            if m is not None:
                set_keras_mask(t, torch.tensor(m))
        out = keras.layers.Concatenate(axis=axis)([ta, tb])
        got = layers.Concatenate(axis=axis)([a, b if axis == -1 else a], mask=masks)
        np.testing.assert_array_equal(got._keras_mask, get_keras_mask(out).numpy())


def test_errors_name_the_layer():
    a, b, c = layers.Input((3,)), layers.Input((4,)), layers.Input((3,))
    with pytest.raises(ArgumentError, match=r"Subtract 'sub': expected a list of exactly 2"):
        layers.Subtract(name="sub")([a, c, c])
    with pytest.raises(ArgumentError, match=r"Maximum 'mx': inputs must have the same shape, "
                                            r"or shapes that broadcast"):
        layers.Maximum(name="mx")([a, b])
    with pytest.raises(ArgumentError, match=r"Average 'av': expected a list of inputs"):
        layers.Average(name="av")(a)
    with pytest.raises(ArgumentError, match=r"Dot 'd': the dot axes differ in size"):
        layers.Dot(1, name="d")([a, b])
    with pytest.raises(ArgumentError, match=r"Dot 'd0': cannot take the dot product over the "
                                            r"batch axis"):
        layers.Dot(0, name="d0")([a, c])
    with pytest.raises(ArgumentTypeError, match=r"Dot 'dt': axes must be an int or a pair"):
        layers.Dot("last", name="dt")
    with pytest.raises(ArgumentError, match=r"Dot 'd3': axes must be an int or a pair"):
        layers.Dot((1, 2, 3), name="d3")
    with pytest.raises(ArgumentError, match="different batch sizes"):
        layers.Add()([np.zeros((2, 3), np.float32), np.zeros((3, 3), np.float32)])


def _functional(lib, forms=True):
    """Two inputs, a Dense on each, every merge, joined and projected to one output."""
    L = lib.layers
    a_in, b_in = L.Input((4,), name="a"), L.Input((4,), name="b")
    a = L.Dense(4, name="da")(a_in)
    b = L.Dense(4, activation="tanh", name="db")(b_in)
    names = ["add", "subtract", "multiply", "average", "maximum", "minimum"]
    if forms:
        merged = [getattr(L, f)([a, b], name=f"m_{f}") for f in names]
        merged.append(L.dot([a, b], axes=1, normalize=True, name="m_dot"))
        joined = L.concatenate(merged, axis=-1, name="m_cat")
    else:
        merged = [getattr(L, f.capitalize())(name=f"m_{f}")([a, b]) for f in names]
        merged.append(L.Dot(axes=1, normalize=True, name="m_dot")([a, b]))
        joined = L.Concatenate(axis=-1, name="m_cat")(merged)
    return lib.Model([a_in, b_in], L.Dense(2, name="out")(joined))


def test_functional_forms_train_as_in_keras(rng):
    ours, theirs = _functional(sj), _functional(keras)
    assert ours.output_shape == theirs.output_shape
    copy_weights(ours, theirs)
    x = [_f32(rng, 6, 4), _f32(rng, 6, 4)]
    compare_sgd_step(ours, theirs, keras, x, _f32(rng, 6, 2))


def test_functional_forms_make_the_layers():
    a, b = layers.Input((3,)), layers.Input((3,))
    assert isinstance(layers.subtract([a, b]).node.layer, layers.Subtract)
    assert isinstance(layers.dot([a, b], axes=1).node.layer, layers.Dot)
    eager = layers.maximum([np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)])
    np.testing.assert_array_equal(eager.numpy(), np.ones((2, 3)))


@pytest.mark.parametrize("layer", [layers.Subtract(), layers.Average(), layers.Maximum(),
                                   layers.Minimum(), layers.Dot((1, 2), normalize=True)])
def test_config_round_trip(layer):
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert again.get_config() == config


def test_model_with_merges_saves_and_loads(tmp_path, rng):
    model = _functional(sj, forms=False)
    x = [_f32(rng, 3, 4), _f32(rng, 3, 4)]
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    # the same layers and weights in the same order of operations: the same floats
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(layer).__name__ for layer in loaded.layers] == [
        type(layer).__name__ for layer in model.layers]
