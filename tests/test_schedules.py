"""Learning-rate schedules against keras.optimizers.schedules (float64) and their formulas."""

import json
import math
import os

import pytest

from shenjing import schedules

# Keras's torch backend calls np.array on its own tensors: noise, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")

STEPS = range(0, 301, 1)

CASES = [
    ("ExponentialDecay", (0.1, 7, 0.5), {}),
    ("ExponentialDecay", (0.1, 25, 0.9), {"staircase": True}),
    ("PiecewiseConstantDecay", ([10, 50, 120], [0.1, 0.05, 0.01, 0.001]), {}),
    ("PiecewiseConstantDecay", ([100], [1.0, 0.5]), {}),
    ("PolynomialDecay", (0.1, 120), {}),
    ("PolynomialDecay", (0.1, 70, 0.01), {"power": 0.5, "cycle": True}),
    ("InverseTimeDecay", (0.1, 10, 0.5), {}),
    ("InverseTimeDecay", (0.1, 30, 2.0), {"staircase": True}),
    ("CosineDecay", (0.1, 200), {}),
    ("CosineDecay", (0.1, 150), {"alpha": 0.1}),
    ("CosineDecay", (0.0, 100), {"alpha": 0.05, "warmup_target": 0.2, "warmup_steps": 40}),
    ("CosineDecay", (0.01, 100), {"warmup_target": 0.1, "warmup_steps": 0}),
    ("CosineDecayRestarts", (0.1, 20), {}),
    ("CosineDecayRestarts", (0.1, 30), {"t_mul": 1.0, "m_mul": 0.5, "alpha": 0.1}),
    ("CosineDecayRestarts", (0.1, 10), {"t_mul": 1.5, "m_mul": 0.8}),
]


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on the torch backend; float64 floatx so its schedules compute in float64."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield keras
    keras.config.set_floatx(previous)


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=str)
def test_like_keras(name, args, kwargs, keras):
    ours = getattr(schedules, name)(*args, **kwargs)
    theirs = getattr(keras.optimizers.schedules, name)(*args, **kwargs)
    for step in STEPS:
        value = ours(step)
        assert type(value) is float
        assert value == pytest.approx(float(theirs(step)), rel=1e-12, abs=1e-15), step


@pytest.mark.parametrize("name, args, kwargs", CASES, ids=str)
def test_config_round_trip(name, args, kwargs, keras):
    ours = getattr(schedules, name)(*args, **kwargs)
    config = json.loads(json.dumps(schedules.serialize(ours)))
    again = schedules.deserialize(config)
    assert type(again) is type(ours) and again.get_config() == ours.get_config()
    # Keras's own serialized form loads too
    theirs = getattr(keras.optimizers.schedules, name)(*args, **kwargs)
    from_keras = schedules.get(keras.optimizers.schedules.serialize(theirs))
    assert [from_keras(s) for s in STEPS[::7]] == [ours(s) for s in STEPS[::7]]


def test_formulas():
    assert schedules.ExponentialDecay(0.1, 10, 0.5)(20) == pytest.approx(0.025, rel=1e-15)
    assert schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)(19) == 0.05
    piecewise = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in (0, 10, 11, 20, 21, 1000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    assert schedules.InverseTimeDecay(0.1, 10, 0.5)(30) == pytest.approx(0.1 / 2.5, rel=1e-15)
    poly = schedules.PolynomialDecay(0.1, 10, 0.0, power=2.0)
    assert (poly(5), poly(10), poly(50)) == (pytest.approx(0.025, rel=1e-15), 0.0, 0.0)
    cosine = schedules.CosineDecay(0.0, 10, alpha=0.1, warmup_target=1.0, warmup_steps=4)
    assert cosine(2) == 0.5 and cosine(4) == 1.0 and cosine(9) == pytest.approx(0.55, rel=1e-15)
    assert cosine(14) == cosine(1000) == pytest.approx(0.1, rel=1e-15)
    restarts = schedules.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    # period 0 covers steps [0, 10), period 1 [10, 30) at half height, period 2 [30, 70)
    assert (restarts(0), restarts(10), restarts(20), restarts(30)) == pytest.approx(
        (1.0, 0.5, 0.25, 0.25), rel=1e-14
    )
    assert math.isclose(restarts(50), 0.25 * 0.5 * (1 + math.cos(math.pi * 0.5)), rel_tol=1e-14)


def test_get_and_registry():
    schedule = schedules.ExponentialDecay(0.1, 10, 0.5)
    assert schedules.get(schedule) is schedule

    class Halving(schedules.LearningRateSchedule):
        def __init__(self, rate):
            self.rate = rate

        def __call__(self, step):
            return self.rate / 2**step

        def get_config(self):
            return {"rate": self.rate}

    config = schedules.serialize(Halving(0.8))
    with pytest.raises(ValueError, match=r"unknown schedule 'Halving'; known: CosineDecay, "):
        schedules.deserialize(config)
    assert schedules.deserialize(config, custom_objects={"Halving": Halving})(3) == 0.1
    with pytest.raises(ValueError, match=r"schedules.get: expected a LearningRateSchedule or"):
        schedules.get("ExponentialDecay")
    with pytest.raises(ValueError, match=r"expected a dict with 'class_name' and 'config'"):
        schedules.deserialize({"config": {}})
    with pytest.raises(TypeError, match=r"serialize: expected a LearningRateSchedule"):
        schedules.serialize(lambda step: 0.1)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: schedules.ExponentialDecay(0.1, 0, 0.5),
         r"ExponentialDecay: expected decay_steps to be a number > 0, got 0"),
        (lambda: schedules.ExponentialDecay(0.1, 10, -0.5), r"expected decay_rate .* > 0"),
        (lambda: schedules.InverseTimeDecay(0.1, -1, 0.5), r"InverseTimeDecay: expected decay_s"),
        (lambda: schedules.PolynomialDecay("0.1", 10), r"expected initial_learning_rate .* '0.1'"),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_steps=-1), r"expected warmup_steps .* >="),
        (lambda: schedules.CosineDecayRestarts(0.1, 0), r"expected first_decay_steps .* > 0"),
        (lambda: schedules.PiecewiseConstantDecay([1, 2], [0.1, 0.2]),
         (r"PiecewiseConstantDecay: expected one more value than boundaries, got 2 boundaries "
          r"and 2 values")),
        (lambda: schedules.PiecewiseConstantDecay([5, 5], [0.1, 0.2, 0.3]),
         r"expected strictly increasing boundaries, got \[5, 5\]"),
    ],
)
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()
