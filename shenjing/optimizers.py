"""Optimizers with Keras 3's names, defaults and formulas: SGD, Adam, AdamW, RMSprop, Adagrad
(and, from optimizers_more.py, Nadam, Adamax, Adadelta, Lion).

One step (``apply``) clips the gradients, applies decoupled weight decay, then updates each
variable's ``.data`` in place (models hold references to those arrays). Per-variable slots
(``momentum``, ``velocity``, ...) are made on a variable's first update and exported by name in
``get_state()`` as ``"<variable name>/<slot>"``, so a checkpoint resumes bit for bit.
Arithmetic runs in the variables' dtype: hyper-parameters are Python floats, which NumPy 2 never
lets promote a float32 array.
"""

from __future__ import annotations

import math
import threading
import warnings

import numpy as np

from . import arguments, schedules
from .distribution import context as _distribution
from .errors import ArgumentError, ArgumentTypeError
from .ops import parallel
from .schedules import _number
from .tensor import Tensor
from .variable import Variable

# Arguments of Keras 3 optimizers that shenjing lacks; a Keras config loads if they hold these.
_KERAS_ONLY_DEFAULTS = {
    "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    "loss_scale_factor": None, "gradient_accumulation_steps": None,
}


class Optimizer:
    """Base class: gradient clipping, weight decay, learning rate, slots, state and config.

    Per step: grads clipped (clipnorm: each g *= clipnorm / max(||g||, clipnorm);
    global_clipnorm: all g *= global_clipnorm / max(||all g||, global_clipnorm); clipvalue:
    each entry to [-clipvalue, clipvalue]), then var -= lr * weight_decay * var, then the update.
    Args: learning_rate (float, or a callable of ``iterations`` such as a LearningRateSchedule);
    weight_decay; clipnorm, clipvalue, global_clipnorm (at most one); name.
    """

    def __init__(
        self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
        global_clipnorm=None, name=None, **kwargs,
    ):
        owner = type(self).__name__
        if kwargs:  # Keras 3's wording
            raise ArgumentError(f"{owner}: Argument(s) not recognized: {kwargs}")
        if name is not None and not isinstance(name, str):
            raise ArgumentTypeError(f"{owner}: expected name to be a string, got {name!r}.")
        self.name = name or owner.lower()
        self.iterations = 0  # completed update steps
        self._learning_rate = None
        # NOTE: 0 is taken, as Keras takes it (a frozen run that only logs losses; a warm-up
        # schedule that starts from 0); negative, NaN and inf rates are refused
        self.learning_rate = learning_rate
        if weight_decay is not None:
            weight_decay = self._arg("weight_decay", weight_decay, low=0)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        clips = {k: v for k, v in clips.items() if v is not None}
        given = {k: self._arg(k, v, low=0, low_open=True) for k, v in clips.items()}
        if len(given) > 1:
            raise ArgumentError(
                f"{type(self).__name__}: expected at most one of clipnorm, clipvalue and "
                f"global_clipnorm, got {', '.join(f'{k}={v!r}' for k, v in given.items())}."
            )
        self.weight_decay = weight_decay
        self.clipnorm, self.clipvalue = given.get("clipnorm"), given.get("clipvalue")
        self.global_clipnorm = given.get("global_clipnorm")
        self._slot_names: tuple[str, ...] = ()  # set by subclasses
        self._slot_init: dict[str, float] = {}  # slot -> initial value (default 0)
        self._slots: dict[int, tuple[Tensor, dict[str, np.ndarray]]] = {}  # id(var) -> var, slots
        self._scratch: dict = {}  # (dtype, thread) -> one flat work buffer
        self._wd_exclude_ids: set[int] = set()
        self._wd_exclude_names: tuple[str, ...] = ()

    def _arg(self, arg, value, **interval) -> float:
        """A hyper-parameter as a float, checked to lie in ``interval`` (see ``_number``):
        ArgumentTypeError if it is not a number, ArgumentError if it lies outside."""
        try:
            number = float(_number(type(self).__name__, arg, value, **interval))
        except ValueError as error:
            kind = ArgumentError if arguments.is_number(value) else ArgumentTypeError
            raise kind(str(error)) from None
        if not math.isfinite(number):
            raise ArgumentError(f"{type(self).__name__}: expected {arg} to be a finite number, "
                                f"got {value!r}.")
        return number

    def _flag(self, arg, value) -> bool:
        """True or False (NumPy's too); a string or int is refused, not taken as truthy."""
        return arguments.boolean(value, arg, type(self).__name__)

    # ----- learning rate -----------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The rate of the next step (a schedule is evaluated at ``iterations``)."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if isinstance(value, dict):
            value = arguments.lookup(schedules.deserialize, value, "learning_rate",
                                     type(self).__name__)
        if callable(value):
            self._learning_rate = value
            return
        if callable(self._learning_rate):  # as Keras: a schedule is not overwritten by a float
            raise ArgumentTypeError(
                f"{type(self).__name__}: the learning rate is a schedule, so it cannot be set to "
                f"{value!r}; create the optimizer with a float learning rate instead."
            )
        self._learning_rate = self._arg("learning_rate", value, low=0)

    # ----- the update --------------------------------------------------------------------
    def apply(self, grads_or_variables, trainable_variables=None) -> None:
        """One update in place, in Keras's form ``apply(grads, trainable_variables)`` or ours,
        ``apply(variables, grads=None)`` (grads default to each variable's ``.grad``).

        Variables whose gradient is None are skipped, with Keras's warning naming them (once
        until the next fit); ``iterations`` grows by one.
        """
        variables, grads = self._variables_and_grads(grads_or_variables, trainable_variables)
        if not variables:
            return
        if len(grads) != len(variables):
            raise ArgumentError(
                f"{type(self).__name__}: expected one gradient per variable, got "
                f"{len(grads)} gradients for {len(variables)} variables."
            )
        pairs = [(v, self._check_grad(v, g)) for v, g in zip(variables, grads) if g is not None]
        if not pairs:
            raise ArgumentError(
                f"{type(self).__name__}: no gradient for any of the {len(variables)} variables "
                "(was backward() called?)."
            )
        if len(pairs) < len(variables) and not getattr(self, "_warned_missing", False):
            self._warned_missing = True
            missing = [getattr(v, "name", "?") for v, g in zip(variables, grads) if g is None]
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the "
                          "loss. If using `model.compile()`, did you forget to provide a `loss` "
                          "argument?", stacklevel=3)
        variables, grads = [v for v, _ in pairs], [g for _, g in pairs]
        if _distribution.in_step():  # the gradients of the global batch (DataParallel)
            grads = _distribution.active().reduce_gradients(grads)
        grads = self._clip(grads)
        lr = self.learning_rate
        if self.weight_decay:
            keep = 1.0 - lr * self.weight_decay
            for v in variables:
                if self._use_weight_decay(v):
                    np.multiply(v.data, keep, out=v.data)
        for v, g in zip(variables, grads):
            self._update_rows(v.data, g, self._slots_of(v), lr)
        self.iterations += 1

    # True: _update works element by element, so the rows of a large variable may be updated
    # in parts on the threads (a subclass with a non-elementwise update leaves it False)
    elementwise = False

    def _update_rows(self, var, g, slots, lr) -> None:
        elements = var.size * (2 + len(slots))  # var, g, slots: what the passes walk
        if not (self.elementwise and var.ndim and parallel.worth_splitting(len(var), elements)):
            self._update(var, g, slots, lr)
            return
        parallel.over_batch(
            lambda s: self._update(var[s], g[s], {k: a[s] for k, a in slots.items()}, lr),
            len(var), elements)

    @staticmethod
    def _variables_and_grads(first, second):
        """(variables, grads) from either argument order: Keras's (grads, variables) when the
        second holds the Variables, else ours (variables, grads or None for each .grad)."""
        first = list(first)
        if second is not None:
            second = list(second)
            if all(isinstance(v, Variable) for v in second) and not (
                    first and all(isinstance(v, Variable) for v in first)):
                return second, first
            return first, second
        if first and not any(isinstance(v, Tensor) for v in first):
            raise ArgumentError("apply(grads): pass the variables too, as apply(grads, "
                                "trainable_variables) (the optimizer keeps no list of its own).")
        return first, [v.grad for v in first]

    def apply_gradients(self, grads_and_vars) -> int:
        """Keras spelling: ``apply_gradients(zip(grads, variables))``; returns iterations."""
        grads, variables = zip(*grads_and_vars)
        self.apply(list(grads), list(variables))
        return self.iterations

    def _update(self, var, g, slots, lr) -> None:
        """Update ``var`` (ndarray) in place with gradient ``g``, ``slots`` and rate ``lr``."""
        raise NotImplementedError

    def _check_grad(self, variable, g) -> np.ndarray:
        g = g.data if isinstance(g, Tensor) else np.asarray(g)
        if g.shape != variable.shape:
            raise ArgumentError(
                f"{type(self).__name__}: gradient for '{getattr(variable, 'name', '?')}' has "
                f"shape {g.shape}, expected the variable's shape {variable.shape}."
            )
        return g if g.dtype == variable.dtype else g.astype(variable.dtype)

    def _clip(self, grads) -> list[np.ndarray]:
        if self.clipnorm is not None:
            out = []
            for g in grads:
                norm = math.sqrt(float(np.vdot(g, g)))
                out.append(g * (self.clipnorm / norm) if norm > self.clipnorm else g)
            return out
        if self.global_clipnorm is not None:
            norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
            if not math.isfinite(norm):  # as Keras: an inf or NaN norm makes every gradient NaN
                return [g * math.nan for g in grads]
            if norm > self.global_clipnorm:
                return [g * (self.global_clipnorm / norm) for g in grads]
            return grads
        if self.clipvalue is not None:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Skip weight decay for these variables and for names containing any of var_names
        (plain substrings; Keras reads them as regular expressions)."""
        self._wd_exclude_ids = {id(v) for v in var_list or ()}
        self._wd_exclude_names = tuple(var_names or ())

    def _use_weight_decay(self, variable) -> bool:
        name = getattr(variable, "name", "") or ""
        return id(variable) not in self._wd_exclude_ids and not any(
            s in name for s in self._wd_exclude_names
        )

    def _slots_of(self, variable) -> dict[str, np.ndarray]:
        entry = self._slots.get(id(variable))  # the entry holds the variable: its id stays unique
        if entry is None:
            init = self._slot_init
            slots = {s: np.full_like(variable.data, init.get(s, 0.0)) for s in self._slot_names}
            entry = self._slots[id(variable)] = (variable, slots)
        return entry[1]

    def _buffer(self, like: np.ndarray) -> np.ndarray:
        """A work array shaped like ``like``, a view of one reusable flat buffer per dtype and
        thread (see _update_rows)."""
        key = (like.dtype, threading.get_ident())
        buf = self._scratch.get(key)
        if buf is None or buf.size < like.size:
            buf = self._scratch[key] = np.empty(like.size, like.dtype)
        return buf[: like.size].reshape(like.shape)

    # ----- state and config --------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of ``iterations`` and every slot, keyed ``"<variable name>/<slot>"``."""
        state = {"iterations": np.array(self.iterations, dtype=np.int64)}
        for variable, slots in self._slots.values():
            name = getattr(variable, "name", None)
            for slot, value in slots.items():
                key = f"{name}/{slot}"
                if name is None or key in state:
                    raise ArgumentError(
                        f"{type(self).__name__}: cannot export the state: the updated variables "
                        f"need distinct names, got {name!r} unnamed or twice."
                    )
                state[key] = value.copy()
        return state

    def set_state(self, state: dict, variables) -> None:
        """Restore ``get_state()`` output for ``variables`` (matched by name), replacing slots."""
        owner, state = type(self).__name__, dict(state)
        if "iterations" not in state:
            raise ArgumentError(f"{owner}: the state has no 'iterations' entry.")
        iterations = np.asarray(state.pop("iterations"))
        if iterations.shape != () or iterations.dtype.kind not in "iu" or iterations < 0:
            raise ArgumentError(
                f"{owner}: expected iterations >= 0 (an integer), got {iterations}.")
        new_slots = {}
        for v in variables:
            keys = {s: f"{v.name}/{s}" for s in self._slot_names}
            found = {s: np.array(state.pop(k), v.dtype) for s, k in keys.items() if k in state}
            if not found:  # not updated before the state was saved
                continue
            for s, key in keys.items():
                if s not in found or found[s].shape != v.shape:
                    got = "nothing" if s not in found else f"shape {found[s].shape}"
                    raise ArgumentError(f"{owner}: expected state '{key}' of shape {v.shape}, "
                                        f"got {got}.")
            new_slots[id(v)] = (v, found)
        if state:
            raise ArgumentError(
                f"{owner}: state entries match no given variable: {sorted(state)}.")
        self._slots, self.iterations = new_slots, int(iterations)

    def get_config(self) -> dict:
        """JSON-able constructor arguments; a schedule becomes {"class_name", "config"}."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            raise ArgumentTypeError(
                f"{type(self).__name__}: cannot serialize the learning rate {lr!r}; use a "
                "shenjing.schedules.LearningRateSchedule instead of a plain callable."
            )
        return {
            "name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
        }

    @classmethod
    def from_config(cls, config: dict) -> Optimizer:
        """The optimizer ``get_config`` described (no state); Keras 3 configs load too."""
        config = dict(config)
        for key, default in _KERAS_ONLY_DEFAULTS.items():
            if key in config and config.pop(key) != default:
                raise ArgumentError(f"{cls.__name__}: {key} is not supported by shenjing.")
        return cls(**config)


class SGD(Optimizer):
    """Stochastic gradient descent, Keras form: m = momentum * m - lr * g; var += m
    (nesterov: var += momentum * m - lr * g); plain var -= lr * g when momentum is 0.
    """

    elementwise = True

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = self._arg("momentum", momentum, low=0, high=1)
        self.nesterov = self._flag("nesterov", nesterov)
        self._slot_names = ("momentum",) if self.momentum else ()

    def _update(self, var, g, slots, lr):
        t = self._buffer(var)
        np.multiply(g, lr, out=t)  # lr * g
        if not self.momentum:
            var -= t
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= t
        if self.nesterov:
            var -= t
            np.multiply(m, self.momentum, out=t)
            var += t
        else:
            var += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam, Keras form: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    var -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon), t = iterations + 1.

    amsgrad: v in the last step is replaced by its running maximum (slot ``velocity_hat``).
    torch.optim.Adam adds its eps after dividing sqrt(v) by sqrt(1 - beta_2^t): same for eps=0.
    """

    elementwise = True

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = self._arg("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = self._arg("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self.amsgrad = self._flag("amsgrad", amsgrad)
        self._slot_names = ("momentum", "velocity") + (("velocity_hat",) if amsgrad else ())

    def _update(self, var, g, slots, lr):
        step = self.iterations + 1
        alpha = lr * math.sqrt(1.0 - self.beta_2**step) / (1.0 - self.beta_1**step)
        m, v, t = slots["momentum"], slots["velocity"], self._buffer(var)
        np.subtract(g, m, out=t)
        t *= 1.0 - self.beta_1
        m += t
        np.multiply(g, g, out=t)
        t -= v
        t *= 1.0 - self.beta_2
        v += t
        if self.amsgrad:
            v = np.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
        np.sqrt(v, out=t)
        t += self.epsilon
        np.divide(m, t, out=t)
        t *= alpha
        var -= t

    def get_config(self):
        return {
            **super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
            "epsilon": self.epsilon, "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """Adam with decoupled weight decay (var -= lr * weight_decay * var before each update)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        if weight_decay is None:
            raise ArgumentTypeError("AdamW: expected weight_decay to be a number >= 0, got "
                                    "None.")
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop, Keras form: v = rho * v + (1 - rho) g^2; step = lr * g / sqrt(v + epsilon);
    mom = momentum * mom + step; var -= mom (or var -= step when momentum is 0).

    centered: the denominator is sqrt(v - a^2 + epsilon), a = rho * a + (1 - rho) g.
    """

    elementwise = True

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
        **kwargs,
    ):
        super().__init__(learning_rate, **kwargs)
        self.rho = self._arg("rho", rho, low=0, high=1, high_open=True)
        self.momentum = self._arg("momentum", momentum, low=0, high=1)
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self.centered = self._flag("centered", centered)
        self._slot_names = (
            ("velocity",) + (("momentum",) if self.momentum else ())
            + (("average_gradient",) if centered else ())
        )

    def _update(self, var, g, slots, lr):
        v, t = slots["velocity"], self._buffer(var)
        np.multiply(g, g, out=t)
        t -= v
        t *= 1.0 - self.rho
        v += t
        if self.centered:
            a = slots["average_gradient"]
            np.subtract(g, a, out=t)
            t *= 1.0 - self.rho
            a += t
            np.multiply(a, a, out=t)
            np.subtract(v, t, out=t)
            t += self.epsilon
        else:
            np.add(v, self.epsilon, out=t)
        np.sqrt(t, out=t)
        np.divide(g, t, out=t)
        t *= lr
        if self.momentum:
            mom = slots["momentum"]
            mom *= self.momentum
            mom += t
            var -= mom
        else:
            var -= t

    def get_config(self):
        return {
            **super().get_config(), "rho": self.rho, "momentum": self.momentum,
            "epsilon": self.epsilon, "centered": self.centered,
        }


class Adagrad(Optimizer):
    """Adagrad, Keras form: acc += g^2; var -= lr * g / sqrt(acc + epsilon).

    Args: initial_accumulator_value (acc's starting value).
    """

    elementwise = True

    def __init__(
        self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs
    ):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = self._arg(
            "initial_accumulator_value", initial_accumulator_value, low=0
        )
        self.epsilon = self._arg("epsilon", epsilon, low=0)
        self._slot_names = ("accumulator",)
        self._slot_init = {"accumulator": self.initial_accumulator_value}

    def _update(self, var, g, slots, lr):
        acc, t = slots["accumulator"], self._buffer(var)
        np.multiply(g, g, out=t)
        acc += t
        np.add(acc, self.epsilon, out=t)
        np.sqrt(t, out=t)
        np.divide(g, t, out=t)
        t *= lr
        var -= t

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon,
        }


# Nadam, Adamax, Adadelta and Lion live in optimizers_more.py, which imports the base above
from .optimizers_more import Adadelta, Adamax, Lion, Nadam

_OPTIMIZERS = {cls.__name__.lower(): cls for cls in (
    SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Lion)}


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able)."""
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict) -> Optimizer:
    """The optimizer ``serialize`` described; only the built-in classes are allowed."""
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = _OPTIMIZERS.get(str(name).lower())
    if cls is None:
        raise ArgumentError(
            f"optimizers.deserialize: unknown optimizer {name!r} in {config!r}; "
            f"known: {', '.join(_OPTIMIZERS)}."
        )
    return cls.from_config(config.get("config", {}))


def get(identifier) -> Optimizer:
    """An Optimizer passes through; a name ('adam', case-insensitive) gives the Keras defaults;
    a dict ``{"class_name", "config"}`` is deserialized."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    kind = ArgumentError if isinstance(identifier, str) else ArgumentTypeError
    raise kind(
        f"optimizers.get: unknown optimizer {identifier!r}; known: {', '.join(_OPTIMIZERS)} "
        "(or pass an Optimizer instance)."
    )


__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "Lion", "Nadam", "Optimizer",
           "RMSprop", "deserialize", "get", "serialize"]
