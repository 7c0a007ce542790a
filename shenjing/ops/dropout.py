"""Inverted dropout: y = x * mask / (1 - rate) while training, the identity otherwise.

Randomness comes from a ``np.random.Generator``: one passed as ``rng``, a fresh one from
``seed``, or shenjing's shared generator, which ``shenjing.utils.set_seed`` reseeds.
"""

import numbers

import numpy as np

from .. import utils
from ..errors import ArgumentError, ArgumentTypeError
from ..tensor import Op, as_tensor


class Dropout(Op):
    """y = x * mask, mask = keep / (1 - rate) with keep ~ Bernoulli(1 - rate); gx = gy * mask."""

    name = "dropout"

    def __init__(self, mask):
        self.mask = mask

    def forward(self, x):
        # x (...) , mask broadcastable to x -> y (...)
        return x * self.mask

    def backward(self, gy):
        # gy (...) -> gx (...)
        return gy * self.mask


def _noise_shape(noise_shape, shape):
    """Keras rule: None entries take the input's size; each entry is 1 or the input's size."""
    if noise_shape is None:
        return shape
    noise = tuple(noise_shape)
    if len(noise) != len(shape):
        raise ArgumentError(
            f"dropout: noise_shape must have one entry per input axis ({len(shape)}), got "
            f"{noise_shape} for input shape {shape}."
        )
    noise = tuple(n if m is None else m for m, n in zip(noise, shape))
    if any(m not in (1, n) for m, n in zip(noise, shape)):
        raise ArgumentError(
            f"dropout: each noise_shape entry must be 1 or the input's size, got {noise_shape} "
            f"for input shape {shape}."
        )
    return noise


def dropout(x, rate, training: bool = False, noise_shape=None, seed=None, rng=None):
    """Inverted dropout: zero each value with probability rate, scale the rest by 1/(1 - rate).

    Identity (x itself) when not training or rate == 0. Args: rate in [0, 1); noise_shape
    (Keras): the mask's shape, broadcast over axes of size 1, e.g. (N, 1, 1, C); seed (int, a
    fresh generator per call) or rng (a np.random.Generator); default: shenjing's shared one.
    """
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
        raise ArgumentError(f"dropout: rate must be a number in [0, 1), got {rate!r}.")
    if seed is not None and rng is not None:
        raise ArgumentError("dropout: pass seed or rng, not both.")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ArgumentTypeError(
            f"dropout: rng must be a np.random.Generator, got {type(rng).__name__}.")
    x = as_tensor(x)
    shape = _noise_shape(noise_shape, x.shape)
    if not training or rate == 0:
        return x
    if rng is None:
        rng = utils.get_rng() if seed is None else np.random.default_rng(seed)
    draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    keep = rng.random(shape, dtype=draw_dtype) >= rate  # P(keep) = 1 - rate
    scale = np.asarray(1.0 / (1.0 - rate), dtype=x.dtype)
    return Dropout(keep * scale)(x)
