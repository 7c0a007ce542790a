"""ActivityRegularization against Keras 3: the identity, and the same added loss."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()


@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.2, 0.0), (0.0, 0.3), (0.01, 0.05)])
def test_output_and_loss_match_keras(l1, l2, rng):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    ours, theirs = layers.ActivityRegularization(l1, l2), keras.layers.ActivityRegularization(
        l1=l1, l2=l2)
    expected = theirs(x).detach().cpu().numpy()
    got = ours(x)
    np.testing.assert_array_equal(got.numpy(), expected)  # the identity: a copy, exact
    assert len(ours.losses) == len(theirs.losses) == 1
    np.testing.assert_allclose(float(ours.losses[0].data),
                               float(theirs.losses[0].detach().cpu()), rtol=1e-5, atol=1e-7)
    assert ours.count_params() == 0 and ours.weights == []


def test_keras_unit_value():
    layer = layers.ActivityRegularization(l1=0.2, l2=0.3)
    layer(2 * np.ones((1,), np.float32))
    np.testing.assert_allclose(float(layer.losses[0].data), 4 * 0.3 + 2 * 0.2, rtol=1e-6)


def test_gradient_reaches_the_inputs_and_training_step_matches_keras(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = rng.standard_normal((6, 2)).astype(np.float32)

    def build(lib):
        inputs = lib.Input((4,))
        hidden = lib.layers.ActivityRegularization(l1=0.01, l2=0.1)(lib.layers.Dense(3)(inputs))
        return lib.Model(inputs, lib.layers.Dense(2)(hidden))

    ours, theirs = build(sj), build(keras)
    ours.set_weights(theirs.get_weights())
    ours.compile(sj.optimizers.SGD(0.1), "mse")
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    np.testing.assert_allclose(ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y)),
                               rtol=1e-5)
    for mine, their in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, their, rtol=1e-5, atol=1e-6)


def test_arguments_config_and_saving(tmp_path, rng):
    with pytest.raises(ValueError, match="l1"):
        layers.ActivityRegularization(l1=-1.0)
    with pytest.raises(TypeError, match="l2"):
        layers.ActivityRegularization(l2="big")
    layer = layers.ActivityRegularization(l1=0.5, name="reg")
    config = layer.get_config()
    assert config["l1"] == 0.5 and config["l2"] == 0.0
    assert layers.ActivityRegularization.from_config(config).get_config() == config
    model = sj.Sequential([sj.Input((3,)), layers.Dense(2), layers.ActivityRegularization(0.1)])
    x = rng.standard_normal((4, 3)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[-1].l1 == 0.1
