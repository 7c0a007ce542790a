"""Bad layer arguments fail when the layer is made (or first called), with an error of ours
naming the layer and the argument; absurd sizes are refused before anything is allocated."""

import tracemalloc

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError, ShenjingError
from tests.keras_oracle import import_keras

# (constructor, expected error, the argument the message must name)
BAD_CONSTRUCTORS = [
    (lambda: layers.Conv2D(2, 1.5), ArgumentTypeError, "kernel_size"),
    (lambda: layers.Conv2D(2, (3, 3, 3)), ArgumentError, "kernel_size"),
    (lambda: layers.Conv2D(0, 3), ArgumentError, "filters"),
    (lambda: layers.Conv2D(True, 3), ArgumentTypeError, "filters"),
    (lambda: layers.Conv2D(2, 3, strides=0), ArgumentError, "strides"),
    (lambda: layers.Conv2D(2, 3, dilation_rate=(1, -1)), ArgumentError, "dilation_rate"),
    (lambda: layers.Conv2D(2, 3, strides=10**30), ArgumentError, "strides"),
    (lambda: layers.Conv2D(2, 3, padding="full"), ArgumentError, "padding"),
    (lambda: layers.Conv2D(2, 3, padding=-1), ArgumentError, "padding"),
    (lambda: layers.Conv2D(2, 3, padding=1.5), ArgumentTypeError, "padding"),
    (lambda: layers.Conv2D(2, 3, data_format="nhwc"), ArgumentError, "data_format"),
    (lambda: layers.Conv2D(2, 3, activation="nope"), ArgumentError, "activation"),
    (lambda: layers.Conv2D(2, 3, use_bias="yes"), ArgumentTypeError, "use_bias"),
    (lambda: layers.Conv1D(2, (3, 3)), ArgumentError, "kernel_size"),
    (lambda: layers.ZeroPadding2D(-1), ArgumentError, "padding"),
    (lambda: layers.ZeroPadding2D("same"), ArgumentTypeError, "padding"),
    (lambda: layers.MaxPooling2D(2, 1.5), ArgumentTypeError, "strides"),
    (lambda: layers.MaxPooling2D(0), ArgumentError, "pool_size"),
    (lambda: layers.AveragePooling1D(2, padding="causal"), ArgumentError, "padding"),
    (lambda: layers.GlobalMaxPooling2D(keepdims=1), ArgumentTypeError, "keepdims"),
    (lambda: layers.Dense(True), ArgumentTypeError, "units"),
    (lambda: layers.Dense(0), ArgumentError, "units"),
    (lambda: layers.Dense(2.0), ArgumentTypeError, "units"),
    (lambda: layers.Dense(10**12), ArgumentError, "units"),
    (lambda: layers.Dense(3, kernel_initializer="nope"), ArgumentError, "kernel_initializer"),
    (lambda: layers.Dropout(1.0), ArgumentError, "rate"),
    (lambda: layers.Dropout("0.5"), ArgumentTypeError, "rate"),
    (lambda: layers.Dropout(0.5, noise_shape=(None, 0)), ArgumentError, "noise_shape"),
    (lambda: layers.Reshape(5), ArgumentTypeError, "target_shape"),
    (lambda: layers.Reshape((0, 2)), ArgumentError, "target_shape"),
    (lambda: layers.Reshape((-1, -1)), ArgumentError, "target_shape"),
    (lambda: layers.Activation("nope"), ArgumentError, "activation"),
    (lambda: layers.Activation(3), ArgumentTypeError, "activation"),
    (lambda: layers.BatchNormalization(axis=1.5), ArgumentTypeError, "axis"),
    (lambda: layers.BatchNormalization(momentum=1.5), ArgumentError, "momentum"),
    (lambda: layers.BatchNormalization(momentum="a"), ArgumentTypeError, "momentum"),
    (lambda: layers.BatchNormalization(epsilon=0), ArgumentError, "epsilon"),
    (lambda: layers.BatchNormalization(center=None), ArgumentTypeError, "center"),
    (lambda: layers.LayerNormalization(axis="x"), ArgumentTypeError, "axis"),
    (lambda: layers.GroupNormalization(groups=0), ArgumentError, "groups"),
    (lambda: layers.LSTM(True), ArgumentTypeError, "units"),
    (lambda: layers.GRU(-4), ArgumentError, "units"),
    (lambda: layers.SimpleRNN(4, dropout=1.0), ArgumentError, "dropout"),
    (lambda: layers.LSTM(4, recurrent_dropout=-0.1), ArgumentError, "recurrent_dropout"),
    (lambda: layers.LSTM(4, activation="softmax"), ArgumentError, "activation"),
    (lambda: layers.GRU(4, recurrent_activation=3), ArgumentTypeError,
     "recurrent_activation"),
    (lambda: layers.LSTM(4, return_sequences="yes"), ArgumentTypeError, "return_sequences"),
    (lambda: layers.Embedding(0, 4), ArgumentError, "input_dim"),
    (lambda: layers.Embedding(10, 2.5), ArgumentTypeError, "output_dim"),
    (lambda: layers.Embedding(10**6, 10**5), ArgumentError, "input_dim"),
    (lambda: layers.Masking("x"), ArgumentTypeError, "mask_value"),
    (lambda: layers.LocallyConnected2D(2, 1.5), ArgumentTypeError, "kernel_size"),
    (lambda: layers.LocallyConnected2D(-1, 3), ArgumentError, "filters"),
    (lambda: layers.Bidirectional(layers.Dense(3)), ArgumentTypeError, "layer"),
    (lambda: layers.Bidirectional(layers.LSTM(3), backward_layer=layers.LSTM(3)), ArgumentError,
     "go_backwards"),
    (lambda: layers.TimeDistributed(3), ArgumentTypeError, "layer"),
    (lambda: layers.Concatenate(axis="last"), ArgumentTypeError, "axis"),
]


