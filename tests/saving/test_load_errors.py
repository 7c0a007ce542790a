"""load_model on files that do not match their config or carry malformed metadata: each is
refused with a FileFormatError naming the file and the entry, layer or weight, before anything
of the size the config claims is allocated."""

import json
import os
import threading
import tracemalloc

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentTypeError
from shenjing.io import FileFormatError, read_safetensors, write_safetensors
from shenjing.saving.registry import registered


def small():
    return sj.Sequential([layers.Input((4,)), layers.Dense(3, name="hidden"),
                          layers.BatchNormalization(name="norm"), layers.Dense(2, name="out")],
                         name="small")


@pytest.fixture
def saved(tmp_path):
    """(tensors, metadata) of a compiled small model saved with its optimizer state."""
    model = small()
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 4), np.float32), np.zeros((4, 2), np.float32), verbose=0)
    model.save(tmp_path / "m.safetensors")
    return read_safetensors(tmp_path / "m.safetensors")


def craft(tmp_path, saved, config=None, compile_config=None, training=None, tensors=None,
          **raw):
    """Write a variant of the saved file: changed JSON entries or tensors; raw strings as is."""
    tensors, metadata = dict(saved[0] if tensors is None else tensors), dict(saved[1])
    for key, change in (("shenjing_config", config), ("compile_config", compile_config),
                        ("training_state", training)):
        if change is not None:
            value = json.loads(metadata[key])
            change(value)
            metadata[key] = json.dumps(value)
    metadata.update(raw)
    path = tmp_path / "crafted.safetensors"
    write_safetensors(path, tensors, metadata)
    return path


