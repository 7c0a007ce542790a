"""BatchNormalization(synchronized=True): Keras 3's argument, its config and files, and the
layer over ranks simulated by threads (tests/ops/test_batch_norm_synchronized.py's FakeRanks)."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.distribution import context
from shenjing.errors import ArgumentTypeError
from tests.keras_oracle import import_keras
from tests.layers.keras_step import compare_sgd_step
from tests.ops.test_batch_norm_synchronized import FakeRanks

keras = import_keras()


def test_alone_it_is_keras_batch_normalization(rng):
    # Keras refuses synchronized=True outside TensorFlow; alone it means nothing there either
    x = (rng.standard_normal((6, 4, 3)) * 2 + 1).astype(np.float32)
    ours = layers.BatchNormalization(momentum=0.8, synchronized=True)
    theirs = keras.layers.BatchNormalization(momentum=0.8)
    expected = theirs(x, training=True).detach().numpy()
    ours(x)
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours(x, training=True).numpy(), expected, rtol=1e-5, atol=1e-5)
    y = rng.standard_normal((6, 2)).astype(np.float32)
    compare_sgd_step([layers.Dense(3), layers.BatchNormalization(synchronized=True),
                      layers.Flatten(), layers.Dense(2)],
                     [keras.layers.Dense(3), keras.layers.BatchNormalization(),
                      keras.layers.Flatten(), keras.layers.Dense(2)], x, y)


def test_config_round_trip_and_bad_value():
    layer = layers.BatchNormalization(axis=1, synchronized=True)
    config = layer.get_config()
    assert config["synchronized"] is True
    assert layers.BatchNormalization.from_config(config).get_config() == config
    assert layers.BatchNormalization().get_config()["synchronized"] is False
    with pytest.raises(ArgumentTypeError, match="batch_normalization.*synchronized.*True or "
                       "False, got 1"):
        layers.BatchNormalization(synchronized=1)


def test_model_saves_and_loads(rng, tmp_path):
    model = sj.Sequential([layers.Input((3, 2)), layers.BatchNormalization(synchronized=True)])
    model.layers[-1].moving_variance.data[...] = rng.uniform(0.5, 2.0, 2)
    model.save(tmp_path / "m.shenjing")
    back = sj.load_model(tmp_path / "m.shenjing")
    assert back.layers[-1].synchronized is True
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))


def test_one_sample_per_rank_trains_on_the_global_batch(rng, monkeypatch):
    # alone, one sample per channel is refused; synchronized over 3 ranks it is a batch of 3
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="more than one value per channel"):
        layers.BatchNormalization(synchronized=True)(x[:1], training=True)
    whole = layers.BatchNormalization(momentum=0.5)
    expected = whole(x, training=True).numpy()
    fake = FakeRanks(3)
    monkeypatch.setattr(context, "_active", fake)
    monkeypatch.setattr(context, "sample_scale", fake.scale)
    bns = [layers.BatchNormalization(momentum=0.5, synchronized=True) for _ in range(3)]
    ys = fake.run(lambda r: bns[r](x[r : r + 1], training=True).numpy(), [1.0] * 3)
    np.testing.assert_allclose(np.concatenate(ys), expected, rtol=1e-5, atol=1e-6)
    for bn in bns:
        np.testing.assert_allclose(bn.get_weights(), whole.get_weights(), rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(bn.get_weights(), bns[0].get_weights())
