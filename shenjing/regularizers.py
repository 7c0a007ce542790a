"""Weight penalties added to the training loss: L1, L2 and L1L2 (Keras formulas)."""

from . import ops
from .errors import ArgumentError


class Regularizer:
    def __call__(self, weight):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """penalty = l1 * sum(|w|) + l2 * sum(w^2)."""

    def __init__(self, l1=0.0, l2=0.0):
        if l1 < 0 or l2 < 0:
            raise ArgumentError(f"L1L2: l1 and l2 must be >= 0, got l1={l1}, l2={l2}.")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, weight):
        penalty = 0.0
        if self.l1:
            penalty = ops.abs(weight).sum() * self.l1
        if self.l2:
            penalty = penalty + (weight * weight).sum() * self.l2
        return penalty

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """penalty = l1 * sum(|w|)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """penalty = l2 * sum(w^2)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


ALL = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """None, a Regularizer, a Keras name ('l1', 'l2', 'l1_l2') or a {"class_name", "config"}."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in ALL:
        return ALL[identifier["class_name"]].from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in ALL:
        return ALL[identifier]()
    raise ArgumentError(f"Unknown regularizer {identifier!r}; known: l1, l2, l1_l2.")


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
