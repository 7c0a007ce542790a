"""Keras 3 files both ways: Keras saves .keras / .weights.h5, shenjing loads, predictions agree;
shenjing saves, Keras loads, predictions agree (float32, rtol 1e-5)."""

import json

import numpy as np
import pytest

import shenjing as sj
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras

pytest.importorskip("h5py")
keras = import_keras()
K = keras.layers
RNG = np.random.default_rng(0)
# Keras's own predict warns about a single input given in a list
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")


def _data(*shapes):
    return [RNG.random(s).astype("float32") for s in shapes]


def _randomize(model):
    """Weights away from their initial values (batch norm statistics included)."""
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([RNG.uniform(0.5, 1.0, w.shape).astype(w.dtype)
                               if "normalization" in layer.name
                               else RNG.normal(0, 0.3, w.shape).astype(w.dtype)
                               for w in weights])
    return model


def cnn():
    return keras.Sequential([
        K.Input((12, 12, 3)), K.Conv2D(4, 3, strides=2, padding="same"),
        K.BatchNormalization(), K.Conv2D(3, 3, dilation_rate=2, padding="same",
                                         activation="relu"),
        K.MaxPooling2D(), K.AveragePooling2D(2, padding="same"), K.Flatten(),
        K.Dense(2, activation="softmax")], name="cnn"), _data((3, 12, 12, 3))


def new_convs():
    return keras.Sequential([
        K.Input((8, 8, 2)), K.Rescaling(1 / 255.0, offset=-0.5),
        K.SeparableConv2D(4, 3, depth_multiplier=2, padding="same"),
        K.Conv2DTranspose(3, 3, strides=2), K.DepthwiseConv2D(3),
        K.GlobalAveragePooling2D()]), [RNG.integers(0, 255, (2, 8, 8, 2)).astype("float32")]


def recurrent():
    inp = K.Input((6,), dtype="int32")
    x = K.Embedding(12, 4, mask_zero=True)(inp)
    x = K.Bidirectional(K.LSTM(3, return_sequences=True))(x)
    x = K.LSTM(3, return_sequences=True)(x)
    x = K.GRU(2)(x)
    ids = RNG.integers(1, 12, (4, 6))
    ids[:2, 4:] = 0
    return keras.Model(inp, x), [ids]


def masked_sequences():
    return keras.Sequential([
        K.Input((5, 3)), K.Masking(0.0), K.SimpleRNN(4, return_sequences=True),
        K.Bidirectional(K.GRU(2), merge_mode="sum"), K.Dense(1)]), [np.concatenate(
            [RNG.random((3, 3, 3)), np.zeros((3, 2, 3))], axis=1).astype("float32")]


def multi_input():
    a, b = K.Input((4,), name="a"), K.Input((6, 3), name="b")
    x = K.Dense(5, activation="tanh")(a)
    y = K.RNN(K.LSTMCell(5))(b)
    z = K.Concatenate()([K.Add()([x, y]), K.Multiply()([x, y])])
    return keras.Model([a, b], [K.Dense(1)(z), K.Dense(2)(z)]), _data((3, 4), (3, 6, 3))


def attention():
    q = K.Input((5, 6))
    v = K.Input((4, 6))
    x = K.MultiHeadAttention(2, 3)(q, v)
    y = K.LayerNormalization()(K.Add()([q, x]))
    return keras.Model([q, v], K.Attention()([y, v])), _data((2, 5, 6), (2, 4, 6))


def built_without_input():
    model = keras.Sequential([K.Dense(3), K.Dense(1)])
    model.build((None, 4))
    return model, _data((2, 4))


def nested_and_shared():
    inner = keras.Sequential([K.Input((4,)), K.Dense(3, activation="relu")], name="inner")
    a, b = K.Input((4,)), K.Input((4,))
    shared = K.Dense(4)
    sub_in = K.Input((3,))
    sub = keras.Model(sub_in, K.Dense(2)(sub_in), name="sub")  # a functional model inside
    x, y = inner(shared(a)), inner(shared(b))
    return keras.Model([a, b], sub(K.Subtract()([x, y]))), _data((2, 4), (2, 4))


def encoder_decoder():
    encoder_in = K.Input((5, 3))
    _, h, c = K.LSTM(4, return_state=True)(encoder_in)
    decoder_in = K.Input((6, 2))
    x = K.LSTM(4, return_sequences=True)(decoder_in, initial_state=[h, c])
    return keras.Model([encoder_in, decoder_in], K.Dense(2)(x)), _data((2, 5, 3), (2, 6, 2))


def cells_and_conv_lstm():
    t, v = K.Input((4, 5)), K.Input((3, 6, 6, 2))
    x = K.RNN(K.StackedRNNCells([K.LSTMCell(3), K.GRUCell(2)]))(t)
    y = K.GlobalAveragePooling2D()(K.ConvLSTM2D(2, 3)(v))
    return keras.Model([t, v], K.Concatenate()([x, y])), _data((2, 4, 5), (2, 3, 6, 6, 2))


