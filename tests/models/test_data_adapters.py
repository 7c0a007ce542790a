"""Data into fit / evaluate / predict (generators, PyDataset, steps, validation options, dicts)
against Keras 3 on the torch backend: same steps per epoch, warnings, logs and weights."""

import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing.callbacks import Callback, ModelCheckpoint
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras

keras = import_keras()
RAN_OUT = "Your input ran out of data"


def _pair(lr=0.1):
    theirs = keras.Model(*_graph(keras))
    ours = sj.Model(*_graph(sj))
    ours.set_weights(theirs.get_weights())
    theirs.compile(optimizer=keras.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    ours.compile(optimizer=sj.optimizers.SGD(lr), loss="mse", metrics=["mae"])
    return theirs, ours


def _graph(lib):
    inp = lib.Input((3,), name="inp")
    return inp, lib.layers.Dense(1, name="out")(inp)


def _data(rng, n=20):
    return (rng.standard_normal((n, 3)).astype(np.float32),
            rng.standard_normal((n, 1)).astype(np.float32),
            rng.uniform(0.5, 2.0, n).astype(np.float32))


def _steps_counter(lib):
    class Steps(lib.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.steps = []

        def on_epoch_begin(self, epoch, logs=None):
            self.steps.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.steps[-1] += 1
    return Steps()


def _fit_both(theirs, ours, make_data, **kwargs):
    """fit both; returns (their history, our history, their steps, our steps, our warnings)."""
    counters = _steps_counter(keras), _steps_counter(sj)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        expected = theirs.fit(make_data(), callbacks=[counters[0]], verbose=0, **kwargs).history
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ours.fit(make_data(), callbacks=[counters[1]], verbose=0, **kwargs).history
    return expected, got, counters[0].steps, counters[1].steps, [str(w.message) for w in caught]


def _assert_same(theirs, ours, expected=None, got=None):
    for mine, their_weight in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(mine, their_weight, rtol=1e-5, atol=1e-6)
    for name in expected or {}:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, err_msg=name)


def test_generator_of_weighted_batches_trains_as_keras(rng):
    theirs, ours = _pair()
    x, y, w = _data(rng)
    gen = lambda: ((x[i:i + 4], y[i:i + 4], w[i:i + 4]) for i in range(0, 20, 4))
    expected, got, their_steps, our_steps, caught = _fit_both(theirs, ours, gen)
    assert our_steps == their_steps == [5]
    assert any(RAN_OUT in m for m in caught)  # Keras warns when a generator ends, too
    _assert_same(theirs, ours, expected, got)


def test_generator_shorter_than_steps_per_epoch_times_epochs(rng):
    """Keras's EpochIterator: 3 steps, then the 2 left with its warning; then ours stops (a
    spent generator has nothing for a third epoch)."""
    theirs, ours = _pair()
    x, y, _ = _data(rng)
    gen = lambda: ((x[i:i + 4], y[i:i + 4]) for i in range(0, 20, 4))
    expected, got, their_steps, our_steps, caught = _fit_both(theirs, ours, gen, epochs=2,
                                                             steps_per_epoch=3)
    assert our_steps == their_steps == [3, 2] and any(RAN_OUT in m for m in caught)
    _assert_same(theirs, ours, expected, got)
    with pytest.warns(UserWarning, match=RAN_OUT):
        history = ours.fit(gen(), steps_per_epoch=3, epochs=3, verbose=0).history
    assert len(history["loss"]) == 2 and ours.stop_training  # nothing left for epoch 3


def test_arrays_with_steps_per_epoch_go_on_across_epochs_as_keras(rng):
    theirs, ours = _pair()
    x, y, _ = _data(rng)
    counters = _steps_counter(keras), _steps_counter(sj)
    kwargs = {"batch_size": 4, "epochs": 3, "steps_per_epoch": 2, "shuffle": False,
              "verbose": 0}
    with pytest.warns(UserWarning):
        expected = theirs.fit(x, y, callbacks=[counters[0]], **kwargs).history
    with pytest.warns(UserWarning, match=RAN_OUT):
        got = ours.fit(x, y, callbacks=[counters[1]], **kwargs).history
    assert counters[1].steps == counters[0].steps == [2, 2, 1]
    _assert_same(theirs, ours, expected, got)


def _dataset(lib, x, y):
    class Batches(lib.utils.PyDataset):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.epochs_ended = 0

        def __len__(self):
            return 3

        def __getitem__(self, index):
            part = slice(index * 6, (index + 1) * 6)
            return x[part], y[part]

        def on_epoch_end(self):
            self.epochs_ended += 1
    return Batches()


def test_py_dataset_trains_as_keras_and_hears_each_epoch_end(rng):
    theirs, ours = _pair()
    x, y, _ = _data(rng, 18)
    their_data, our_data = _dataset(keras, x, y), _dataset(sj, x, y)
    expected = theirs.fit(their_data, epochs=2, shuffle=False, verbose=0).history
    got = ours.fit(our_data, epochs=2, shuffle=False, verbose=0).history
    _assert_same(theirs, ours, expected, got)
    assert our_data.epochs_ended >= 2
    np.testing.assert_allclose(ours.evaluate(our_data, verbose=0),
                               theirs.evaluate(their_data, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.predict(our_data, verbose=0),
                               theirs.predict(their_data, verbose=0), rtol=1e-5, atol=1e-6)
    sj.utils.set_seed(0)
    ours.fit(our_data, epochs=1, verbose=0)  # shuffle=True shuffles the batch order: runs


@pytest.mark.parametrize("kwargs", [{"workers": 4}, {"use_multiprocessing": True},
                                    {"max_queue_size": 2}])
def test_py_dataset_refuses_parallel_loading(kwargs):
    with pytest.raises(ArgumentError, match="calling thread"):
        sj.utils.PyDataset(**kwargs)
    sj.utils.PyDataset(workers=1, use_multiprocessing=False, max_queue_size=10)


def test_validation_freq_steps_and_batch_size_as_keras(rng):
    theirs, ours = _pair()
    x, y, _ = _data(rng)
    for kwargs in ({"validation_freq": [2, 3]}, {"validation_freq": 2},
                   {"validation_steps": 1, "validation_batch_size": 5}):
        kwargs = {"validation_data": (x[:10], y[:10]), "epochs": 3, "batch_size": 8,
                  "shuffle": False, "verbose": 0, **kwargs}
        expected, got = theirs.fit(x, y, **kwargs).history, ours.fit(x, y, **kwargs).history
        assert set(got) == set(expected)
        _assert_same(theirs, ours, expected, got)


def test_validation_data_as_a_generator(rng):
    theirs, ours = _pair()
    x, y, _ = _data(rng)
    val = lambda: ((x[i:i + 5], y[i:i + 5]) for i in range(0, 20, 5))
    kwargs = {"epochs": 1, "batch_size": 4, "shuffle": False, "verbose": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs.fit(x, y, validation_data=val(), **kwargs).history
        got = ours.fit(x, y, validation_data=val(), **kwargs).history
    _assert_same(theirs, ours, expected, got)


def test_evaluate_and_predict_take_generators_and_steps(rng):
    theirs, ours = _pair()
    x, y, _ = _data(rng)
    gen = lambda: ((x[i:i + 4], y[i:i + 4]) for i in range(0, 20, 4))
    for steps in (None, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.testing.assert_allclose(ours.evaluate(gen(), steps=steps, verbose=0),
                                       theirs.evaluate(gen(), steps=steps, verbose=0), rtol=1e-5)
            expected = theirs.predict(gen(), steps=steps, verbose=0)
            got = ours.predict(gen(), steps=steps, verbose=0)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # x alone per batch (Keras wants a tuple (x,) here; a bare array is unambiguous for predict)
    bare = ours.predict((x[i:i + 4] for i in range(0, 20, 4)), verbose=0)
    np.testing.assert_allclose(bare, ours.predict(x, verbose=0), rtol=1e-6)


def test_dict_inputs_and_targets_by_name(rng):
    def build(lib):
        a, b = lib.Input((2,), name="a"), lib.Input((3,), name="b")
        joined = lib.layers.Concatenate()([a, b])
        return lib.Model([a, b], [lib.layers.Dense(1, name="p")(joined),
                                  lib.layers.Dense(2, name="q")(joined)])
    theirs, ours = build(keras), build(sj)
    ours.set_weights(theirs.get_weights())
    a, b = rng.standard_normal((8, 2)), rng.standard_normal((8, 3))
    p, q = rng.standard_normal((8, 1)), rng.standard_normal((8, 2))
    a, b, p, q = (v.astype(np.float32) for v in (a, b, p, q))
    for model, opt in ((theirs, keras.optimizers.SGD(0.1)), (ours, sj.optimizers.SGD(0.1))):
        model.compile(optimizer=opt, loss={"p": "mse", "q": "mae"})
    kwargs = {"batch_size": 4, "shuffle": False, "verbose": 0}
    expected = theirs.fit({"b": b, "a": a}, [p, q], **kwargs).history
    got = ours.fit({"b": b, "a": a}, {"q": q, "p": p}, **kwargs).history
    _assert_same(theirs, ours, expected, got)
    with pytest.raises(ArgumentError, match='Missing data for input "b"'):
        ours.fit({"a": a}, [p, q], verbose=0)
    with pytest.raises(ArgumentError, match="name no model output"):
        ours.fit({"a": a, "b": b}, {"p": p, "q": q, "r": q}, verbose=0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"y": np.zeros((4, 1))}, ArgumentError, "`y` should not be passed"),
    ({"sample_weight": np.ones(4)}, ArgumentError, "`sample_weight` should not be passed"),
    ({"batch_size": 4}, ArgumentError, "batch_size=4 was given with x as a generator"),
    ({"validation_split": 0.2}, ArgumentError, "`validation_split` is only supported"),
])
def test_generator_argument_mistakes(kwargs, error, message, rng):
    _, ours = _pair()
    x, y, _ = _data(rng, 8)
    with pytest.raises(error, match=message):
        ours.fit(((x[i:i + 4], y[i:i + 4]) for i in (0, 4)), verbose=0, **kwargs)


def test_generator_batches_are_checked(rng):
    _, ours = _pair()
    x, y, _ = _data(rng, 8)
    with pytest.raises(ArgumentTypeError, match="must return a tuple"):
        ours.fit(([x, y] for _ in range(2)), verbose=0)  # a list is x for two inputs: refused
    with pytest.raises(ArgumentError, match="at least one batch"):
        ours.fit(iter([]), verbose=0)
    with pytest.raises(ArgumentError, match=r"format `x`, `\(x,\)`"):
        ours.fit(((x, y, y[:, 0], y) for _ in range(2)), verbose=0)


def test_a_mid_epoch_checkpoint_resumes_only_with_arrays(rng, tmp_path):
    _, ours = _pair()
    x, y, _ = _data(rng)
    path = tmp_path / "m.shenjing"

    class Stop(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    ours.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path,
                                                                                 save_freq=2),
                                                                 Stop()])
    loaded = sj.load_model(path)
    gen = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 20, 4))
    with pytest.raises(ArgumentError, match="only resumes with arrays"):
        loaded.fit(gen, initial_epoch=loaded.completed_epochs, epochs=2, verbose=0)
    loaded = sj.load_model(path)
    loaded.fit(x, y, batch_size=4, initial_epoch=loaded.completed_epochs, epochs=2, verbose=0)


