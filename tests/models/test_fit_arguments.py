"""fit / evaluate / predict / train_on_batch check their arguments before training: each
mistake is an error of ours naming the argument, and the weights are left as they were."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.callbacks import Callback
from shenjing.errors import ArgumentError, ArgumentTypeError, ShenjingError
from tests.keras_oracle import import_keras


def _model():
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


def _data(rng, n=10):
    return (rng.standard_normal((n, 3)).astype("float32"),
            rng.standard_normal((n, 2)).astype("float32"))


class _CountBatches(Callback):
    def __init__(self):
        super().__init__()
        self.sizes = []

    def on_train_batch_end(self, batch, logs=None):
        self.sizes.append(batch)


BAD_FIT = [
    ({"batch_size": -3}, ArgumentError, "batch_size"),
    ({"batch_size": 0}, ArgumentError, "batch_size"),
    ({"batch_size": 2.5}, ArgumentTypeError, "batch_size"),
    ({"batch_size": True}, ArgumentTypeError, "batch_size"),
    ({"batch_size": "4"}, ArgumentTypeError, "batch_size"),
    ({"epochs": -1}, ArgumentError, "epochs"),
    ({"epochs": 2.5}, ArgumentTypeError, "epochs"),
    ({"epochs": 1, "initial_epoch": 3}, ArgumentError, "initial_epoch"),
    ({"initial_epoch": -1}, ArgumentError, "initial_epoch"),
    ({"verbose": 5}, ArgumentError, "verbose"),
    ({"verbose": "loud"}, ArgumentError, "verbose"),
    ({"shuffle": "batch"}, ArgumentTypeError, "shuffle"),
    ({"validation_split": 1.0}, ArgumentError, "validation_split"),
    ({"validation_split": "a"}, ArgumentTypeError, "validation_split"),
    ({"validation_split": True}, ArgumentTypeError, "validation_split"),
    ({"validation_data": (np.ones((2, 3)),)}, ArgumentTypeError, "validation_data"),
    ({"sample_weight": np.ones(7)}, ArgumentError, "sample_weight"),
    ({"sample_weight": np.ones((10, 2, 2))}, ArgumentError, "sample_weight"),
    ({"sample_weight": np.ones(10, complex)}, ArgumentTypeError, "sample_weight"),
    ({"class_weight": [1.0, 2.0]}, ArgumentTypeError, "class_weight"),
    ({"class_weight": {0: -1.0}}, ArgumentError, "class_weight"),
    ({"sample_weight": -np.ones(10)}, ArgumentError, "sample_weight must be >= 0"),
    ({"sample_weight": np.r_[np.ones(9), np.nan]}, ArgumentError, "sample_weight must be finite"),
    ({"sample_weight": np.full(10, np.inf)}, ArgumentError, "sample_weight must be finite"),
    # Keras 3's wording; the model's output has 2 classes
    ({"class_weight": {0: 1.0, 5: 1.0}}, ArgumentError, "Expected `class_weight` to be a dict"),
    ({"callbacks": [5]}, ArgumentTypeError, "callbacks[0]"),
    ({"callbacks": "EarlyStopping"}, ArgumentTypeError, "callbacks"),
    ({"callbacks": [sj.callbacks.EarlyStopping]}, ArgumentTypeError, "callbacks[0]"),
]


@pytest.mark.parametrize("kwargs, error, argument", BAD_FIT,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD_FIT)])
def test_bad_fit_argument_is_refused_and_nothing_trains(rng, kwargs, error, argument):
    model, (x, y) = _model(), _data(rng)
    before = model.get_weights()
    with pytest.raises(error) as caught:
        model.fit(x, y, **{"verbose": 0, **kwargs})
    assert isinstance(caught.value, ShenjingError) and argument in str(caught.value)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # nothing ran: the very same arrays' values


BAD_DATA = [
    (lambda x, y: (x[:0], y[:0]), ArgumentError, "x is empty: it has 0 samples"),
    (lambda x, y: (np.zeros((10, 0)), y), ArgumentError, "x of shape (10, 0) has a zero-size"),
    (lambda x, y: (x, y[:, :0]), ArgumentError, "y of shape (10, 0) has a zero-size"),
    (lambda x, y: (x.astype(complex), y), ArgumentTypeError, "x must hold numbers"),
    (lambda x, y: (x.astype(object), y), ArgumentTypeError, "dtype object"),
    (lambda x, y: (x.astype(str), y), ArgumentTypeError, "x must hold numbers"),
    (lambda x, y: (x, y.astype(str)), ArgumentTypeError, "y must hold numbers"),
    (lambda x, y: (x.tolist(), y.tolist()), ArgumentTypeError, "Unrecognized data type: x="),
    (lambda x, y: (None, y), ArgumentError, "x is required"),
    (lambda x, y: (x, None), ArgumentError, "y is required"),
    (lambda x, y: (x[:7], y), ArgumentError, "same number of samples"),
    (lambda x, y: (np.float32(1.0), y), ArgumentError, "x must be at least rank 1"),
    (lambda x, y: (np.zeros(x.shape, "datetime64[s]"), y), ArgumentTypeError,
     "x must hold numbers (bool, int or float), got an array of dtype datetime64[s]"),
    (lambda x, y: ((x, x), y), ArgumentError, "x holds 2 arrays for a model with 1 input"),
    (lambda x, y: (x, [y, y]), ArgumentError, "y holds 2 arrays for a model with 1 output"),
]


@pytest.mark.parametrize("make, error, message", BAD_DATA,
                         ids=[c[2][:24] for c in BAD_DATA])
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_bad_data_is_refused_naming_it(rng, make, error, message, method):
    model, (x, y) = _model(), _data(rng)
    bad_x, bad_y = make(x, y)
    kwargs = {} if method == "train_on_batch" else {"verbose": 0}
    with pytest.raises(error) as caught:
        getattr(model, method)(bad_x, bad_y, **kwargs)
    assert message in str(caught.value) and str(caught.value).startswith(method)


@pytest.mark.parametrize("x, error, message", [
    (np.zeros((0, 3)), ArgumentError, "x is empty"),
    (np.ones((4, 3), complex), ArgumentTypeError, "dtype complex128"),
    ([[1.0, 2.0, 3.0]], ArgumentTypeError, "Unrecognized data type"),
])
@pytest.mark.parametrize("method", ["predict", "predict_on_batch"])
def test_predict_refuses_bad_x(x, error, message, method):
    kwargs = {"verbose": 0} if method == "predict" else {}
    with pytest.raises(error, match=f"^{method}: .*{message}"):
        getattr(_model(), method)(x, **kwargs)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
@pytest.mark.parametrize("batch_size, error", [(0, ArgumentError), (-1, ArgumentError),
                                               (1.5, ArgumentTypeError)])
def test_evaluate_and_predict_refuse_bad_batch_sizes(rng, method, batch_size, error):
    x, y = _data(rng)
    args = (x, y) if method == "evaluate" else (x,)
    with pytest.raises(error, match=f"{method}: batch_size must be a positive integer"):
        getattr(_model(), method)(*args, batch_size=batch_size, verbose=0)


def test_batch_size_none_means_keras_default_of_32(rng):
    """Keras 3's ArrayDataAdapter takes batch_size=None as 32: 70 samples in 3 batches; the
    step count is compared with Keras's own fit on the same data."""
    keras = import_keras()
    x, y = _data(rng, n=70)
    counter = _CountBatches()
    _model().fit(x, y, batch_size=None, verbose=0, callbacks=[counter])

    class KerasCount(keras.callbacks.Callback):
        steps = 0

        def on_train_batch_end(self, batch, logs=None):
            KerasCount.steps += 1

    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    reference.compile("sgd", "mse")
    reference.fit(x, y, batch_size=None, verbose=0, callbacks=[KerasCount()])
    assert len(counter.sizes) == KerasCount.steps == 3