def one_dimensional():
    return keras.Sequential([
        K.Input((3, 4)), K.TimeDistributed(K.Dense(2)), K.LayerNormalization(), K.PReLU(),
        K.Conv1DTranspose(2, 3, strides=2), K.SeparableConv1D(2, 2),
        K.GroupNormalization(2)]), _data((2, 3, 4))


ZOO = [cnn, new_convs, recurrent, masked_sequences, multi_input, attention, built_without_input,
       nested_and_shared, encoder_decoder, cells_and_conv_lstm, one_dimensional]


def _close(theirs, ours):
    theirs = theirs if isinstance(theirs, list) else [theirs]
    ours = ours if isinstance(ours, list) else [ours]
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours):  # float32: atol scaled to the output's size
        a = np.asarray(a)
        np.testing.assert_allclose(np.asarray(b), a, rtol=1e-5,
                                   atol=2e-6 * max(1.0, float(np.abs(a).max())))


@pytest.mark.parametrize("build", ZOO, ids=lambda f: f.__name__)
def test_keras_saves_shenjing_loads_and_back(build, tmp_path):
    model, xs = build()
    _randomize(model)
    expected = model.predict(xs, verbose=0)
    model.save(tmp_path / "k.keras")
    ours = sj.load_model(tmp_path / "k.keras")
    assert ours.count_params() == model.count_params()
    _close(expected, ours.predict(xs, verbose=0))
    ours.save(tmp_path / "s.keras")
    again = keras.saving.load_model(tmp_path / "s.keras")
    _close(expected, again.predict(xs, verbose=0))


@pytest.mark.parametrize("build", ZOO, ids=lambda f: f.__name__)
def test_weights_h5_both_ways(build, tmp_path):
    model, xs = build()
    _randomize(model)
    expected = model.predict(xs, verbose=0)
    model.save(tmp_path / "k.keras")
    model.save_weights(tmp_path / "k.weights.h5")
    ours = sj.load_model(tmp_path / "k.keras")
    for variable in ours.weights:  # forget the weights, then load them from the .weights.h5
        variable.assign(np.zeros(variable.shape, variable.dtype))
    ours.load_weights(tmp_path / "k.weights.h5")
    _close(expected, ours.predict(xs, verbose=0))
    fresh, _ = build()  # Keras reads what shenjing writes
    ours.save_weights(tmp_path / "s.weights.h5")
    fresh.load_weights(tmp_path / "s.weights.h5")
    _close(expected, fresh.predict(xs, verbose=0))


def test_shenjing_built_model_round_trips_through_keras(tmp_path):
    L = sj.layers
    model = sj.Sequential([L.Input((6, 2)), L.Conv1D(3, 2, padding="same"),
                           L.LSTM(4, return_sequences=True), L.TimeDistributed(L.Dense(2)),
                           L.GlobalMaxPooling1D(), L.Dropout(0.5), L.Dense(1)])
    x = _data((3, 6, 2))[0]
    model.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras")
    _close(model.predict(x, verbose=0), theirs.predict(x, verbose=0))
    back = sj.load_model(tmp_path / "m.keras")
    _close(model.predict(x, verbose=0), back.predict(x, verbose=0))
    assert [layer.name for layer in back.layers] == [layer.name for layer in model.layers]


def test_the_extension_decides_the_format(tmp_path):
    model = sj.Sequential([sj.layers.Input((3,)), sj.layers.Dense(2)])
    for name, method in (("m.h5", model.save), ("m.hdf5", model.save),
                         ("m.weights.h5", model.save), ("m.keras", model.save_weights),
                         ("m.h5", model.save_weights)):
        with pytest.raises(ArgumentError, match="extension"):
            method(tmp_path / name)
    model.save(tmp_path / "m.shenjing")
    model.save(tmp_path / "m.keras")
    assert (tmp_path / "m.shenjing").read_bytes()[8:9] == b"{"  # safetensors: a JSON header
    assert (tmp_path / "m.keras").read_bytes()[:2] == b"PK"  # a zip
    model.save_weights(tmp_path / "w.weights.h5")
    assert (tmp_path / "w.weights.h5").read_bytes()[:4] == b"\x89HDF"


def test_unmappable_argument_is_named(tmp_path):
    model = keras.Sequential([K.Input((4,)), K.Dense(2, kernel_constraint="non_neg")])
    model.save(tmp_path / "c.keras")
    with pytest.raises(ValueError, match="kernel_constraint.*Dense"):
        sj.load_model(tmp_path / "c.keras")


def test_load_weights_refuses_another_architecture(tmp_path):
    keras.Sequential([K.Input((4,)), K.Dense(3)]).save_weights(tmp_path / "a.weights.h5")
    model = sj.Sequential([sj.layers.Input((4,)), sj.layers.Dense(2)])
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match="shape"):
        model.load_weights(tmp_path / "a.weights.h5")
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


