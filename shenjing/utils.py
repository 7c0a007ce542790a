"""Global random state: one seed makes a CPU run repeat bit for bit."""

import random

import numpy as np

from .data import PyDataset, pad_sequences, to_categorical  # noqa: F401 - keras.utils names
from .downloads import get_file  # noqa: F401 - keras.utils.get_file
from .errors import ArgumentError

_rng = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Seed every source of randomness shenjing uses (initializers, dropout, shuffling)."""
    global _rng
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArgumentError(f"set_seed: expected a non-negative integer, got {seed!r}.")
    _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)


def get_rng() -> np.random.Generator:
    """The generator shared by initializers, dropout and shuffling."""
    return _rng


def get_rng_state() -> dict:
    """The shared generator's state (JSON-able), for checkpoints that resume exactly."""
    return _rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    _rng.bit_generator.state = state


def set_random_seed(seed: int) -> None:
    """Keras's name: seed shenjing's own generator (initializers, dropout, shuffling) only.

    Unlike keras.utils.set_random_seed, Python's ``random`` and NumPy's global ``np.random``
    are left as they are: a library does not reseed its host's generators unasked (call
    ``random.seed`` / ``np.random.seed`` yourself if your own code draws from them).
    """
    global _rng
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ArgumentError(f"set_random_seed: expected a non-negative integer, got {seed!r}.")
    _rng = np.random.default_rng(int(seed))
