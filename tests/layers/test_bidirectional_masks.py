"""Bidirectional sets its layers' zero_output_for_mask to return_sequences, as Keras 3 does:
masked steps of a returned sequence are zeros whatever the inner layer was given."""

import numpy as np
import pytest

import shenjing as sj
from tests.keras_oracle import import_keras

keras = import_keras()


@pytest.mark.parametrize("zero_output", [False, True])
def test_masked_steps_of_bidirectional_sequences_equal_keras(zero_output):
    tokens = np.array([[0, 0, 3, 4, 5], [1, 2, 0, 0, 0]], np.int32)

    def make(lib):
        inputs = lib.Input((5,), dtype="int32")
        x = lib.layers.Embedding(8, 3, mask_zero=True)(inputs)
        rnn = lib.layers.LSTM(4, return_sequences=True, zero_output_for_mask=zero_output)
        return lib.Model(inputs, lib.layers.Bidirectional(rnn)(x))

    theirs, ours = make(keras), make(sj)
    ours.set_weights(theirs.get_weights())
    expected = theirs.predict(tokens, verbose=0)
    got = ours.predict(tokens, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.all(got[0, :2] == 0) and np.all(got[1, 2:] == 0)