# Keras layer -> Keras config -> ours -> our config -> Keras config -> Keras layer: every
# argument comes back (tuples as lists, ints as floats where the value is the same)
CONFIGS = {
    "Activation": ("relu",), "Add": (), "AdditiveAttention": (), "Attention": (),
    "AveragePooling1D": (2,), "AveragePooling2D": (2, 1, "same"), "BatchNormalization": (),
    "Bidirectional": (K.GRU(2), "sum"), "Concatenate": (1,), "Conv1D": (2, 3),
    "Conv1DTranspose": (2, 3), "Conv2D": (2, 3, 2, "same"), "Conv2DTranspose": (2, 3),
    "ConvLSTM2D": (2, 3), "Cropping1D": (), "Cropping2D": (), "Dense": (3, "tanh"),
    "DepthwiseConv1D": (3,), "DepthwiseConv2D": (3,), "Dot": (1,), "Dropout": (0.3,),
    "ELU": (), "Embedding": (5, 3), "Flatten": (), "GRU": (2,), "GRUCell": (2,),
    "GaussianDropout": (0.2,), "GaussianNoise": (0.2,), "GlobalAveragePooling1D": (),
    "GlobalMaxPooling2D": (), "GroupNormalization": (2,), "LSTM": (2,), "LSTMCell": (2,),
    "LayerNormalization": (), "LeakyReLU": (0.1,), "Masking": (), "MaxPooling1D": (2,),
    "Maximum": (), "MultiHeadAttention": (2, 3), "Multiply": (), "Normalization": (),
    "PReLU": (), "Permute": ((2, 1),), "RNN": (K.LSTMCell(2),), "RandomFlip": (),
    "RandomRotation": (0.2,), "RandomTranslation": (0.1, 0.1), "RandomZoom": (0.1,),
    "ReLU": (), "RepeatVector": (3,), "Rescaling": (0.5, 1.0), "Reshape": ((2, 3),),
    "Resizing": (4, 4), "SeparableConv1D": (2, 3), "SeparableConv2D": (2, 3),
    "SimpleRNN": (2,), "Softmax": (), "SpatialDropout1D": (0.2,), "SpatialDropout2D": (0.2,),
    "StackedRNNCells": ([K.LSTMCell(2), K.GRUCell(3)],), "Subtract": (),
    "TimeDistributed": (K.Dense(2),), "UpSampling1D": (), "UpSampling2D": (),
    "ZeroPadding1D": (), "ZeroPadding2D": (),
}


def _plain(value):
    return json.loads(json.dumps(value, default=str).replace(".0,", ",").replace(".0]", "]"))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_layer_configs_map_both_ways(name):
    from shenjing.saving.keras_config import config_to_keras, from_keras
    from shenjing.saving.registry import deserialize_layer

    theirs = getattr(K, name)(*CONFIGS[name])
    ours = deserialize_layer(from_keras(keras.saving.serialize_keras_object(theirs), {}))
    assert type(ours).__name__ == name
    again = getattr(K, name).from_config(config_to_keras(name, ours.get_config()))
    expected, got = theirs.get_config(), again.get_config()
    expected.pop("name"), got.pop("name")
    assert _plain(got) == _plain(expected)


def double(x):
    return x * 2


def test_named_lambda_function_comes_from_custom_objects(tmp_path):
    model = keras.Sequential([K.Input((3,)), K.Lambda(double), K.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match=r"Lambda.*custom_objects=\{'double': double\}"):
        sj.load_model(tmp_path / "lambda.keras")
    ours = sj.load_model(tmp_path / "lambda.keras", custom_objects={"double": double})
    x = _data((2, 3))[0]
    _close(model.predict(x, verbose=0), ours.predict(x, verbose=0))
    ours.save(tmp_path / "back.keras")  # Keras finds the function by its name too
    theirs = keras.saving.load_model(tmp_path / "back.keras", custom_objects={"double": double})
    _close(model.predict(x, verbose=0), theirs.predict(x, verbose=0))


def test_what_keras_cannot_hold_is_refused_on_save(tmp_path):
    L = sj.layers
    model = sj.Sequential([L.Input((6, 6, 1)), L.Conv2D(2, 3, padding=((1, 0), (0, 1)))])
    with pytest.raises(ArgumentError, match="Conv2D 'conv2d.*explicit padding.*ZeroPadding"):
        model.save(tmp_path / "pad.keras")

    class Sub(sj.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 3), "float32"))
    with pytest.raises(ArgumentError, match="subclassed model.*\\.shenjing"):
        sub.save(tmp_path / "sub.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_mixed_precision_and_hdf5_models_are_refused_clearly(tmp_path):
    model = keras.Sequential([K.Input((3,)), K.Dense(2, dtype="mixed_float16")])
    model.save(tmp_path / "mixed.keras")
    with pytest.raises(ValueError, match="Dense 'dense.*'mixed_float16'.*no counterpart"):
        sj.load_model(tmp_path / "mixed.keras")
    model.save_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="HDF5 file.*load_weights"):
        sj.load_model(tmp_path / "w.weights.h5")