@pytest.mark.parametrize("make, error, argument", BAD_CONSTRUCTORS,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(BAD_CONSTRUCTORS)])
def test_bad_constructor_argument_is_refused_naming_it(make, error, argument):
    with pytest.raises(error) as caught:
        make()
    assert isinstance(caught.value, ShenjingError)
    assert argument in str(caught.value)


# The same mistakes made in Keras 3: it refuses them too (an independent check that each is a
# mistake, not a value we should accept); Keras raises ValueError, our errors are ValueError or
# TypeError subclasses as the kind of mistake says.
KERAS_REFUSES = [
    ("Conv2D", (2, 1.5), {}),
    ("Conv2D", (0, 3), {}),
    ("Conv2D", (2, 3), {"padding": "full"}),
    ("MaxPooling2D", (2, 1.5), {}),
    ("Dense", (0,), {}),
    ("Dropout", (1.5,), {}),
    ("Embedding", (0, 4), {}),
    ("TimeDistributed", (3,), {}),
]


@pytest.mark.parametrize("name, args, kwargs", KERAS_REFUSES,
                         ids=[f"{n}{a}" for n, a, _ in KERAS_REFUSES])
def test_keras_refuses_the_same_constructor_arguments(name, args, kwargs):
    keras = import_keras()
    with pytest.raises((ValueError, TypeError)):
        getattr(keras.layers, name)(*args, **kwargs)
    with pytest.raises((ArgumentError, ArgumentTypeError)):
        getattr(layers, name)(*args, **kwargs)


def test_numpy_integers_are_accepted_as_sizes():
    dense = layers.Dense(np.int64(3))
    conv = layers.Conv2D(np.int32(2), (np.int64(3), 3), strides=np.int64(1))
    assert type(dense.units) is int and dense.units == 3
    assert conv.kernel_size == (3, 3) and all(type(k) is int for k in conv.kernel_size)
    assert dense(np.ones((2, 4), np.float32)).shape == (2, 3)


@pytest.mark.parametrize("make, shape, argument", [
    (lambda: layers.Conv2D(2, 3, padding=10**9), (1, 4, 4, 1), "padding"),
    (lambda: layers.Conv2D(2, 3, padding="same", dilation_rate=10**6), (1, 4, 4, 1),
     "dilation"),
    (lambda: layers.Conv2D(2, 10**5, padding="same"), (1, 4, 4, 1), "kernel_size"),
    (lambda: layers.Conv1D(1, 3, padding="same", dilation_rate=10**8), (1, 8, 1), "dilation"),
    (lambda: layers.ZeroPadding2D(10**6), (1, 4, 4, 1), "padding"),
    (lambda: layers.Dense(10**7), (1, 784), "units"),
    (lambda: layers.LSTM(10**5), (1, 3, 4), "units"),
])
def test_absurd_sizes_are_refused_before_allocating(make, shape, argument):
    layer, x = make(), np.ones(shape, np.float32)
    tracemalloc.start()
    try:
        with pytest.raises(ArgumentError) as caught:
            layer(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert argument in message and "input shape" in message
    assert peak < 1 << 20, f"{peak} bytes allocated before the refusal"


@pytest.mark.parametrize("dtype", [np.complex64, object, np.str_])
def test_non_numeric_inputs_are_refused_naming_the_dtype(dtype):
    x = np.ones((2, 3)).astype(dtype)
    with pytest.raises(ArgumentTypeError, match=f"Dense 'd': the input .*dtype {x.dtype}"):
        layers.Dense(2, name="d")(x)


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Dense(2, name="d"), (2, 0)),
    (lambda: layers.Conv2D(2, 1, name="d"), (2, 4, 4, 0)),
    (lambda: layers.LSTM(2, name="d"), (2, 0, 3)),
])
def test_zero_size_feature_axes_are_refused_naming_the_shape(make, shape):
    with pytest.raises(ArgumentError, match=rf"'d': the input of shape \({shape[0]}, "
                                            r".*zero-size axis"):
        make()(np.ones(shape, np.float32))


