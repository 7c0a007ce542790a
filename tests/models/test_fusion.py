"""Fused conv blocks in predict/evaluate: which chains fuse, and their results: bit-identical to
the layers apart where both run the same products (see the comments), to float rounding where a
batch norm is folded into its conv."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.models import fusion


def _demo_cnn():
    return sj.Sequential([
        L.Input((28, 28, 1)), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(),
        L.Activation("relu"), L.MaxPooling2D(), L.Conv2D(16, 3, padding="same"),
        L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
        L.Dense(10),
    ])


def _unfused(model, x):
    """The layers one by one: with autograd on, Model.call never fuses."""
    return model(x, training=False).numpy()


def _assert_float32_rounding(fused, unfused):
    """A batch norm folded into its conv: the same values to float32 rounding."""
    np.testing.assert_allclose(fused, unfused, rtol=1e-4, atol=1e-5)


def _chains(model):
    return [[node.layer.name for node in chain]
            for chain in fusion.conv_chains(model._nodes, model.outputs).values()]


def _trained_a_little(model, rng):
    """Moving statistics and weights away from their initial values."""
    outputs = model.output_shape if isinstance(model.output_shape, list) else [
        model.output_shape]
    model.compile(optimizer="adam", loss=["mse"] * len(outputs))
    targets = [rng.standard_normal((16, *shape[1:])).astype("float32") for shape in outputs]
    model.fit(rng.standard_normal((16, *model.input_shape[1:])).astype("float32"),
              targets if len(targets) > 1 else targets[0], epochs=2, batch_size=8, verbose=0)
    return model


def test_demo_cnn_fuses_both_blocks_and_predicts_as_the_layers_apart(rng):
    model = _trained_a_little(_demo_cnn(), rng)
    names = [layer.name for layer in model.layers]
    assert _chains(model) == [names[0:4], names[4:8]]
    x = rng.standard_normal((70, 28, 28, 1)).astype("float32")
    fused, unfused = model.predict(x, batch_size=32, verbose=0), _unfused(model, x)
    _assert_float32_rounding(fused, unfused)
    assert not np.array_equal(fused, unfused)  # the batch norms were folded
    with sj.no_grad():  # the fused path is the one predict took
        assert isinstance(fusion.run_chain(
            fusion.conv_chains(model._nodes, model.outputs)[id(model._nodes[1])],
            sj.Tensor(x)), sj.Tensor)


def test_evaluate_gives_the_unfused_loss(rng):
    model = _trained_a_little(_demo_cnn(), rng)
    x = rng.standard_normal((20, 28, 28, 1)).astype("float32")
    y = rng.standard_normal((20, 10)).astype("float32")
    expected = float(np.mean((_unfused(model, x) - y) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-6)


def test_chains_stop_where_a_map_is_used_twice_or_is_an_output(rng):
    inputs = sj.Input((12, 12, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    a_bn = L.BatchNormalization(name="a_bn")(a)
    a_relu = L.Activation("relu", name="a_relu")(a_bn)  # the chain's end may feed two layers
    b = L.Conv2D(4, 3, padding="same", name="b")(a_relu)  # b feeds b_bn and the add
    b_bn = L.BatchNormalization(name="b_bn")(b)
    summed = L.Add(name="add")([b_bn, b, a_relu])
    c = L.Conv2D(4, 1, name="c")(summed)  # c is an output: nothing fuses after it
    c_relu = L.Activation("relu", name="c_relu")(c)
    d = L.Conv2D(4, 3, name="d")(summed)
    d_pool = L.MaxPooling2D(name="d_pool")(d)
    model = sj.Model(inputs, [c_relu, c, d_pool])
    assert sorted(_chains(model)) == [["a", "a_bn", "a_relu"], ["d", "d_pool"]]
    model = _trained_a_little(model, rng)
    x = rng.standard_normal((5, 12, 12, 3)).astype("float32")
    for fused, unfused in zip(model.predict(x, verbose=0), model(x, training=False)):
        _assert_float32_rounding(fused, unfused.numpy())  # a_bn is folded into a


@pytest.mark.parametrize("stack, expected", [
    # a conv with its own ReLU, then the pool
    ([L.Conv2D(4, 3, activation="relu", name="k"), L.MaxPooling2D(name="p")], [["k", "p"]]),
    # ReLU before batch norm: the chain ends at the ReLU (batch norm comes first in a chain)
    ([L.Conv2D(4, 3, name="k"), L.Activation("relu", name="r"), L.BatchNormalization(name="n")],
     [["k", "r"]]),
    # other activations, 'same' pools, channels-first batch norm and other convs do not fuse
    ([L.Conv2D(4, 3, activation="tanh", name="k"), L.MaxPooling2D(name="p")], []),
    ([L.Conv2D(4, 3, name="k"), L.Activation("sigmoid", name="s")], []),
    ([L.Conv2D(4, 3, name="k"), L.MaxPooling2D(padding="same", name="p")], []),
    ([L.Conv2D(4, 3, name="k"), L.BatchNormalization(axis=1, name="n")], []),
    ([L.Conv1D(4, 3, name="k"), L.MaxPooling1D(name="p")], []),
])
def test_which_layer_sequences_fuse(rng, stack, expected):
    rank = 1 if isinstance(stack[0], L.Conv1D) else 2
    model = sj.Sequential([L.Input((10, 3) if rank == 1 else (10, 10, 3)), *stack])
    assert _chains(model) == expected
    model = _trained_a_little(model, rng)
    x = rng.standard_normal((6, *model.input_shape[1:])).astype("float32")
    # bit for bit by construction: with 3 input channels the fused block and the unfused conv
    # run the same chunks of images through the same products (conv.infer); a bias or ReLU
    # moved after the pool gives the same values (rounding is monotone, so max commutes with it)
    np.testing.assert_array_equal(model.predict(x, verbose=0), _unfused(model, x))


def test_a_winograd_conv_runs_unfused(rng):
    """64 -> 64 channels, 3x3: the layer takes the Winograd path (faster than the fused block's
    im2col product), so the chain runs layer by layer."""
    model = sj.Sequential([L.Input((8, 8, 64)), L.Conv2D(64, 3, padding="same"),
                           L.BatchNormalization(), L.Activation("relu")])
    assert len(_chains(model)) == 1
    x = sj.Tensor(rng.standard_normal((2, 8, 8, 64)).astype("float32"))
    chain = next(iter(fusion.conv_chains(model._nodes, model.outputs).values()))
    assert fusion.run_chain(chain, x) is None
    # bit for bit by construction: predict runs the same layers (unfused) on the same batch
    np.testing.assert_array_equal(model.predict(x.numpy(), verbose=0), _unfused(model, x))


def test_training_and_gradients_never_fuse(rng, monkeypatch):
    model = _demo_cnn()
    calls = []
    monkeypatch.setattr(fusion, "run_chain", lambda *a: calls.append(a))
    x = rng.standard_normal((4, 28, 28, 1)).astype("float32")
    model(x, training=False)  # autograd on: layer by layer
    with sj.no_grad():
        model(x, training=True)  # training: batch statistics
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((4, 10), "float32"))
    assert calls == []
    model.predict(x, verbose=0)
    assert len(calls) == 2


def test_demo_cnn_pools_before_each_relu():
    model = _demo_cnn()
    swaps = fusion.relu_pool_swaps(model._nodes, model.outputs)
    assert [(n.layer.name, swaps[id(n)].layer.name) for n in model._nodes if id(n) in swaps] == [
        (model.layers[2].name, model.layers[3].name), (model.layers[6].name, model.layers[7].name)]


def test_pool_before_relu_trains_exactly_as_the_layers_apart(rng, monkeypatch):
    """Same losses and the same weights after two epochs, bit for bit."""
    x = rng.standard_normal((48, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, 48)
    runs = []
    for swap in (True, False):
        if not swap:
            monkeypatch.setattr(fusion, "relu_pool_swaps", lambda nodes, outputs: {})
        sj.utils.set_seed(3)
        model = _demo_cnn()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        history = model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
        runs.append((history.history["loss"], model.get_weights()))
    assert runs[0][0] == runs[1][0]
    for swapped, apart in zip(runs[0][1], runs[1][1]):
        np.testing.assert_array_equal(swapped, apart)


@pytest.mark.parametrize("pool", [L.MaxPooling2D(), L.MaxPooling2D(3, strides=2, padding="same")])
def test_pool_before_relu_gives_the_same_input_gradient_with_ties(rng, monkeypatch, pool):
    """Windows of equal values, zeros and all-negative windows: the gradient of the input
    is the same as with the ReLU first (the first maximum, zero where nothing is positive)."""
    x = rng.integers(-2, 3, (4, 8, 8, 3)).astype("float32")  # many ties, many zeros
    grads = []
    for swap in (True, False):
        if not swap:
            monkeypatch.setattr(fusion, "relu_pool_swaps", lambda nodes, outputs: {})
        model = sj.Sequential([L.Input((8, 8, 3)), L.Activation("relu"), pool])
        assert len(fusion.relu_pool_swaps(model._nodes, model.outputs)) == swap
        tx = sj.Tensor(x, requires_grad=True)
        out = model(tx, training=True)
        (out * sj.Tensor(np.arange(out.size, dtype="float32").reshape(out.shape))).sum() \
            .backward()
        grads.append((out.numpy(), tx.grad))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])


def test_a_layer_changed_after_planning_runs_as_it_now_is(rng):
    """Plans are made once; a layer changed afterwards (here the ReLU becomes a tanh) must not
    be run as it was."""
    model = _trained_a_little(_demo_cnn(), rng)
    x = rng.standard_normal((6, 28, 28, 1)).astype("float32")
    model.predict(x, verbose=0)  # plans made
    from shenjing.ops import activation as activations

    model.layers[2].activation = activations.tanh
    _assert_float32_rounding(model.predict(x, verbose=0), _unfused(model, x))
    by_hand = sj.Tensor(x)
    for layer in model.layers:  # training mode, one layer after the other
        by_hand = layer(by_hand, training=True)
    np.testing.assert_array_equal(model(x, training=True).numpy(), by_hand.numpy())
