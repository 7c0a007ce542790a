"""Fuzzing the API boundary with hypothesis: layer constructors (then a call of what was built),
layer calls, the arguments of fit / evaluate / predict / *_on_batch, optimizer constructors (then
a step), metric constructors (then an update) and compile's arguments (then a batch), drawn from
ints (0, negatives, bools, huge), floats (NaN, inf), None, strings, tuples and layers.
Whatever is drawn, the call either works or raises an error of ours (shenjing.errors.ShenjingError, a ValueError
or TypeError) with a message, never a raw NumPy or Python error (IndexError,
ZeroDivisionError, MemoryError, a TypeError from a comparison).

Most arguments are drawn valid and a few bad (``_mostly``), so that accepted combinations run
too; ``--hypothesis-show-statistics`` shows the mix. Bounded and derandomized: the file takes
seconds and draws the same examples on every run.
"""

import inspect

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import shenjing as sj
from shenjing import layers
from shenjing.errors import ShenjingError

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.integers(-3, 6),
    st.sampled_from([0, -1, True, False, 2**40, 10**30, np.int64(2), np.float32(0.5)]),
    st.floats(-2.0, 2.0), st.sampled_from([float("nan"), float("inf"), 1e300]),
    st.none(),
    st.sampled_from(["", "same", "valid", "relu", "tanh", "channels_first", "concat", "x"]),
)
BAD = st.one_of(
    SCALARS,
    st.tuples(SCALARS), st.tuples(SCALARS, SCALARS), st.tuples(SCALARS, SCALARS, SCALARS),
    st.lists(st.integers(-2, 4), max_size=3),
    st.tuples(st.tuples(st.integers(-1, 3), st.integers(-1, 3)),
              st.tuples(st.integers(-1, 3), st.integers(-1, 3))),
    st.sampled_from(["dense", "rnn"]),  # replaced by a fresh Dense / LSTM
)
SMALL = st.integers(1, 3)
# values each argument name takes in ordinary use, so that most drawn layers can be built
GOOD = {
    "units": SMALL, "filters": SMALL, "input_dim": st.integers(1, 6), "output_dim": SMALL,
    "kernel_size": st.one_of(SMALL, st.tuples(SMALL, SMALL)), "pool_size": SMALL,
    "strides": st.integers(1, 2), "dilation_rate": st.integers(1, 2),
    "padding": st.sampled_from(["valid", "same", "VALID", 1, ((0, 1), (1, 0))]),
    "rate": st.floats(0.0, 0.9), "dropout": st.floats(0.0, 0.5),
    "recurrent_dropout": st.floats(0.0, 0.5), "momentum": st.floats(0.0, 1.0),
    "epsilon": st.floats(1e-5, 0.1), "axis": st.sampled_from([-1, 1, 2]),
    "groups": st.sampled_from([1, -1]), "target_shape": st.sampled_from([(-1,), (2, -1)]),
    "activation": st.sampled_from([None, "relu", "tanh", "sigmoid", "linear"]),
    "recurrent_activation": st.sampled_from(["sigmoid", "hard_sigmoid", "tanh"]),
    "data_format": st.sampled_from([None, "channels_last", "channels_first"]),
    "merge_mode": st.sampled_from(["concat", "sum", "mul", "ave", None]),
    "layer": st.sampled_from(["dense", "rnn"]), "shape": st.tuples(SMALL, SMALL),
    "mask_value": st.floats(-1.0, 1.0), "noise_shape": st.sampled_from([None, (None, 1)]),
}

# every public layer class (Layer is the abstract base; Input and the merge forms such as
# `add` are functions)
LAYER_CLASSES = [getattr(layers, name) for name in layers.__all__
                 if isinstance(getattr(layers, name), type) and name != "Layer"]


def _mostly(good, bad_one_in=7):
    """A value from good, or one time in bad_one_in a bad one."""
    return st.integers(1, bad_one_in).flatmap(lambda k: BAD if k == 1 else good)


