"""Bidirectional(RNN(cell)) against Keras 3 with Keras's weights copied; it saves and loads."""

import numpy as np
import pytest

import shenjing as sj
from tests.keras_oracle import import_keras

keras = import_keras()


@pytest.mark.parametrize("cell", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum"])
def test_bidirectional_rnn_cell_matches_keras_and_round_trips(cell, merge_mode, rng, tmp_path):
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)

    def make(lib):
        inputs = lib.Input((6, 4))
        rnn = lib.layers.RNN(getattr(lib.layers, cell)(5), return_sequences=True)
        outputs = lib.layers.Bidirectional(rnn, merge_mode=merge_mode)(inputs)
        return lib.Model(inputs, outputs)

    theirs, ours = make(keras), make(sj)
    assert ours.count_params() == theirs.count_params()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    expected = theirs.predict(x, verbose=0)
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    path = tmp_path / "bi.shenjing"
    ours.save(path)
    np.testing.assert_allclose(sj.load_model(path).predict(x, verbose=0), expected, rtol=1e-5,
                               atol=1e-6)
