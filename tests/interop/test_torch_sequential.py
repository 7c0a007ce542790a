"""A whole Sequential model -> torch.nn.Sequential: the torch module predicts what our model
predicts (eval mode, channels-last input), weights trained in torch come back into ours, and
layers without a torch counterpart are refused by name."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.interop import from_torch_sequential, to_torch_sequential

torch = pytest.importorskip("torch")
TOL = {"float64": {"rtol": 1e-10, "atol": 1e-10}, "float32": {"rtol": 1e-5, "atol": 1e-5}}


def randomize(model, rng):
    """Random weights everywhere (positive moving variances), so nothing matches by luck."""
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.name
                           else 0.5 * rng.standard_normal(w.shape) for w in layer.weights])
    return model


def predict_torch(module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def cnn(dtype):
    d = {"dtype": dtype}
    return sj.Sequential([
        L.Input((9, 9, 3), dtype=dtype),
        L.Conv2D(4, 3, padding="same", **d), L.BatchNormalization(**d), L.ReLU(**d),
        L.MaxPooling2D(**d),
        L.Conv2D(5, 3, **d), L.BatchNormalization(momentum=0.9, **d), L.ReLU(**d),
        L.MaxPooling2D(padding="same", **d),
        L.Flatten(**d), L.Dense(3, activation="softmax", **d),
    ], dtype=dtype)  # the model's dtype too: it casts its inputs to it


MODELS = {
    "cnn": cnn,
    "cnn_variants": lambda dtype: sj.Sequential([
        L.Input((10, 9, 3), dtype=dtype),
        L.ZeroPadding2D(((1, 0), (0, 2)), dtype=dtype),
        L.Conv2D(4, 3, strides=2, padding="same", activation="elu", dtype=dtype),
        L.DepthwiseConv2D(2, depth_multiplier=2, padding="same", strides=2, dtype=dtype),
        L.PReLU(shared_axes=[1, 2], dtype=dtype),
        L.SeparableConv2D(5, 2, dilation_rate=1, padding="same", dtype=dtype),
        L.GroupNormalization(groups=5, dtype=dtype),
        L.AveragePooling2D(2, strides=1, dtype=dtype),
        L.Conv2D(6, 1, padding=((0, 1), (1, 1)), activation="gelu", dtype=dtype),
        L.LeakyReLU(dtype=dtype),
        L.GlobalAveragePooling2D(dtype=dtype),
        L.Dropout(0.3, dtype=dtype),
        L.LayerNormalization(dtype=dtype),
        L.Dense(4, activation="tanh", dtype=dtype),
        L.ReLU(max_value=0.5, dtype=dtype),
    ], dtype=dtype),
    "conv1d": lambda dtype: sj.Sequential([
        L.Input((11, 2), dtype=dtype),
        L.Conv1D(4, 3, strides=2, padding="same", activation="relu6", dtype=dtype),
        L.MaxPooling1D(2, padding="same", dtype=dtype),
        L.BatchNormalization(dtype=dtype),
        L.Conv1D(3, 2, padding="same", dilation_rate=2, activation="silu", dtype=dtype),
        L.Softmax(dtype=dtype),
        L.Reshape((3, 3), dtype=dtype),
        L.Dense(2, activation="sigmoid", dtype=dtype),
        L.Flatten(dtype=dtype),
        L.ELU(alpha=0.5, dtype=dtype),
    ], dtype=dtype),
}
MODELS["transposed"] = lambda dtype: sj.Sequential([
    L.Input((4, 5, 2), dtype=dtype),
    L.Conv2DTranspose(3, 3, strides=2, padding="same", dtype=dtype),  # a crop after it
    L.Conv2DTranspose(2, (2, 3), strides=(3, 1), padding="valid", dtype=dtype),
    L.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1, activation="relu",
                      dtype=dtype),
    L.Reshape((-1, 2), dtype=dtype),
    L.Conv1DTranspose(3, 2, strides=3, dtype=dtype),  # output_padding 1 (stride > kernel)
    L.Conv1DTranspose(2, 3, dilation_rate=2, padding="same", dtype=dtype),
], dtype=dtype)
SHAPES = {"cnn": (3, 9, 9, 3), "cnn_variants": (2, 10, 9, 3), "conv1d": (3, 11, 2),
          "transposed": (2, 4, 5, 2)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_converted_model_predicts_the_same(name, dtype):
    rng = np.random.default_rng(0)
    model = randomize(MODELS[name](dtype), rng)
    module = to_torch_sequential(model)
    assert isinstance(module, torch.nn.Sequential)
    x = rng.standard_normal(SHAPES[name]).astype(dtype)
    expected = model.predict(x, verbose=0)
    got = predict_torch(module, x)
    assert got.dtype == np.dtype(dtype) and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOL[dtype])


def test_cnn_has_one_permute_in_and_one_before_flatten():
    model = cnn("float32")
    names = [type(m).__name__ for m in to_torch_sequential(model)]
    assert names[0] == "Permute" and names.count("Permute") == 2
    assert names[names.index("Flatten") - 1] == "Permute"
    assert "BatchNorm2d" in names and "ConstantPad2d" not in names  # both 'same' pads are 0


def rnn_model(dtype="float64"):
    return sj.Sequential([
        L.Input((5,), dtype="int64"),
        L.Embedding(7, 3, dtype=dtype),
        L.LSTM(4, return_sequences=True, dtype=dtype),
        L.Bidirectional(L.GRU(3, return_sequences=True, dtype=dtype), dtype=dtype),
        L.Bidirectional(L.LSTM(2, dtype=dtype), dtype=dtype),
        L.Dense(2, dtype=dtype),
    ], dtype=dtype)


def test_rnn_model_predicts_the_same():
    rng = np.random.default_rng(1)
    model = randomize(rnn_model(), rng)
    module = to_torch_sequential(model)
    x = rng.integers(0, 7, (3, 5))
    np.testing.assert_allclose(predict_torch(module, x), model.predict(x, verbose=0),
                               **TOL["float64"])


def test_simple_rnn_last_output_and_dropout_warning():
    rng = np.random.default_rng(2)
    model = randomize(sj.Sequential([
        L.Input((6, 3), dtype="float64"), L.SimpleRNN(4, activation="relu", dropout=0.2, dtype="float64"),
    ], dtype="float64"), rng)
    with pytest.warns(UserWarning, match="dropout and recurrent_dropout have no torch"):
        module = to_torch_sequential(model)
    x = rng.standard_normal((2, 6, 3))
    np.testing.assert_allclose(predict_torch(module, x), model.predict(x, verbose=0),
                               **TOL["float64"])


def test_weights_trained_in_torch_come_back():
    rng = np.random.default_rng(3)
    model = randomize(cnn("float64"), rng)
    module = to_torch_sequential(model)
    x = torch.from_numpy(rng.standard_normal((8, 9, 9, 3)))
    target = torch.from_numpy(rng.integers(0, 3, 8))
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module.train()  # batch statistics, running statistics updated
    for _ in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.nll_loss(torch.log(module(x)), target)
        loss.backward()
        optimizer.step()
    before = model.predict(x.numpy(), verbose=0)
    from_torch_sequential(model, module)
    expected = predict_torch(module, x.numpy())
    assert np.abs(before - expected).max() > 1e-3  # training changed something
    np.testing.assert_allclose(model.predict(x.numpy(), verbose=0), expected, **TOL["float64"])


def test_from_torch_sequential_refuses_another_structure():
    model = cnn("float64")
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ArgumentError, match="not what to_torch_sequential makes of Sequential"):
        from_torch_sequential(model, other)


@pytest.mark.parametrize("layer, message", [
    (L.UpSampling2D(name="up"), "UpSampling2D 'up' in model .* has no torch.nn equivalent"),
    (L.AveragePooling2D(2, padding="same", name="avg"),
     r"AveragePooling2D 'avg' .* padding='same' with pads"),
    (L.Conv2D(2, 3, activation="exponential", name="c"),
     "Conv2D 'c' .* has activation 'exponential'"),
    (L.BatchNormalization(axis=1, name="bn"), "BatchNormalization 'bn' .* normalizes axis 1"),
    (L.ReLU(threshold=0.5, name="r"), "ReLU 'r' .* has a threshold"),
])
def test_layers_without_a_torch_counterpart_are_named(layer, message):
    model = sj.Sequential([L.Input((5, 5, 2)), layer])
    with pytest.raises(ArgumentError, match=message):
        to_torch_sequential(model)


def test_masks_states_and_models_that_are_not_sequential_are_refused():
    masked = sj.Sequential([L.Input((4,)), L.Embedding(5, 2, mask_zero=True, name="e"),
                            L.LSTM(2)])
    with pytest.raises(ArgumentError, match="Embedding 'e' .* mask_zero=True"):
        to_torch_sequential(masked)
    summed = sj.Sequential([L.Input((4, 3)),
                            L.Bidirectional(L.GRU(2), merge_mode="sum", name="b")])
    with pytest.raises(ArgumentError, match="Bidirectional 'b' .* merge_mode='sum'"):
        to_torch_sequential(summed)
    inputs = sj.Input((3,))
    functional = sj.Model(inputs, L.Dense(2)(inputs))
    with pytest.raises(ArgumentTypeError, match="expected a Sequential model, got Model"):
        to_torch_sequential(functional)
    with pytest.raises(ArgumentError, match="is not built"):
        to_torch_sequential(sj.Sequential([L.Dense(2)]))