def _parameters(cls):
    """The constructor's own arguments (without self and **kwargs)."""
    return [p for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


def _materialize(value):
    if isinstance(value, str) and value == "dense":
        return layers.Dense(2)
    if isinstance(value, str) and value == "rnn":
        return layers.LSTM(2)
    return value


def _assert_ours(error):
    assert isinstance(error, ShenjingError), f"raw {type(error).__name__}: {error}"
    assert isinstance(error, (ValueError, TypeError)) and str(error).strip()
    event(f"refused: {type(error).__name__}")


@st.composite
def constructor_calls(draw):
    """A layer class and keyword arguments: each required one drawn, each optional one left
    out, drawn from ordinary values (GOOD, booleans for flags), or drawn bad."""
    cls = draw(st.sampled_from(LAYER_CLASSES))
    kwargs = {}
    for param in _parameters(cls):
        required = param.default is inspect.Parameter.empty
        if isinstance(param.default, bool):
            good = st.booleans()
        else:
            good = GOOD.get(param.name, st.just(param.default))
        if required or draw(st.integers(0, 3)) == 0:
            kwargs[param.name] = _materialize(draw(_mostly(good)))
    return cls, kwargs


@FUZZ
@given(constructor_calls(), st.lists(st.integers(1, 5), min_size=1, max_size=4),
       st.booleans())
def test_layer_constructors_and_a_call_raise_only_our_errors(call, sample_shape, training):
    cls, kwargs = call
    try:
        layer = cls(**kwargs)
        event("constructed")
        layer(np.ones((2, *sample_shape), np.float32), training=training)
        event("called")
    except Exception as error:  # noqa: BLE001 - the point: whatever it raises must be ours
        _assert_ours(error)


CALLED_LAYERS = {
    "dense": lambda: layers.Dense(3),
    "conv2d": lambda: layers.Conv2D(2, 2, padding="same"),
    "conv1d": lambda: layers.Conv1D(2, 2),
    "max_pool2d": lambda: layers.MaxPooling2D(2),
    "avg_pool1d": lambda: layers.AveragePooling1D(2, padding="same"),
    "global_pool": lambda: layers.GlobalAveragePooling2D(),
    "batch_norm": lambda: layers.BatchNormalization(),
    "layer_norm": lambda: layers.LayerNormalization(),
    "lstm": lambda: layers.LSTM(2),
    "gru_seq": lambda: layers.GRU(2, return_sequences=True),
    "flatten": lambda: layers.Flatten(),
    "reshape": lambda: layers.Reshape((-1,)),
    "embedding": lambda: layers.Embedding(5, 2),
    "dropout": lambda: layers.Dropout(0.5),
    "time_distributed": lambda: layers.TimeDistributed(layers.Dense(2)),
}
DTYPES = ["float32", "float64", "int32", "bool", "complex64", "str", "object"]


@FUZZ
@given(st.sampled_from(sorted(CALLED_LAYERS)),
       st.lists(st.integers(0, 4), min_size=0, max_size=5),
       st.sampled_from(["float32"] * 4 + DTYPES), st.booleans())
def test_layer_calls_raise_only_our_errors(name, shape, dtype, training):
    layer = CALLED_LAYERS[name]()
    x = np.ones(shape, dtype=dtype)
    try:
        layer(x, training=training)
        event("called")
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)


def _fit_model():
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile("sgd", "mse")
    return model


BATCH_SIZES = _mostly(st.one_of(st.integers(1, 12), st.sampled_from([None, np.int64(3)])), 12)
EPOCHS = _mostly(st.sampled_from([0, 1, 2, np.int32(1)]), 12)
INITIAL_EPOCHS = _mostly(st.sampled_from([0, 1]), 12)
SPLITS = _mostly(st.sampled_from([0.0, 0.0, 0.25, 0.5]), 12)
WEIGHTS = st.sampled_from([None] * 6 + ["n"] * 3 + ["2d", "3d", "list", 1.0, 0, 5, 13])
DATA_DTYPES = st.sampled_from(["float32"] * 10 + ["float64", "int32", "bool"] + DTYPES)


def _sample_weight(spec, n):
    """None, weights per sample ('n'), per sample and output ('2d'), or something wrong."""
    if spec is None or isinstance(spec, float):
        return spec
    shapes = {"n": (n,), "2d": (n, 2), "3d": (n, 2, 2)}
    if spec == "list":
        return [1.0] * n
    return np.ones(shapes.get(spec, spec))


@FUZZ
@given(n=st.integers(0, 12), features=st.sampled_from([3] * 8 + [0]), dtype=DATA_DTYPES,
       batch_size=BATCH_SIZES, epochs=EPOCHS, initial_epoch=INITIAL_EPOCHS, split=SPLITS,
       weights=WEIGHTS, verbose=_mostly(st.sampled_from([0, False]), 12),
       shuffle=_mostly(st.booleans(), 12))
def test_fit_arguments_raise_only_our_errors(n, features, dtype, batch_size, epochs,
                                             initial_epoch, split, weights, verbose, shuffle):
    x = np.ones((n, features), dtype=dtype)
    y = np.zeros((n, 2), dtype="float32")
    try:
        _fit_model().fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                         validation_split=split, sample_weight=_sample_weight(weights, n),
                         initial_epoch=initial_epoch, shuffle=shuffle)
        event("trained")
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)


@FUZZ
@given(method=st.sampled_from(["evaluate", "predict", "train_on_batch", "predict_on_batch"]),
       n=st.integers(0, 6), dtype=DATA_DTYPES, batch_size=BATCH_SIZES, weights=WEIGHTS,
       nested=st.sampled_from([False] * 6 + [True]))
