"""Learning-rate schedules with Keras 3's formulas: callables of the optimizer step.

Pass one as an optimizer's ``learning_rate``; it is called with ``optimizer.iterations`` (0 on
the first update) and returns a Python float. A schedule serializes to
``{"class_name": ..., "config": ...}`` and is rebuilt only from the classes listed in this module
(or classes handed over in ``custom_objects``), never from a name imported from a string.
"""

from __future__ import annotations

import bisect
import math
import numbers

from .errors import ArgumentError, ArgumentTypeError


def _number(owner, arg, value, low=-math.inf, high=math.inf, low_open=False, high_open=False):
    """``value`` checked to be a real number in the interval; int stays int, the rest is float.

    Raises ValueError naming ``owner``, ``arg``, the interval and the value received.
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        ok = (low < value if low_open else low <= value) and (
            value < high if high_open else value <= high
        )
    if not ok:
        if high == math.inf:
            expected = f"a number {'>' if low_open else '>='} {low:g}"
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            expected = f"a number in {left}{low:g}, {high:g}{right}"
        raise ArgumentError(f"{owner}: expected {arg} to be {expected}, got {value!r}.")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


class LearningRateSchedule:
    """Base class: ``__call__(step) -> float``, ``get_config()`` and ``from_config(config)``."""

    def __call__(self, step) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step).")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config().")

    @classmethod
    def from_config(cls, config: dict) -> LearningRateSchedule:
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_learning_rate * decay_rate ** (step / decay_steps).

    Args: staircase (floor the exponent: decay in discrete jumps every ``decay_steps``).
    """

    def __init__(
        self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
        name="ExponentialDecay",
    ):
        owner = type(self).__name__
        self.initial_learning_rate = _number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(owner, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_rate = _number(owner, "decay_rate", decay_rate, low=0, low_open=True)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """lr = values[0] while step <= boundaries[0], values[i] while step <= boundaries[i], ...,
    values[-1] once step > boundaries[-1].

    Args: boundaries (strictly increasing steps), values (one more than boundaries).
    """

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        owner = type(self).__name__
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ArgumentError(
                f"{owner}: expected one more value than boundaries, got {len(boundaries)} "
                f"boundaries and {len(values)} values."
            )
        self.boundaries = [_number(owner, "boundaries", b) for b in boundaries]
        self.values = [_number(owner, "values", v) for v in values]
        if any(b >= c for b, c in zip(self.boundaries, self.boundaries[1:])):
            raise ArgumentError(
                f"{owner}: expected strictly increasing boundaries, got {self.boundaries}."
            )
        self.name = name

    def __call__(self, step) -> float:
        # bisect_left: the number of boundaries strictly below step
        return float(self.values[bisect.bisect_left(self.boundaries, float(step))])

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """lr = (initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end.

    Args: cycle (instead of holding ``end_learning_rate``, stretch decay_steps to the first
    multiple of it not below step).
    """

    def __init__(
        self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
        cycle=False, name="PolynomialDecay",
    ):
        owner = type(self).__name__
        self.initial_learning_rate = _number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(owner, "decay_steps", decay_steps, low=0, low_open=True)
        self.end_learning_rate = _number(owner, "end_learning_rate", end_learning_rate)
        self.power = _number(owner, "power", power)
        self.cycle, self.name = bool(cycle), name

    def __call__(self, step) -> float:
        step, decay_steps = float(step), float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        delta = self.initial_learning_rate - self.end_learning_rate
        return delta * (1.0 - p) ** self.power + self.end_learning_rate

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate, "power": self.power,
            "cycle": self.cycle, "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """lr = initial_learning_rate / (1 + decay_rate * step / decay_steps).

    Args: staircase (floor step / decay_steps).
    """

    def __init__(
        self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
        name="InverseTimeDecay",
    ):
        owner = type(self).__name__
        self.initial_learning_rate = _number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(owner, "decay_steps", decay_steps, low=0, low_open=True)
        self.decay_rate = _number(owner, "decay_rate", decay_rate, low=0)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step) -> float:
        p = float(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Optional linear warmup, then cosine decay from the peak to alpha * peak:
    lr = peak * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha),
    s = min(step - warmup_steps, decay_steps).

    Args: alpha (final lr as a fraction of the peak); warmup_target (the peak reached linearly
    from initial_learning_rate over warmup_steps; None: no warmup, peak = initial_learning_rate).
    """

    def __init__(
        self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
        warmup_target=None, warmup_steps=0,
    ):
        owner = type(self).__name__
        self.initial_learning_rate = _number(owner, "initial_learning_rate", initial_learning_rate)
        self.decay_steps = _number(owner, "decay_steps", decay_steps, low=0, low_open=True)
        self.alpha = _number(owner, "alpha", alpha)
        self.warmup_steps = _number(owner, "warmup_steps", warmup_steps, low=0)
        if warmup_target is not None:
            warmup_target = _number(owner, "warmup_target", warmup_target)
        self.warmup_target, self.name = warmup_target, name

    def __call__(self, step) -> float:
        step = float(step)
        peak = self.initial_learning_rate
        if self.warmup_target is not None:
            if step < self.warmup_steps:
                delta = self.warmup_target - self.initial_learning_rate
                return delta * (step / self.warmup_steps) + self.initial_learning_rate
            step, peak = step - self.warmup_steps, self.warmup_target
        step = min(step, self.decay_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * (step / self.decay_steps)))
        return peak * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay from the initial lr to alpha * it over first_decay_steps, then restarts
    (SGDR): period i lasts first_decay_steps * t_mul**i and starts at initial * m_mul**i.
    """

    def __init__(
        self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
        name="SGDRDecay",
    ):
        owner = type(self).__name__
        self.initial_learning_rate = _number(owner, "initial_learning_rate", initial_learning_rate)
        self.first_decay_steps = _number(
            owner, "first_decay_steps", first_decay_steps, low=0, low_open=True
        )
        self.t_mul = _number(owner, "t_mul", t_mul, low=0, low_open=True)
        self.m_mul = _number(owner, "m_mul", m_mul, low=0)
        self.alpha = _number(owner, "alpha", alpha)
        self.name = name

    def __call__(self, step) -> float:
        fraction = float(step) / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:  # periods grow geometrically: solve sum_{j<i} t_mul**j <= fraction for i
            t = float(self.t_mul)
            restart = math.floor(math.log(1.0 - fraction * (1.0 - t)) / math.log(t))
            fraction = (fraction - (1.0 - t**restart) / (1.0 - t)) / t**restart
        cosine = 0.5 * self.m_mul**restart * (1.0 + math.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
            "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name,
        }


# The allow-list for deserialization: nothing outside it is ever instantiated from a config.
_SCHEDULES = {
    cls.__name__: cls
    for cls in (
        ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay, InverseTimeDecay,
        CosineDecay, CosineDecayRestarts,
    )
}


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able)."""
    if not isinstance(schedule, LearningRateSchedule):
        raise ArgumentTypeError(
            f"schedules.serialize: expected a LearningRateSchedule, got {schedule!r}.")
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config: dict, custom_objects: dict | None = None) -> LearningRateSchedule:
    """The schedule that ``serialize`` described. Keras 3's serialized form loads as well.

    Args: custom_objects (extra ``{"ClassName": cls}`` allowed besides the built-in schedules).
    """
    known = {**_SCHEDULES, **(custom_objects or {})}
    if not isinstance(config, dict) or "class_name" not in config:
        raise ArgumentError(
            f"schedules.deserialize: expected a dict with 'class_name' and 'config', "
            f"got {config!r}."
        )
    cls = known.get(config["class_name"])
    if cls is None:
        raise ArgumentError(
            f"schedules.deserialize: unknown schedule {config['class_name']!r}; "
            f"known: {', '.join(sorted(known))}."
        )
    return cls.from_config(dict(config.get("config", {})))


def get(identifier) -> LearningRateSchedule:
    """A schedule instance passes through; a dict config is deserialized."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ArgumentError(
        f"schedules.get: expected a LearningRateSchedule or its config dict, "
        f"got {identifier!r}; known schedules: {', '.join(sorted(_SCHEDULES))}."
    )


__all__ = ["CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
           "LearningRateSchedule", "PiecewiseConstantDecay", "PolynomialDecay", "deserialize",
           "get", "serialize"]
