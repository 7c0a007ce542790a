"""One SGD step of a tiny model in shenjing and in Keras 3 (torch backend), from the same
weights: the same loss and the same weights after the step, so the layers' gradients agree."""

import numpy as np

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras


def compare_sgd_step(ours, theirs, x, y, lr=0.1, rtol=1e-5, atol=1e-6):
    """ours/theirs: lists of layers (the same architecture); x, y: one float32 batch."""
    keras = import_keras()
    their_model = keras.Sequential([keras.Input(x.shape[1:]), *theirs])
    our_model = sj.Sequential([layers.Input(x.shape[1:]), *ours])
    their_weights = their_model.get_weights()
    assert [w.shape for w in our_model.get_weights()] == [w.shape for w in their_weights]
    assert our_model.count_params() == their_model.count_params()
    our_model.set_weights(their_weights)
    their_model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    our_model.compile(optimizer=sj.optimizers.SGD(lr), loss="mse")
    their_loss = float(their_model.train_on_batch(x, y))
    our_loss = float(our_model.train_on_batch(x, y))
    np.testing.assert_allclose(our_loss, their_loss, rtol=rtol, atol=atol)
    after = their_model.get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(after, their_weights))  # a real step
    for mine, expected in zip(our_model.get_weights(), after):
        np.testing.assert_allclose(mine, expected, rtol=rtol, atol=atol)
    return our_model
