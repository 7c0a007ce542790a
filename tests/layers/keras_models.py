"""Helpers for comparing small functional models with Keras 3: copy weights layer by layer
(matched by name) and compare one SGD training step."""

import numpy as np

import shenjing as sj


def copy_weights(ours, theirs):
    """Keras's weights into ours, layer by layer by name; shapes and counts must agree."""
    for layer in ours.layers:
        weights = theirs.get_layer(layer.name).get_weights()
        assert [w.shape for w in layer.get_weights()] == [w.shape for w in weights], layer.name
        layer.set_weights(weights)
    assert ours.count_params() == theirs.count_params()


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def compare_sgd_step(ours, theirs, keras, x, y, lr=0.1, rtol=1e-4, atol=1e-5):
    """Same predictions; then one train_on_batch with SGD(lr) and MSE gives the same weights,
    and they moved."""
    for a, b in zip(_as_list(ours.predict(x, verbose=0)), _as_list(theirs.predict(x, verbose=0))):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    before = ours.get_weights()
    ours.compile(optimizer=sj.optimizers.SGD(learning_rate=lr), loss="mse")
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    ours.train_on_batch(x, y)
    theirs.train_on_batch(x, y)
    for layer in ours.layers:
        for w_ours, w_theirs in zip(layer.get_weights(),
                                    theirs.get_layer(layer.name).get_weights()):
            np.testing.assert_allclose(w_ours, w_theirs, rtol=rtol, atol=atol,
                                       err_msg=layer.name)
    assert any(not np.array_equal(a, b) for a, b in zip(before, ours.get_weights()))