def test_validation_split_with_two_inputs_equals_keras():
    """fit([x1, x2], y, validation_split=...) (the seq2seq pattern): the split keeps the two
    inputs apart; val_loss equals Keras's on the same weights (it failed with a TypeError)."""
    keras = import_keras()
    rng = np.random.default_rng(3)
    x1 = rng.standard_normal((20, 5)).astype(np.float32)
    x2 = rng.standard_normal((20, 3)).astype(np.float32)
    y = rng.standard_normal((20, 2)).astype(np.float32)

    def make(lib):
        a, b = lib.Input((5,)), lib.Input((3,))
        out = lib.layers.Dense(2)(lib.layers.Concatenate()([a, b]))
        model = lib.Model([a, b], out)
        model.compile(optimizer=lib.optimizers.SGD(0.0), loss="mse")
        return model

    ours, theirs = make(sj), make(keras)
    ours.set_weights(theirs.get_weights())
    got = ours.fit([x1, x2], y, batch_size=8, epochs=1, validation_split=0.25, shuffle=False,
                   verbose=0).history
    expected = theirs.fit([x1, x2], y, batch_size=8, epochs=1, validation_split=0.25,
                          shuffle=False, verbose=0).history
    assert got["val_loss"][0] == pytest.approx(expected["val_loss"][0], rel=1e-5)
    assert got["loss"][0] == pytest.approx(expected["loss"][0], rel=1e-5)