def refused(path, *words, **kwargs):
    """load_model(path) raises FileFormatError whose message names the file and each word."""
    with pytest.raises(FileFormatError) as info:
        sj.load_model(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, (word, message)
    return message


def layer_config(config, name):
    return next(c["config"] for c in config["config"]["layers"] if c["config"]["name"] == name)


# ----- sizes from the config against the file's tensors ------------------------------------
@pytest.mark.parametrize("units", [8_000_000, 2**30])
def test_config_sizes_beyond_the_file_fail_before_allocating(tmp_path, saved, units):
    path = craft(tmp_path, saved, config=lambda c: layer_config(c, "out").update(units=units))
    assert os.path.getsize(path) < 8192
    tracemalloc.start()
    try:
        message = refused(path, "Dense", "'out'", str(units))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, (peak, message)  # a Dense of that size would take >= 96 MB


def test_weightless_shapes_are_bounded(tmp_path, saved):
    def absurd_input(config):
        config["config"]["layers"] = [
            {"class_name": "InputLayer", "config": {"shape": [2**40, 2**40], "name": "x"}},
            {"class_name": "Flatten", "config": {"name": "flat"}},
        ]

    path = craft(tmp_path, saved, config=absurd_input, tensors={})
    tracemalloc.start()
    try:
        refused(path, "shenjing_config", "'x'", "per sample")
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
    finally:
        tracemalloc.stop()


def test_weights_missing_or_extra_in_the_file(tmp_path, saved):
    tensors = {k: v for k, v in saved[0].items() if k != "norm/moving_variance"}
    refused(craft(tmp_path, saved, tensors=tensors), "layer 'norm'", "'norm/moving_variance'",
            "does not hold")
    tensors = {**saved[0], "stray/kernel": np.ones(3, np.float32)}
    refused(craft(tmp_path, saved, tensors=tensors), "weights", "'stray/kernel'")


def test_no_initializer_runs_for_loaded_weights(tmp_path, saved, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("an initializer ran while loading")

    for cls in vars(sj.initializers).values():
        if isinstance(cls, type) and "__call__" in vars(cls):
            monkeypatch.setattr(cls, "__call__", forbidden)
    with pytest.raises(AssertionError, match="an initializer ran"):
        small()  # the patch works: a new model runs them
    model = sj.load_model(craft(tmp_path, saved))
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.data, saved[0]["hidden/kernel"])


# ----- malformed metadata ------------------------------------------------------------------
def nested(depth):
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("text, words", [
    (nested(100_000), ["nested too deeply"]),
    (json.dumps({"class_name": "Sequential", "config": {"layers": json.loads(nested(150))}}),
     ["levels deep"]),
    ('{"class_name": "Sequential", "class_name": "Model", "config": {}}',
     ["duplicate key 'class_name'"]),
    ("{not json", ["not valid JSON"]),
], ids=["deep-recursion", "deep", "duplicate-key", "not-json"])
def test_malformed_config_json(tmp_path, saved, text, words):
    refused(craft(tmp_path, saved, shenjing_config=text), "shenjing_config", *words)


@pytest.mark.parametrize("change, words", [
    (lambda c: c.pop("loss"), ["'loss'"]),
    (lambda c: c.update(loss=[]), ["'loss'", "non-empty"]),
    (lambda c: c["optimizer"]["config"].update(nonsense=1), ["optimizer", "nonsense"]),
    (lambda c: c["optimizer"].update(class_name="os.system"), ["unknown optimizer"]),
    (lambda c: c["loss"].__setitem__(0, {"class_name": "Evil"}), ["Evil"]),
    (lambda c: c.update(loss_weights=["x"]), ["loss_weights"]),
    (lambda c: c.update(loss_weights=[10**400]), ["loss_weights", "finite numbers"]),
], ids=["no-loss", "empty-loss", "optimizer-argument", "optimizer-class", "loss-class",
        "loss-weights", "loss-weights-huge"])
def test_bad_compile_config(tmp_path, saved, change, words):
    refused(craft(tmp_path, saved, compile_config=change), "compile_config", *words)


@pytest.mark.parametrize("change, words", [
    (lambda s: s.update(epoch=-1), ["'epoch'"]),
    (lambda s: s.update(epoch="3"), ["'epoch'"]),
    (lambda s: s.update(epoch=True), ["'epoch'"]),
    (lambda s: s.update(rng_state={"bit_generator": "PCG64", "state": 3}), ["rng_state"]),
    (lambda s: s.update(rng_state=[1, 2]), ["rng_state"]),
], ids=["epoch-negative", "epoch-string", "epoch-bool", "rng-broken", "rng-list"])
def test_bad_training_state(tmp_path, saved, change, words):
    refused(craft(tmp_path, saved, training=change), "training_state", *words)


@pytest.mark.parametrize("iterations", [np.array(-1), np.array(2.5), np.array([1, 2])],
                         ids=["negative", "float", "vector"])
def test_bad_iterations(tmp_path, saved, iterations):
    tensors = {**saved[0], "optimizer/iterations": iterations}
    refused(craft(tmp_path, saved, tensors=tensors), "optimizer/iterations")


def test_unknown_layer_argument_names_the_layer_and_argument(tmp_path, saved):
    path = craft(tmp_path, saved, config=lambda c: layer_config(c, "hidden").update(colour=1))
    refused(path, "Sequential 'small' > Dense 'hidden'", "unknown argument 'colour'")


def functional_saved(tmp_path):
    inputs = layers.Input((3,), name="x")
    outputs = layers.Dense(2, name="d")(layers.Dense(3, name="h")(inputs))
    path = tmp_path / "f.safetensors"
    sj.Model(inputs, outputs, name="graph").save(path)
    return read_safetensors(path)


@pytest.mark.parametrize("change, words", [
    (lambda c: c["config"]["nodes"][2].update(layer=9), ["nodes[2]['layer']"]),
    (lambda c: c["config"]["nodes"][2]["inputs"].__setitem__(1, 7), ["nodes[2]['inputs']"]),
    (lambda c: c["config"]["outputs"][0].__setitem__(1, 99), ["'outputs'", "99"]),
    (lambda c: c["config"].update(nodes={}), ["'nodes'"]),
], ids=["layer-index", "input-node", "output-node", "nodes-not-list"])
def test_functional_node_references_out_of_range(tmp_path, change, words):
    saved = functional_saved(tmp_path)
    refused(craft(tmp_path, saved, config=change), "shenjing_config", "Model 'graph'", *words)


@pytest.mark.parametrize("wrapper, inner, words", [
    ("Bidirectional", {"class_name": "Dense", "config": {"units": 2}}, ["recurrent layer"]),
    ("TimeDistributed", {"class_name": "InputLayer", "config": {"shape": [2]}}, ["Input"]),
    ("TimeDistributed", "Dense", ["'layer' must be a layer entry"]),
], ids=["bidirectional-dense", "timedistributed-input", "not-an-entry"])
def test_wrappers_wrapping_the_wrong_kind(tmp_path, saved, wrapper, inner, words):
    def wrap(config):
        config["config"]["layers"][2] = {"class_name": wrapper,
                                         "config": {"name": "wrapped", "layer": inner}}

    refused(craft(tmp_path, saved, config=wrap), f"{wrapper} 'wrapped'", *words)


def test_bare_layer_is_not_on_the_allow_list(tmp_path, saved):
    assert "Layer" not in registered() and "Dense" in registered()
    path = craft(tmp_path, saved, config=lambda c: c["config"]["layers"][2].update(
        class_name="Layer"))
    refused(path, "shenjing_config", "'Layer' that is not registered")
    with pytest.raises(ArgumentTypeError, match="register"):
        sj.saving.register(len)


def test_custom_objects_must_hold_classes(tmp_path, saved):
    path = craft(tmp_path, saved, config=lambda c: c["config"]["layers"][2].update(
        class_name="Scale"))
    with pytest.raises(ArgumentTypeError, match=r"custom_objects\['Scale'\]"):
        sj.load_model(path, custom_objects={"Scale": lambda x: x})
    with pytest.raises(ArgumentTypeError, match=r"custom_objects\['Scale'\]"):
        sj.load_model(path, custom_objects={"Scale": layers.Layer})


# ----- weight values -----------------------------------------------------------------------
@pytest.mark.parametrize("name, value, words", [
    ("hidden/kernel", np.full((4, 3), np.nan, np.float32), ["NaN or infinite"]),
    ("out/bias", np.array([0.0, np.inf], np.float32), ["NaN or infinite"]),
    ("norm/moving_variance", np.array([1.0, -0.5, 1.0], np.float32), ["negative variances"]),
    ("hidden/kernel", np.ones((4, 3), np.complex64), ["complex"]),
    ("hidden/kernel", np.ones((4, 3), np.int32), ["integer"]),
    ("out/bias", np.ones(2, np.bool_), ["boolean"]),
], ids=["nan", "inf", "negative-variance", "complex", "int", "bool"])
def test_bad_weight_values_are_refused(tmp_path, saved, name, value, words):
    path = craft(tmp_path, saved, tensors={**saved[0], name: value})
    refused(path, f"weight {name!r}", *words)
    if value.dtype.kind == "f":  # the explicit opt-in loads them as they are
        model = sj.load_model(path, check_values=False)
        layer, weight = name.split("/")
        np.testing.assert_array_equal(getattr(model.get_layer(layer), weight).data, value)
    else:  # never cast, even when asked not to check values
        refused(path, f"weight {name!r}", check_values=False)


# ----- what the path names -----------------------------------------------------------------
def test_fifo_device_and_directory_fail_at_once(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    errors = {}

    def load(path):
        try:
            sj.load_model(path)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            errors[path] = error

    paths = [str(fifo), os.devnull, str(tmp_path)]
    thread = threading.Thread(target=lambda: [load(p) for p in paths], daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "load_model blocked on a named pipe"
    for path, kind in zip(paths, ["named pipe", "character device", "directory"]):
        assert isinstance(errors[path], FileFormatError), errors[path]
        assert path in str(errors[path]) and kind in str(errors[path])


# ----- the file's own entries --------------------------------------------------------------
@pytest.mark.parametrize("version, words", [
    ("99", ["format version 99, newer than the version 1"]),
    ("1.5", ["expected a version number"]),
    ("", ["expected a version number"]),
], ids=["newer", "not-digits", "empty"])
def test_format_version_newer_or_malformed(tmp_path, saved, version, words):
    path = craft(tmp_path, saved, format_version=version)
    refused(path, "format_version", *words)
    model = small()
    with pytest.raises(FileFormatError, match="format_version"):
        model.load_weights(path)


@pytest.mark.parametrize("names, words", [
    ("[1, 2]", ["list of the weight tensors' names", "[1, 2]"]),
    ('["hidden/kernel"]', ["each weight tensor once", "leaves out"]),
    (json.dumps(["hidden/kernel", "hidden/kernel", "hidden/bias", "norm/gamma", "norm/beta",
                 "norm/moving_mean", "norm/moving_variance", "out/kernel", "out/bias"]),
     ["repeats: 1"]),
], ids=["not-strings", "too-few", "repeated"])
def test_weight_names_must_name_the_files_tensors(tmp_path, saved, names, words):
    path = craft(tmp_path, saved, weight_names=names)
    refused(path, "weight_names", *words)
    with pytest.raises(FileFormatError, match="weight_names"):
        small().load_weights(path)


@pytest.mark.parametrize("change, words", [
    (lambda c: c.update(loss_weights=[1.0, 2.0, 3.0]), ["loss_weights", "3"]),
    (lambda c: c.update(loss=["mse", "mae"], loss_is_list=True), ["loss", "2", "1 output"]),
], ids=["loss-weights", "losses"])
def test_compile_config_counts_must_match_the_outputs(tmp_path, saved, change, words):
    refused(craft(tmp_path, saved, compile_config=change), "compile_config", *words)


@pytest.mark.parametrize("epoch", [10**30, 2**31], ids=["1e30", "2**31"])
def test_training_state_epoch_is_bounded(tmp_path, saved, epoch):
    refused(craft(tmp_path, saved, training=lambda s: s.update(epoch=epoch)), "training_state",
            "'epoch' must be an int from 0 to 2147483647")


def test_callback_tensors_without_a_training_state(tmp_path, saved):
    tensors = {**saved[0], "callbacks/Evil/x": np.ones(2, np.float32)}
    metadata = {k: v for k, v in saved[1].items() if k != "training_state"}
    path = tmp_path / "crafted.safetensors"
    write_safetensors(path, tensors, metadata)
    refused(path, "training_state", "'callbacks/Evil/x'", "no field")


@pytest.mark.parametrize("slot", ["hidden/kernel/velocity", "out/bias/velocity"])
def test_negative_second_moments_are_refused(tmp_path, saved, slot):
    name = "optimizer/" + slot
    value = saved[0][name].copy()
    value.flat[0] = -1.0
    path = craft(tmp_path, saved, tensors={**saved[0], name: value})
    refused(path, f"weight {name!r}", "negative values", "Adam")
    model = sj.load_model(path, check_values=False)  # the opt-in loads them as they are
    assert model.optimizer.get_state()[slot].flat[0] == -1.0


def test_first_moments_may_be_negative(tmp_path, saved):
    name = "optimizer/hidden/kernel/momentum"
    value = np.full_like(saved[0][name], -1.0)
    sj.load_model(craft(tmp_path, saved, tensors={**saved[0], name: value}))


@pytest.mark.parametrize("custom_objects, key", [
    ({5: layers.Dense}, r"custom_objects\[5\]: the keys are class names"),
    ({"Adam": print}, r"custom_objects\['Adam'\] must be a class"),
    ({"Dense": layers.Dense(2)}, r"custom_objects\['Dense'\] must be a class"),
], ids=["int-key", "function", "instance"])
def test_custom_objects_keys_are_names_and_values_classes(tmp_path, saved, custom_objects, key):
    with pytest.raises(ArgumentTypeError, match=key):
        sj.load_model(craft(tmp_path, saved), custom_objects=custom_objects)


def test_bad_regularizer_config_names_the_layer_and_argument(tmp_path, saved):
    path = craft(tmp_path, saved, config=lambda c: layer_config(c, "hidden").update(
        kernel_regularizer={"class_name": "L2", "config": {"l2": "x"}}))
    refused(path, "shenjing_config", "Dense 'hidden'", "kernel_regularizer")


# ----- functional graphs: node references by name --------------------------------------------
def _inputs_of(node):
    return lambda c: c["config"]["nodes"][node]["inputs"]


@pytest.mark.parametrize("change, words", [
    (lambda c: _inputs_of(2)(c).__setitem__(0, "nope"),
     ["nodes[2]['inputs']", "names layer 'nope'", "no layer of the config has that name"]),
    (lambda c: _inputs_of(2)(c).__setitem__(0, "d"),  # d's node fed by itself
     ["nodes[2]['inputs']", "names layer 'd'", "node 1 is a call of layer 'h'"]),
    (lambda c: c["config"]["nodes"][1].update(inputs=["d", 0, 0]),  # h fed by d, d by h
     ["nodes[1]['inputs']", "names layer 'd'", "node 0 is a call of layer 'x'"]),
    (lambda c: c["config"]["outputs"][0].__setitem__(0, "h"),
     ["'outputs'", "names layer 'h'", "node 2 is a call of layer 'd'"]),
    (lambda c: c["config"]["outputs"][0].__setitem__(2, 3),
     ["'outputs'", "takes output 3 of layer 'd', which has 1 output"]),
    (lambda c: _inputs_of(2)(c).__setitem__(2, 1),
     ["nodes[2]['inputs']", "takes output 1 of layer 'h'"]),
    (lambda c: _inputs_of(2)(c).__setitem__(2, 10**40), ["nodes[2]['inputs']", "output index"]),
], ids=["unknown-name", "self", "cycle", "output-name", "output-index", "input-index",
        "huge-index"])
def test_functional_node_references_name_earlier_layers(tmp_path, change, words):
    saved = functional_saved(tmp_path)
    refused(craft(tmp_path, saved, config=change), "shenjing_config", "Model 'graph'", *words)


def test_shared_layer_graph_still_loads(tmp_path):
    inputs = layers.Input((3,), name="x")
    shared = layers.Dense(3, name="s")
    model = sj.Model(inputs, shared(shared(inputs)), name="twice")  # node 2 takes s's node 1
    model.save(tmp_path / "t.safetensors")
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(sj.load_model(tmp_path / "t.safetensors").predict(x, verbose=0),
                                  model.predict(x, verbose=0))  # same weights, same operations
