"""ConvLSTM2D against Keras 3 with Keras's weights copied: outputs, states, counts, SGD step."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()

CONFIGS = [
    {"padding": "valid"},
    {"padding": "same", "strides": 2},
    {"padding": "same", "dilation_rate": 2, "unit_forget_bias": False},
    {"padding": "valid", "data_format": "channels_first", "go_backwards": True},
    {"padding": "same", "use_bias": False, "activation": "relu"},
]


def _input(rng, config, shape=(2, 3, 7, 6, 3)):
    x = rng.standard_normal(shape).astype(np.float32)
    if config.get("data_format") == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))
    return x


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_outputs_and_states_match_keras(config, return_sequences, rng):
    x = _input(rng, config)
    theirs = keras.layers.ConvLSTM2D(4, (3, 2), return_sequences=return_sequences,
                                     return_state=True, **config)
    ours = layers.ConvLSTM2D(4, (3, 2), return_sequences=return_sequences, return_state=True,
                             **config)
    expected = [t.detach().numpy() for t in theirs(x)]
    ours(x)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params()
    ours.set_weights(theirs.get_weights())
    got = ours(x)
    assert len(got) == 3
    assert ours.compute_output_shape((None, *x.shape[1:]))[0] == (None, *expected[0].shape[1:])
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-5, atol=1e-6)


def test_count_params_formula():
    layer = layers.ConvLSTM2D(5, 3)
    layer(np.zeros((1, 2, 6, 6, 2), np.float32))
    assert layer.count_params() == 4 * 5 * (3 * 3 * (2 + 5) + 1)
    assert [w.name for w in layer.weights] == [f"{layer.name}/kernel",
                                               f"{layer.name}/recurrent_kernel",
                                               f"{layer.name}/bias"]
    np.testing.assert_array_equal(layer.get_weights()[2], np.repeat([0, 1, 0, 0], 5))


def test_initial_state_and_mask_match_keras(rng):
    x = rng.standard_normal((2, 4, 5, 5, 2)).astype(np.float32)
    states = [rng.standard_normal((2, 5, 5, 3)).astype(np.float32) for _ in range(2)]
    mask = np.array([[True, True, False, True], [True, False, False, False]])
    theirs = keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    ours = layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)
    expected = theirs(x, initial_state=states, mask=mask).detach().numpy()
    ours(x)
    ours.set_weights(theirs.get_weights())
    got = ours(x, initial_state=states, mask=mask).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_one_sgd_step_matches_keras(rng):
    x = rng.standard_normal((3, 3, 6, 6, 2)).astype(np.float32)
    y = rng.standard_normal((3, 2)).astype(np.float32)

    def make(lib):
        model = lib.Sequential([lib.layers.Input((3, 6, 6, 2)),
                                lib.layers.ConvLSTM2D(3, 3, strides=2, padding="same"),
                                lib.layers.Flatten(), lib.layers.Dense(2)])
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="mse")
        return model

    theirs, ours = make(keras), make(sj)
    ours.set_weights(theirs.get_weights())
    loss_theirs = float(theirs.train_on_batch(x, y))
    np.testing.assert_allclose(float(ours.train_on_batch(x, y)), loss_theirs, rtol=1e-5)
    for got, expected in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_save_load(tmp_path, rng):
    model = sj.Sequential([layers.Input((3, 2, 6, 5)), layers.ConvLSTM2D(
        2, (3, 2), strides=(1, 2), padding="same", data_format="channels_first",
        recurrent_activation="hard_sigmoid", return_sequences=True, dropout=0.1),
        layers.Flatten(), layers.Dense(1)])
    layer = model.layers[0]
    config = layer.get_config()
    assert "cell" not in config
    clone = layers.ConvLSTM2D.from_config(config)
    assert {k: v for k, v in clone.get_config().items() if k != "name"} == {
        k: v for k, v in config.items() if k != "name"}
    x = rng.standard_normal((2, 3, 2, 6, 5)).astype(np.float32)
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dropout_only_in_training(rng):
    x = rng.standard_normal((2, 3, 5, 5, 2)).astype(np.float32)
    layer = layers.ConvLSTM2D(2, 3, dropout=0.5, recurrent_dropout=0.5, seed=3)
    plain = layers.ConvLSTM2D(2, 3)
    plain(x)
    layer(x)
    layer.set_weights(plain.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-6)
    assert not np.allclose(layer(x, training=True).numpy(), plain(x).numpy())


def test_errors():
    with pytest.raises(ValueError, match="filters must be a positive integer, got 0"):
        layers.ConvLSTM2D(0, 3)
    with pytest.raises(ValueError, match="padding must be one of 'valid', 'same'"):
        layers.ConvLSTM2D(2, 3, padding="causal")
    layer = layers.ConvLSTM2D(2, 3, name="clstm")
    with pytest.raises(ValueError, match=r"ConvLSTM2D 'clstm': expected input of rank 5"):
        layer(np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="too small for kernel_size"):
        layer(np.zeros((1, 2, 2, 5, 1), np.float32))


def test_stateful_channels_first_takes_states_in_its_format(rng):
    x = rng.standard_normal((2, 4, 2, 5, 6)).astype(np.float32)  # (N, T, C, H, W)
    whole = layers.ConvLSTM2D(3, 3, padding="same", data_format="channels_first",
                              return_state=True)
    halves = layers.ConvLSTM2D(3, 3, padding="same", data_format="channels_first",
                               stateful=True, return_state=True)
    output = whole(x)[0]
    halves(x[:, :2])
    halves.set_weights(whole.get_weights())
    halves.reset_states()
    halves(x[:, :2])
    np.testing.assert_allclose(halves(x[:, 2:])[0].numpy(), output.numpy(), rtol=1e-5,
                               atol=1e-6)
    start = [rng.standard_normal((2, 3, 5, 6)).astype(np.float32) for _ in range(2)]
    halves.reset_states(start)
    expected = whole(x, initial_state=start)
    for got, want in zip(halves(x), expected):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-6)
