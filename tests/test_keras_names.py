"""Names where Keras 3 keeps them: models.load_model, utils.to_categorical / pad_sequences /
set_random_seed, preprocessing.sequence.pad_sequences; results equal Keras's own."""

import random

import numpy as np
import pytest

import shenjing as sj
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras


def test_models_load_model_is_shenjing_load_model(tmp_path):
    import shenjing.models

    assert shenjing.models.load_model is sj.load_model
    model = sj.Sequential([sj.Input((3,)), sj.layers.Dense(2)])
    model.save(tmp_path / "m.shenjing")
    loaded = shenjing.models.load_model(tmp_path / "m.shenjing")
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # a saved copy, exact


def test_preprocessing_sequence_and_utils_hold_pad_sequences():
    from shenjing.preprocessing.sequence import pad_sequences

    assert pad_sequences is sj.data.pad_sequences is sj.utils.pad_sequences
    assert sj.utils.to_categorical is sj.data.to_categorical


@pytest.mark.parametrize("kwargs", [
    {}, {"maxlen": 2}, {"maxlen": 5, "padding": "post"}, {"maxlen": 2, "truncating": "post"},
    {"padding": "post", "truncating": "post", "maxlen": 3, "value": -1},
    {"dtype": "float32", "value": 0.5},
])
def test_pad_sequences_equals_keras(kwargs):
    keras = import_keras()
    sequences = [[1, 2, 3], [4], [], [5, 6, 7, 8]]
    ours = sj.utils.pad_sequences(sequences, **kwargs)
    theirs = keras.utils.pad_sequences(sequences, **kwargs)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)  # integer copies, exact


def test_pad_sequences_defaults_are_keras_defaults():
    import inspect

    keras = import_keras()
    ours = inspect.signature(sj.utils.pad_sequences).parameters
    theirs = inspect.signature(keras.utils.pad_sequences).parameters
    assert {k: p.default for k, p in ours.items()} == {k: p.default for k, p in theirs.items()}


@pytest.mark.parametrize("labels, num_classes", [([0, 2, 1, 2], None), ([[1], [0]], 3),
                                                 (np.array([[0, 1], [2, 0]]), 4)])
def test_to_categorical_equals_keras(labels, num_classes):
    keras = import_keras()
    ours = sj.utils.to_categorical(labels, num_classes)
    theirs = keras.utils.to_categorical(labels, num_classes)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


def test_set_random_seed_repeats_initial_weights():
    def weights():
        model = sj.Sequential([sj.Input((4,)), sj.layers.Dense(3), sj.layers.Dense(2)])
        return model.get_weights()

    sj.utils.set_random_seed(7)
    first = weights()
    sj.utils.set_random_seed(7)
    for a, b in zip(first, weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the same draws, exact


def test_set_random_seed_leaves_the_hosts_generators_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.get_state()[1].copy(), random.getstate()
    sj.utils.set_random_seed(1)
    np.testing.assert_array_equal(np.random.get_state()[1], expected_np)
    assert random.getstate() == expected_py


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None, True])
def test_set_random_seed_refuses_non_integers(seed):
    with pytest.raises(ArgumentError, match="set_random_seed"):
        sj.utils.set_random_seed(seed)