def test_keras_refuses_a_list_of_lists_too(rng):
    """Keras 3 does not convert nested Python lists in fit (a list is a structure of inputs):
    it raises; we refuse as well, and say to pass np.asarray."""
    keras = import_keras()
    x, y = _data(rng)
    reference = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    reference.compile("sgd", "mse")
    with pytest.raises(ValueError):
        reference.fit(x.tolist(), y.tolist(), verbose=0)
    with pytest.raises(ArgumentTypeError, match=r"np\.asarray\(x\)"):
        _model().fit(x.tolist(), y.tolist(), verbose=0)


def test_validation_split_too_small_for_the_data_uses_keras_message(rng):
    x, y = _data(rng, n=2)  # floor(2 * (1 - 0.6)) = 0 samples left to train on
    with pytest.raises(ArgumentError, match=r"fit: Training data contains 2 samples, which is "
                                            r"not sufficient .*`validation_split=0.6`"):
        _model().fit(x, y, validation_split=0.6, verbose=0)


def test_good_arguments_still_train(rng):
    """What Keras accepts works: bool verbose, NumPy ints, a sample_weight per sample,
    initial_epoch equal to epochs (a finished run resumed: no epoch to run)."""
    model, (x, y) = _model(), _data(rng)
    before = model.get_weights()
    history = model.fit(x, y, batch_size=np.int64(4), epochs=2, verbose=False,
                        sample_weight=np.linspace(0.5, 1.5, 10), validation_data=(x, y))
    assert len(history.history["loss"]) == 2 and "val_loss" in history.history
    assert not np.allclose(before[0], model.get_weights()[0])
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).history == {}
    assert model.predict(x, batch_size=None, verbose=0).shape == (10, 2)