def test_ragged_input_is_refused_naming_its_object_dtype():
    ragged = np.array([[1.0, 2.0], [3.0]], dtype=object)
    with pytest.raises(ArgumentTypeError, match="Dense 'd': the input .*dtype object"):
        layers.Dense(2, name="d")(ragged)


def test_a_list_given_to_a_one_input_layer_is_refused():
    with pytest.raises(ArgumentError, match="'d': expects one input tensor, got a list of 2"):
        layers.Dense(2, name="d")([[1.0, 2.0], [3.0, 4.0]])


def test_fractional_embedding_ids_are_refused():
    with pytest.raises(ArgumentTypeError, match="Embedding 'e': ids must be whole numbers"):
        layers.Embedding(5, 2, name="e")(np.array([[0.5, 1.0]]))


def test_dropout_noise_shape_must_fit_the_input():
    with pytest.raises(ArgumentError, match=r"Dropout 'dr': noise_shape \(1, 5\)"):
        layers.Dropout(0.5, noise_shape=(1, 5), name="dr")(np.ones((2, 3), np.float32))


def test_concatenate_axis_out_of_range_names_the_axis():
    a, b = layers.Input((3,)), layers.Input((4,))
    with pytest.raises(ArgumentError, match="Concatenate 'cat': axis 2 is out of range"):
        layers.Concatenate(axis=2, name="cat")([a, b])


def test_unknown_keyword_arguments_are_refused_in_keras_words():
    with pytest.raises(ArgumentTypeError,
                       match=r"Unrecognized keyword arguments passed to Dense: \{'foo': 1\}"):
        layers.Dense(3, foo=1)
    with pytest.raises(ArgumentTypeError, match="passed to LSTM: {'unit': 2}"):
        layers.LSTM(2, unit=2)


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.MaxPooling1D(10**9, padding="same"), (2, 8, 3)),
    (lambda: layers.AveragePooling1D(10**8, padding="same"), (2, 8, 3)),
    (lambda: layers.MaxPooling2D((40000, 40000), padding="same"), (2, 8, 8, 3)),
    (lambda: layers.AveragePooling2D(10**6, padding="same"), (2, 4, 4, 1)),
])
def test_same_pool_windows_past_the_input_read_only_the_input_at_once(make, shape):
    # the op cuts each window to the input it can read (ops.pool.pool_geometry): one output
    # per axis holding the max (mean) of everything, in time of the input's size, not minutes
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    layer = make()
    tracemalloc.start()
    try:
        y = layer(x).numpy()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    axes = tuple(range(1, len(shape) - 1))
    reduce = np.max if "Max" in type(layer).__name__ else np.mean
    np.testing.assert_allclose(y, reduce(x, axis=axes, keepdims=True), rtol=1e-6)
    assert peak < 1 << 20


def test_dilation_far_beyond_the_input_is_refused_at_build_naming_it():
    model_layers = [layers.Input((8, 1)), layers.Conv1D(1, 3, dilation_rate=10**8,
                                                        padding="same", name="c")]
    with pytest.raises(ArgumentError, match=r"Conv1D 'c': kernel_size \(3,\) with dilation_rate "
                                            r"\(100000000,\) spans .*input shape \(None, 8, 1\)"):
        sj.Sequential(model_layers)
    # a WaveNet-like dilation a little past a short input is computed, as in Keras
    y = layers.Conv1D(1, 2, dilation_rate=64, padding="same")(np.ones((1, 8, 1), np.float32))
    assert y.shape == (1, 8, 1)