def test_evaluate_predict_arguments_raise_only_our_errors(method, n, dtype, batch_size, weights,
                                                          nested):
    x = np.ones((n, 3), dtype=dtype)
    y = np.zeros((n, 2), dtype="float32")
    if nested:
        x = x.tolist()
    model = _fit_model()
    calls = {
        "evaluate": lambda: model.evaluate(x, y, batch_size=batch_size, verbose=0,
                                           sample_weight=_sample_weight(weights, n)),
        "predict": lambda: model.predict(x, batch_size=batch_size, verbose=0),
        "train_on_batch": lambda: model.train_on_batch(x, y, _sample_weight(weights, n)),
        "predict_on_batch": lambda: model.predict_on_batch(x),
    }
    try:
        calls[method]()
        event("ran")
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)


# ----- optimizers, metrics and compile -------------------------------------------------------
OPTIMIZERS = [sj.optimizers.SGD, sj.optimizers.Adam, sj.optimizers.AdamW,
              sj.optimizers.RMSprop, sj.optimizers.Adagrad]
METRICS = [getattr(sj.metrics, name) for name in ("Mean", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError")]
RATE = st.floats(0.0, 0.99)
HYPER = {
    "learning_rate": st.floats(1e-4, 1.0), "momentum": st.floats(0.0, 1.0), "rho": RATE,
    "beta_1": RATE, "beta_2": RATE, "epsilon": st.floats(0.0, 0.1),
    "initial_accumulator_value": st.floats(0.0, 1.0), "weight_decay": st.floats(0.0, 0.1),
    "clipnorm": st.floats(0.1, 5.0), "clipvalue": st.floats(0.1, 5.0),
    "global_clipnorm": st.floats(0.1, 5.0), "k": SMALL, "threshold": st.floats(0.1, 0.9),
    "name": st.sampled_from([None, "m"]), "dtype": st.sampled_from([None, "float32"]),
}


@st.composite
def object_calls(draw, classes, base=None):
    """A class and keyword arguments for its constructor (and base's, which its **kwargs
    reach), most drawn from HYPER, a few bad."""
    cls = draw(st.sampled_from(classes))
    params = _parameters(cls) + (_parameters(base) if base else [])
    kwargs = {}
    for param in params:
        if param.name in kwargs:
            continue
        good = st.booleans() if isinstance(param.default, bool) else HYPER.get(
            param.name, st.just(param.default))
        if param.default is inspect.Parameter.empty or draw(st.integers(0, 2)) == 0:
            kwargs[param.name] = _materialize(draw(_mostly(good, 5)))
    return cls, kwargs


@FUZZ
@given(object_calls(OPTIMIZERS, sj.optimizers.Optimizer))
def test_optimizer_constructors_and_a_step_raise_only_our_errors(call):
    cls, kwargs = call
    variable = sj.Variable(np.ones((2, 3), np.float32), name="w")
    variable.grad = np.full((2, 3), 0.5, np.float32)
    try:
        cls(**kwargs).apply([variable])
        event("stepped")
        rate = kwargs.get("learning_rate", 1.0)
        if not isinstance(rate, (int, float)) or abs(rate) <= 1e3:  # 1e300 overflows, rightly
            assert np.isfinite(variable.data).all()
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)


@FUZZ
@given(object_calls(METRICS))
def test_metric_constructors_and_an_update_raise_only_our_errors(call):
    cls, kwargs = call
    y_true, y_pred = np.array([0, 2, 1]), np.eye(3, dtype=np.float32)[[0, 1, 1]]
    try:
        metric = cls(**kwargs)
        event("constructed")
        if cls is sj.metrics.Mean:
            metric.update_state(y_pred)
        elif "Sparse" in cls.__name__:
            metric.update_state(y_true, y_pred)
        else:
            metric.update_state(y_pred, y_pred)
        assert np.isfinite(metric.result())
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)


COMPILE = {
    "optimizer": st.sampled_from(["sgd", "adam", "RMSprop", "adagrad", "adamw"]),
    "loss": st.sampled_from(["mse", "mae", "huber", "categorical_crossentropy"]),
    "metrics": st.sampled_from([None, [], ["mae"], ["accuracy"], ["mse", "acc"]]),
    "loss_weights": st.sampled_from([None, [1.0], [0.5]]),
}


@FUZZ
@given(st.fixed_dictionaries({name: _mostly(good, 5) for name, good in COMPILE.items()}))
def test_compile_arguments_then_a_step_raise_only_our_errors(kwargs):
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2, activation="softmax")])
    kwargs = {name: _materialize(value) for name, value in kwargs.items()}
    try:
        model.compile(**kwargs)
        event("compiled")
        model.train_on_batch(np.ones((4, 3), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 2])
        event("trained")
    except Exception as error:  # noqa: BLE001
        _assert_ours(error)