@pytest.mark.parametrize("method", ["fit", "evaluate", "predict", "train_on_batch"])
def test_a_wrong_input_shape_is_our_error_with_the_model_wording(rng, method):
    model, (x, y) = _model(), _data(rng)
    before = model.get_weights()
    args = (x[:, :2],) if method == "predict" else (x[:, :2], y)
    kwargs = {} if method == "train_on_batch" else {"verbose": 0}
    with pytest.raises(ArgumentError, match=r"Model '.*': input '.*' expects shape \(None, 3\), "
                                            r"got \(\d+, 2\)"):
        getattr(model, method)(*args, **kwargs)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_class_weight_keys_within_the_output_classes_are_taken(rng):
    x = rng.standard_normal((8, 3)).astype("float32")
    model = sj.Sequential([layers.Input((3,)), layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy")  # one sigmoid unit: classes 0 and 1
    model.fit(x, (x[:, 0] > 0).astype("float32"), class_weight={0: 1.0, 1: 3.0}, verbose=0)
    with pytest.raises(ArgumentError, match="found {2: 1.0}.* 2 classes"):
        model.fit(x, (x[:, 0] > 0).astype("float32"), class_weight={2: 1.0}, verbose=0)


@pytest.mark.parametrize("kwargs, error, argument", [
    ({"optimizer": "foo"}, ArgumentError, "optimizer"),
    ({"optimizer": 5}, ArgumentTypeError, "optimizer"),
    ({"loss": {"zzz": "mse"}}, ArgumentError, "loss"),  # Keras 3: keys must be output names
    ({"loss": "nope"}, ArgumentError, "loss"),
    ({"loss": 3}, ArgumentTypeError, "loss"),
    ({"loss": ["mse", "mse"]}, ArgumentError, "loss"),
    ({"metrics": "accuracy"}, ArgumentError, "metrics"),  # Keras 3 raises ValueError
    ({"metrics": ["nope"]}, ArgumentError, "metrics[0]"),
    ({"metrics": [5]}, ArgumentTypeError, "metrics[0]"),
    ({"loss_weights": [1.0, 2.0]}, ArgumentError, "loss_weights"),  # Keras's ValueError
    ({"loss_weights": [float("nan")]}, ArgumentError, "loss_weights[0]"),
])
def test_compile_refuses_bad_arguments_naming_them(kwargs, error, argument):
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)], name="m")
    with pytest.raises(error) as caught:
        model.compile(**{"optimizer": "sgd", "loss": "mse", **kwargs})
    message = str(caught.value)
    assert message.startswith("Model 'm'.compile: ") and argument in message
    assert not model.compiled


def test_model_construction_mistakes_are_ours():
    with pytest.raises(ArgumentTypeError, match="Sequential 's': layers must be Layer .*got 5"):
        sj.Sequential([5], name="s")
    with pytest.raises(ArgumentTypeError, match="inputs and outputs must come from"):
        sj.Model(np.ones(3), layers.Input((3,)))
    inp = layers.Input((3,))
    model = sj.Model(inp, layers.Dense(2)(inp))
    with pytest.raises(ArgumentError, match="no layer named 'nope'"):
        model.get_layer("nope")
