"""compile / fit / evaluate / predict on real data, reproducibility and resuming."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.datasets import mnist


@pytest.fixture(scope="module")
def digits():
    (x_train, y_train), (x_test, y_test) = mnist.load_subset(n_test=1000, seed=0)
    prep = lambda x: (x[..., None] / 255.0).astype(np.float32)
    return (prep(x_train), y_train.astype(np.int64)), (prep(x_test), y_test.astype(np.int64))


def small_cnn():
    return sj.Sequential([
        layers.Input((28, 28, 1)), layers.Conv2D(8, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9), layers.Activation("relu"), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same", use_bias=False), layers.BatchNormalization(momentum=0.9),
        layers.Activation("relu"), layers.MaxPooling2D(), layers.Flatten(),
        layers.Dense(10, activation="softmax"),
    ])


def test_small_cnn_learns_real_digits(digits):
    (x_train, y_train), (x_test, y_test) = digits
    sj.utils.set_seed(1)
    model = small_cnn()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=32, epochs=2, verbose=0,
                        validation_data=(x_test, y_test))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][1] < history.history["loss"][0]
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.93, accuracy
    predicted = model.predict(x_test).argmax(axis=1)
    assert np.isclose((predicted == y_test).mean(), accuracy)
    assert abs(loss - history.history["val_loss"][-1]) < 1e-5


def test_mlp_on_digits_with_validation_split(digits):
    (x_train, y_train), _ = digits
    sj.utils.set_seed(2)
    model = sj.Sequential([layers.Input((28, 28, 1)), layers.Flatten(),
                           layers.Dense(64, activation="relu"), layers.Dropout(0.2),
                           layers.Dense(10)])
    model.compile(optimizer=sj.optimizers.Adam(2e-3),
                  loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["sparse_categorical_accuracy"])
    history = model.fit(x_train, y_train, epochs=3, validation_split=0.25, verbose=0)
    assert history.history["val_sparse_categorical_accuracy"][-1] > 0.85


def test_training_flag_reaches_batch_norm_and_dropout():
    model = sj.Sequential([layers.Input((4,)), layers.BatchNormalization(), layers.Dropout(0.5)])
    x = np.random.default_rng(0).normal(5.0, 2.0, (64, 4)).astype(np.float32)
    inference = model(x, training=False).numpy()  # moving stats (0, 1): identity
    np.testing.assert_allclose(inference, x / np.sqrt(1 + 1e-3), rtol=1e-6)
    train = model(x, training=True).numpy()
    assert (train == 0).mean() > 0.3  # dropout on
    kept = train != 0
    # batch statistics were used: kept values are the normalized batch times 2
    normalized = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(train[kept], 2 * normalized[kept], rtol=1e-4, atol=1e-5)


def test_functional_model_with_two_inputs_two_outputs_and_a_residual():
    sj.utils.set_seed(3)
    rng = np.random.default_rng(3)
    a_in, b_in = layers.Input((6,), name="a"), layers.Input((3,), name="b")
    h = layers.Dense(6, activation="tanh")(a_in)
    h = layers.Add()([h, a_in])  # residual
    joined = layers.Concatenate()([h, b_in])
    out_class = layers.Dense(2, activation="softmax", name="cls")(joined)
    out_value = layers.Dense(1, name="reg")(joined)
    model = sj.Model([a_in, b_in], [out_class, out_value])
    # Keras 3's order (deepest first): ['a', 'dense', 'add', 'b', 'concatenate', 'cls', 'reg']
    names = [layer.name for layer in model.layers]
    assert (names[0], names[3], names[5:]) == ("a", "b", ["cls", "reg"])
    a, b = rng.standard_normal((256, 6)).astype(np.float32), rng.standard_normal((256, 3)).astype(np.float32)
    y_class = (a[:, 0] + b[:, 0] > 0).astype(np.int64)
    y_value = (a[:, 1] - 2 * b[:, 2])[:, None].astype(np.float32)
    model.compile(optimizer=sj.optimizers.Adam(0.02),
                  loss=["sparse_categorical_crossentropy", "mse"], metrics={"cls": "accuracy"})
    first = model.evaluate([a, b], [y_class, y_value], verbose=0)
    model.fit([a, b], [y_class, y_value], epochs=30, batch_size=32, verbose=0)
    last = model.evaluate([a, b], [y_class, y_value], return_dict=True, verbose=0)
    assert last["loss"] < 0.3 * first[0]
    assert last["cls_accuracy"] > 0.9
    class_pred, value_pred = model.predict([a, b])
    assert class_pred.shape == (256, 2) and value_pred.shape == (256, 1)


def _train_run(x, y, epochs, seed=7):
    sj.utils.set_seed(seed)
    model = sj.Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"),
                           layers.Dropout(0.3), layers.Dense(3)])
    model.compile(optimizer="adam", loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model


def test_set_seed_repeats_a_run_bit_for_bit():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((100, 5)).astype(np.float32), rng.integers(0, 3, 100)
    first, second = _train_run(x, y, 3), _train_run(x, y, 3)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = _train_run(x, y, 3, seed=8)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])


def test_resuming_from_a_checkpoint_matches_an_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((100, 5)).astype(np.float32), rng.integers(0, 3, 100)
    straight = _train_run(x, y, 4)
    half = _train_run(x, y, 2)
    half.save(tmp_path / "ckpt.safetensors")
    sj.utils.set_seed(12345)  # a different global state: the checkpoint must restore it
    resumed = sj.load_model(tmp_path / "ckpt.safetensors")
    assert resumed.completed_epochs == 2
    resumed.fit(x, y, epochs=4, batch_size=16, verbose=0, initial_epoch=resumed.completed_epochs)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_train_and_test_on_batch_return_losses():
    model = sj.Sequential([layers.Input((2,)), layers.Dense(1, kernel_initializer="zeros")])
    model.compile(optimizer=sj.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    x, y = np.array([[1.0, 2.0]], np.float32), np.array([[3.0]], np.float32)
    loss, mae = model.test_on_batch(x, y)
    assert loss == pytest.approx(9.0) and mae == pytest.approx(3.0)
    loss = model.train_on_batch(x, y, return_dict=True)["loss"]
    assert loss == pytest.approx(9.0)
    # one SGD step: w -= 0.1 * 2 * (0 - 3) * x -> predictions move by 0.6 * (1 + 4) + 0.6
    assert model.predict(x)[0, 0] == pytest.approx(3.6)


def test_errors_are_clear():
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)])
    with pytest.raises(RuntimeError, match="call compile"):
        model.fit(np.zeros((4, 3)), np.zeros(4))
    model.compile(optimizer="adam")  # as Keras 3: no loss is a custom train_step's business
    with pytest.raises(ValueError, match="No loss to compute"):
        model.fit(np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32), verbose=0)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="expects shape \\(None, 3\\), got \\(4, 5\\)"):
        model.predict(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(np.zeros((4, 3), np.float32), np.zeros((5, 2), np.float32), verbose=0)


def test_evaluate_and_predict_report_progress_when_verbose(capsys):
    model = sj.Sequential([layers.Input((2,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((10, 2), np.float32), np.ones((10, 1), np.float32)
    model.evaluate(x, y, batch_size=4, verbose=2)
    model.predict(x, batch_size=4, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("3/3") and "loss:" in lines[0]
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""


def test_class_weight_trains_as_the_same_sample_weights(rng):
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    weights = {0: 0.25, 1: 4.0}  # class 2 keeps weight 1

    def trained(**weighting):
        sj.utils.set_seed(7)
        model = sj.Sequential([layers.Input((5,)), layers.Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, **weighting)
        return model.get_weights()

    by_class = trained(class_weight=weights)
    by_sample = trained(sample_weight=np.array([weights.get(int(c), 1.0) for c in y], np.float32))
    unweighted = trained()
    for a, b, c in zip(by_class, by_sample, unweighted):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_class_weight_errors(rng):
    model = sj.Sequential([layers.Input((2,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)
    with pytest.raises(ValueError, match="class_weight or sample_weight, not both"):
        model.fit(x, y, class_weight={0: 1.0}, sample_weight=np.ones(4), verbose=0)
    a = sj.Input((2,))
    two = sj.Model(a, [layers.Dense(1)(a), layers.Dense(1)(a)])
    two.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="one output; this one has 2 targets"):
        two.fit(x, [y[:, :1], y[:, 1:]], class_weight={0: 1.0}, verbose=0)


def _keras_and_ours(rng):
    """The same 4 -> 3 softmax model in Keras 3 and shenjing, compiled with a learning rate of
    zero, so that fit leaves the weights as they are and only the logged losses differ."""
    from tests.keras_oracle import import_keras

    keras = import_keras()
    theirs = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    ours = sj.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    ours.set_weights([w.astype(np.float32) for w in theirs.get_weights()])
    theirs.compile(optimizer=keras.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    ours.compile(optimizer=sj.optimizers.SGD(0.0), loss="sparse_categorical_crossentropy")
    return theirs, ours


def test_validation_sample_weights_count_as_in_keras(rng):
    """validation_data's third element and the held-out rows of sample_weight under
    validation_split weigh val_loss as in Keras 3 (they were dropped before)."""
    theirs, ours = _keras_and_ours(rng)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    w = rng.uniform(0.0, 3.0, 40).astype(np.float32)
    for kwargs in ({"validation_data": (x[:16], y[:16], w[:16])},
                   {"validation_split": 0.25, "sample_weight": w}):
        expected = theirs.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
                              **kwargs).history["val_loss"][0]
        got = ours.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False,
                       **kwargs).history["val_loss"][0]
        assert got == pytest.approx(expected, rel=1e-5), kwargs
    unweighted = ours.evaluate(x[:16], y[:16], batch_size=8, verbose=0)
    assert ours.fit(x, y, epochs=1, verbose=0, validation_data=(x[:16], y[:16], w[:16])) \
        .history["val_loss"][0] != pytest.approx(unweighted, rel=1e-3)


def test_class_weight_weighs_training_only_as_in_keras(rng):
    theirs, ours = _keras_and_ours(rng)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    kwargs = {"validation_split": 0.25, "class_weight": {0: 1.0, 1: 4.0, 2: 0.5},
              "batch_size": 8, "epochs": 1, "verbose": 0, "shuffle": False}
    expected, got = theirs.fit(x, y, **kwargs).history, ours.fit(x, y, **kwargs).history
    assert got["loss"][0] == pytest.approx(expected["loss"][0], rel=1e-5)
    assert got["val_loss"][0] == pytest.approx(expected["val_loss"][0], rel=1e-5)
