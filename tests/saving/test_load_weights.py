"""load_weights matches by name (or by the saved order on request), never swaps weights, and
checks everything before assigning anything; load_model resolves custom losses through
custom_objects and leaves the process's random state alone until training resumes."""

import json
import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.io import FileFormatError, read_safetensors, write_safetensors


def mixed(first, second):
    """Two Dense layers with the same weight shapes, the second in float64: the writer puts
    float64 tensors first, so the file's order is not the model's."""
    return sj.Sequential([layers.Input((4,)), layers.Dense(4, name=first),
                          layers.Dense(4, name=second, dtype="float64")])


def randomize(model, rng):
    for w in model.weights:
        w.assign(rng.standard_normal(w.shape))


def test_other_names_are_refused_and_by_order_pairs_in_the_saved_order(tmp_path, rng):
    source, target = mixed("a", "b"), mixed("c", "d")
    randomize(source, rng)
    before = target.get_weights()
    path = tmp_path / "w.safetensors"
    source.save_weights(path)
    with pytest.raises(FileFormatError) as info:
        target.load_weights(path)
    assert str(path) in str(info.value) and "'a/kernel'" in str(info.value)
    for old, now in zip(before, target.get_weights()):  # refused: nothing assigned
        np.testing.assert_array_equal(old, now)
    target.load_weights(path, by_name=False)
    for saved, loaded in zip(source.weights, target.weights):  # a -> c, b -> d: not swapped
        np.testing.assert_array_equal(saved.data.astype(loaded.dtype), loaded.data)


def test_second_copy_with_automatic_names_loads_by_topology(tmp_path, rng):
    source, target = mixed("dense", "dense_1"), mixed("dense_7", "dense_8")
    randomize(source, rng)
    source.save_weights(tmp_path / "w.safetensors")
    target.load_weights(tmp_path / "w.safetensors")
    for saved, loaded in zip(source.weights, target.weights):
        np.testing.assert_array_equal(saved.data, loaded.data)


def test_by_order_without_a_recorded_order_is_refused_for_mixed_sizes(tmp_path):
    path = tmp_path / "w.safetensors"
    mixed("a", "b").save_weights(path)
    tensors, metadata = read_safetensors(path)
    del metadata["weight_names"]  # as files written before the order was recorded
    write_safetensors(path, tensors, metadata)
    with pytest.raises(FileFormatError, match="order") as info:
        mixed("c", "d").load_weights(path, by_name=False)
    assert str(path) in str(info.value)


def test_shape_mismatch_refused_or_skipped_with_a_warning(tmp_path, rng):
    def model(units):
        return sj.Sequential([layers.Input((3,)), layers.Dense(5, name="h"),
                              layers.Dense(units, name="out")])

    source, target = model(2), model(6)
    randomize(source, rng)
    path = tmp_path / "w.safetensors"
    source.save_weights(path)
    with pytest.raises(FileFormatError, match="'out/kernel'") as info:
        target.load_weights(path)
    assert str(path) in str(info.value) and "skip_mismatch" in str(info.value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target.load_weights(path, skip_mismatch=True)
    skipped = {w for w in ("out/kernel", "out/bias") if any(w in str(c.message) for c in caught)}
    assert skipped == {"out/kernel", "out/bias"}
    np.testing.assert_array_equal(target.get_layer("h").kernel.data,
                                  source.get_layer("h").kernel.data)


def test_load_weights_checks_values(tmp_path):
    model = mixed("a", "b")
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    tensors, metadata = read_safetensors(path)
    tensors["a/bias"] = np.array([0, np.nan, 0, 0], np.float32)
    write_safetensors(path, tensors, metadata)
    with pytest.raises(FileFormatError, match="'a/bias'.*NaN"):
        model.load_weights(path)
    model.load_weights(path, check_values=False)
    assert np.isnan(model.get_layer("a").bias.data[1])


# ----- issue 12, item 7 --------------------------------------------------------------------
class HalfSquared(sj.losses.Loss):
    def call(self, y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean(axis=-1) * 0.5


def test_custom_loss_class_resolves_through_custom_objects(tmp_path, rng):
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss=HalfSquared())
    path = tmp_path / "m.safetensors"
    model.save(path)
    with pytest.raises(FileFormatError, match="HalfSquared") as info:
        sj.load_model(path)
    assert str(path) in str(info.value) and "compile_config" in str(info.value)
    loaded = sj.load_model(path, custom_objects={"HalfSquared": HalfSquared})
    assert type(loaded.loss) is HalfSquared
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0),
                               rtol=1e-6)


def test_load_model_leaves_the_random_state_alone_until_fit_resumes(tmp_path):
    x = np.ones((8, 3), np.float32)
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    sj.utils.set_seed(1)
    model.fit(x, np.zeros((8, 2)), verbose=0)
    saved_state = json.dumps(sj.utils.get_rng_state())
    model.save(tmp_path / "m.safetensors")
    sj.utils.set_seed(2)
    host_state = json.dumps(sj.utils.get_rng_state())
    loaded = sj.load_model(tmp_path / "m.safetensors")
    assert json.dumps(sj.utils.get_rng_state()) == host_state  # untouched by the load
    loaded.fit(x, np.zeros((8, 2)), epochs=1, verbose=0, shuffle=False)  # not a resume
    assert json.dumps(sj.utils.get_rng_state()) == host_state
    restored = []
    real = sj.utils.set_rng_state
    sj.utils.set_rng_state = lambda state: restored.append(json.dumps(state)) or real(state)
    try:
        loaded.fit(x, np.zeros((8, 2)), epochs=2, verbose=0, shuffle=False, initial_epoch=1)
        assert restored == []  # the first fit after the load was not a resume: state forgotten
        resumed = sj.load_model(tmp_path / "m.safetensors")
        resumed.fit(x, np.zeros((8, 2)), epochs=2, verbose=0, shuffle=False,
                    initial_epoch=resumed.completed_epochs)
    finally:
        sj.utils.set_rng_state = real
    assert restored == [saved_state]
