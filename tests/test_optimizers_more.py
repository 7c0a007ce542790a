"""Nadam, Adamax, Adadelta and Lion against Keras 3 (same formulas, float64 and float32),
their defaults and configs, and a save/load mid-training that resumes bit for bit."""

import json
import os

import numpy as np
import pytest

import shenjing as sj
from shenjing import Variable, layers, optimizers, utils
from shenjing.errors import ArgumentError
from tests.callbacks.common import regression_data

pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")

SHAPES = [(3, 4), (5,), (2, 3, 2)]
NAMES = ["Nadam", "Adamax", "Adadelta", "Lion"]
SLOTS = {"Nadam": ("momentum", "velocity"), "Adamax": ("momentum", "norm"),
         "Adadelta": ("accumulated_grad", "accumulated_delta_var"), "Lion": ("momentum",)}


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend in this process")
    return keras


def _problem(seed, steps=6, dtype=np.float64):
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return inits, grads


def _run_ours(opt, inits, grads):
    variables = [Variable(x.copy(), name=f"dense/w{i}") for i, x in enumerate(inits)]
    for gs in grads:
        opt.apply(variables, gs)
    return [v.data for v in variables]


def _run_keras(keras, opt, inits, grads, dtype):
    variables = [keras.Variable(x.copy(), dtype=dtype, name=f"w{i}") for i, x in enumerate(inits)]
    for gs in grads:
        opt.apply_gradients(zip([keras.ops.convert_to_tensor(g, dtype=dtype) for g in gs],
                                variables))
    return [keras.ops.convert_to_numpy(v.value) for v in variables]


CASES = [(name, kwargs) for name in NAMES for kwargs in (
    {}, {"weight_decay": 0.1}, {"clipnorm": 0.8}, {"clipvalue": 0.3}, {"global_clipnorm": 1.0},
)] + [
    ("Nadam", {"beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    ("Adamax", {"beta_1": 0.7, "beta_2": 0.5, "epsilon": 1e-3}),
    ("Adadelta", {"rho": 0.5, "epsilon": 1e-4, "learning_rate": 1.0}),
    ("Lion", {"beta_1": 0.5, "beta_2": 0.3}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=str)
def test_like_keras_float64(name, kwargs, keras):
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")  # Keras's learning rate and powers in float64 too
    try:
        inits, grads = _problem(1)
        kwargs = {"learning_rate": 0.05, **kwargs}
        ours = _run_ours(getattr(optimizers, name)(**kwargs), inits, grads)
        theirs = _run_keras(keras, getattr(keras.optimizers, name)(**kwargs), inits, grads,
                            "float64")
    finally:
        keras.config.set_floatx(previous)
    # NOTE: Keras rounds a clipping norm to float32 on the torch backend (see
    # tests/test_optimizers.py::test_norm_clipping_like_keras), hence 1e-6 there
    norm = "clipnorm" in kwargs or "global_clipnorm" in kwargs
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-6 if norm else 1e-10, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_like_keras_float32(name, keras):
    inits, grads = _problem(2, dtype=np.float32)
    ours = _run_ours(getattr(optimizers, name)(0.05, weight_decay=0.01), inits, grads)
    theirs = _run_keras(keras, getattr(keras.optimizers, name)(0.05, weight_decay=0.01), inits,
                        grads, "float32")
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_config_like_keras(name, keras):
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")  # else Keras's config holds lr rounded to float32
    try:
        theirs = getattr(keras.optimizers, name)().get_config()
    finally:
        keras.config.set_floatx(previous)
    ours = getattr(optimizers, name)().get_config()
    assert ours.pop("name") == name.lower()
    assert ours == {k: theirs[k] for k in ours}
    from_keras = getattr(optimizers, name).from_config(theirs)  # a Keras config loads
    assert from_keras.get_config() == {**ours, "name": theirs["name"]}
    assert type(optimizers.get(name.lower())) is getattr(optimizers, name)
    again = optimizers.deserialize(json.loads(json.dumps(optimizers.serialize(from_keras))))
    assert again.get_config() == from_keras.get_config()


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip_resumes_bit_for_bit(name):
    inits, grads = _problem(3, steps=7)
    opt = getattr(optimizers, name)(0.05)
    variables = [Variable(x.copy(), name=f"dense/w{i}") for i, x in enumerate(inits)]
    for gs in grads[:3]:
        opt.apply(variables, gs)
    state, checkpoint = opt.get_state(), [v.data.copy() for v in variables]
    assert set(state) == {"iterations"} | {f"dense/w{i}/{s}" for i in range(3)
                                           for s in SLOTS[name]}
    for gs in grads[3:]:
        opt.apply(variables, gs)
    resumed = type(opt).from_config(opt.get_config())
    restored = [Variable(x, name=v.name) for x, v in zip(checkpoint, variables)]
    resumed.set_state(state, restored)
    for gs in grads[3:]:
        resumed.apply(restored, gs)
    for a, b in zip(restored, variables, strict=True):
        np.testing.assert_array_equal(a.data, b.data)  # same operations in the same order


def test_nadam_failed_step_leaves_its_product_alone():
    opt = optimizers.Nadam(0.1)
    variable = Variable(np.ones(3), name="w")
    with pytest.raises(ArgumentError):
        opt.apply([variable], [np.ones(4)])
    assert opt._u_product == 1.0 and opt.iterations == 0


@pytest.mark.parametrize("make, match", [
    (lambda: optimizers.Lion(beta_1=0.0), r"Lion: expected beta_1 .* \(0, 1\], got 0.0"),
    (lambda: optimizers.Nadam(beta_2=1.0), r"Nadam: expected beta_2 .* \[0, 1\), got 1.0"),
    (lambda: optimizers.Adamax(epsilon=-1.0), r"Adamax: expected epsilon .* >= 0, got -1.0"),
    (lambda: optimizers.Adadelta(rho=1.5), r"Adadelta: expected rho .* \[0, 1\], got 1.5"),
])
def test_bad_hyper_parameters_are_refused(make, match):
    with pytest.raises(ArgumentError, match=match):
        make()


@pytest.mark.parametrize("name", NAMES)
def test_save_and_load_mid_training_resumes_bit_for_bit(name, tmp_path):
    x, y = regression_data(n=24)

    def model():
        utils.set_seed(0)
        m = sj.Sequential([layers.Input((3,)), layers.Dense(4, activation="tanh"),
                           layers.Dense(1)])
        m.compile(optimizer=getattr(optimizers, name)(0.02), loss="mse")
        return m

    straight = model()
    straight.fit(x, y, batch_size=8, epochs=3, verbose=0)
    first = model()
    first.fit(x, y, batch_size=8, epochs=2, verbose=0)
    first.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    assert type(loaded.optimizer) is getattr(optimizers, name)
    assert loaded.optimizer.iterations == 6
    loaded.fit(x, y, batch_size=8, epochs=3, initial_epoch=loaded.completed_epochs, verbose=0)
    for a, b in zip(loaded.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the file holds weights and slots exactly
