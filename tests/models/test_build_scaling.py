"""Building a model costs O(layers): a long stack builds and loads in well under a second.

Sequential.add calls only the new layer and appends its node (it used to call every layer
again and re-scan the graph per add: 1,000 layers took ~25 s, a small saved file hung
load_model). The bounds are ~20x what this takes, so a slower machine passes.
"""

import time

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers


def long_stack(n):
    return sj.Sequential([layers.Input((4,)), *[layers.Flatten() for _ in range(n)]])


def test_2000_layers_build_and_load_fast(tmp_path):
    start = time.perf_counter()
    model = long_stack(2000)
    assert time.perf_counter() - start < 2.0
    assert len(model.layers) == 2000 and len(model._nodes) == 2001
    path = tmp_path / "deep.shenjing"
    model.save(path)
    start = time.perf_counter()
    loaded = sj.load_model(path)
    assert time.perf_counter() - start < 4.0
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    x = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), x)


def test_added_layers_give_the_graph_a_fresh_build_would():
    stack = [layers.Dense(3, name="a"), layers.Dense(2, name="b"), layers.Activation("relu", name="c")]
    model = sj.Sequential([layers.Input((4,), name="x"), *stack])
    fresh = sj.Model(model.inputs[0], model.outputs[0])
    assert [n.layer.name for n in model._nodes] == [n.layer.name for n in fresh._nodes]
    assert [la.name for la in model._layers] == ["x", "a", "b", "c"]
    assert model.output_shape == (None, 2) and model.outputs[0].node.layer is stack[2]
    assert model.pop() is stack[2]
    model.add(layers.Dense(5, name="d"))
    assert [n.layer.name for n in model._nodes] == ["x", "a", "b", "d"]
    assert model.output_shape == (None, 5)


def test_a_failed_add_fails_again_on_the_next_add_as_before():
    model = sj.Sequential([layers.Input((4, 4, 1))])
    with pytest.raises(ValueError, match="too small"):
        model.add(layers.Conv2D(2, 5, name="big"))
    with pytest.raises(ValueError, match="too small"):  # the failed layer stays in the stack
        model.add(layers.Flatten())
    assert [type(la).__name__ for la in model.layers] == ["Conv2D", "Flatten"]


def test_a_layer_named_as_the_input_is_refused():
    with pytest.raises(ValueError, match="two layers are named 'x'"):
        sj.Sequential([layers.Input((4,), name="x"), layers.Dense(2), layers.Dense(2, name="x")])
    with pytest.raises(ValueError, match="already in the model"):
        sj.Sequential([layers.Input((4,)), layers.Dense(2, name="d"), layers.Dense(2, name="d")])


def test_sequential_of_a_non_list_is_refused():
    from shenjing.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match="Sequential: layers must be a list"):
        sj.Sequential(5)
