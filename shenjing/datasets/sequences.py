"""Synthetic sequence tasks for recurrent networks: NumPy only, deterministic per seed.

adding_problem (long-range memory, regression), waveforms (recognise a wave's shape, four
classes) and copy_memory (recall symbols after a long blank delay). Inputs are channels-last
(N, T, F) float32, except copy_memory's symbol ids (one-hot them with
shenjing.data.to_categorical). `seed` is anything np.random.default_rng accepts.
"""

import numpy as np

from ..errors import ArgumentError

WAVEFORM_CLASSES = ("sine", "square", "sawtooth", "triangle")


def adding_problem(n, timesteps, seed=0):
    """The adding problem (Hochreiter & Schmidhuber 1997), in the form of Le et al. (2015).

    x[:, t, 0] ~ U[0, 1) and x[:, t, 1] is 0 but for two 1s, one at a position drawn uniformly
    from the first half t < T // 2, one from the second half t >= T // 2; y is the sum of the
    two marked values. Always predicting 1 scores MSE Var(u1 + u2) = 1/6 ~ 0.167 (see
    adding_problem_baseline_mse): a model has learnt the task only well below that.
    Args: n (samples, >= 1); timesteps (T >= 2); seed.
    Returns x float32 (n, T, 2), y float32 (n, 1), y in [0, 2).
    """
    _check_int("adding_problem", "n", n, 1)
    _check_int("adding_problem", "timesteps", timesteps, 2)
    rng = np.random.default_rng(seed)
    values = rng.random((n, timesteps), dtype=np.float32)
    half, rows = timesteps // 2, np.arange(n)
    first, second = rng.integers(0, half, n), rng.integers(half, timesteps, n)
    markers = np.zeros((n, timesteps), np.float32)
    markers[rows, first] = markers[rows, second] = 1
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y[:, None]


def adding_problem_baseline_mse(y):
    """MSE of always predicting 1.0 (the mean target) on adding-problem targets y: ~1/6."""
    y = np.asarray(y, np.float64)
    return float(np.mean((y - 1.0) ** 2))


def waveforms(n, timesteps, seed=0, noise=0.1):
    """Noisy periodic waves to classify by shape: 0 sine, 1 square, 2 sawtooth, 3 triangle.

    x[i, t] = a * wave((f * t + p) mod 1) + noise * N(0, 1), with a ~ U[0.5, 1.5], period
    1 / f ~ U[8, 24] steps and phase p ~ U[0, 1); each wave is zero-mean with peaks +-1.
    Classes are balanced (counts differ by at most 1) and shuffled. Use T >= 24 to see a
    whole period.
    Args: n (samples, >= 1); timesteps (T >= 2); seed; noise (std of the noise, >= 0).
    Returns x float32 (n, T, 1), y int64 (n,) indexing WAVEFORM_CLASSES.
    """
    _check_int("waveforms", "n", n, 1)
    _check_int("waveforms", "timesteps", timesteps, 2)
    if not np.isfinite(noise) or noise < 0:
        raise ArgumentError(f"waveforms: noise must be a finite float >= 0, got {noise!r}.")
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % len(WAVEFORM_CLASSES))
    amplitude = rng.uniform(0.5, 1.5, (n, 1))
    frequency = 1.0 / rng.uniform(8.0, 24.0, (n, 1))
    u = (frequency * np.arange(timesteps) + rng.random((n, 1))) % 1.0  # phase in cycles
    waves = np.stack(
        [np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0), 2 * u - 1, 1 - 4 * np.abs(u - 0.5)]
    )  # (classes, n, T)
    x = amplitude * waves[y, np.arange(n)] + noise * rng.standard_normal((n, timesteps))
    return x[..., None].astype(np.float32), y


def copy_memory(n, delay, length=10, symbols=8, seed=0):
    """The copy-memory task (Hochreiter & Schmidhuber 1997; form of Arjovsky et al. 2016).

    Input: `length` symbols drawn from 1..symbols, then delay - 1 blanks (0), the cue
    symbols + 1, and `length` blanks. Target: length + delay blanks, then the same symbols.
    Predicting blanks and then a uniform guess gives cross-entropy
    length * log(symbols) / (delay + 2 * length), the baseline to beat.
    Args: n (samples); delay (T >= 1); length (symbols to copy); symbols (alphabet size).
    Returns x, y int64 (n, delay + 2 * length), values in 0..symbols + 1 (symbols + 2 classes).
    """
    for arg, value in (("n", n), ("delay", delay), ("length", length), ("symbols", symbols)):
        _check_int("copy_memory", arg, value, 1)
    rng = np.random.default_rng(seed)
    data = rng.integers(1, symbols + 1, (n, length))
    x = np.zeros((n, delay + 2 * length), np.int64)
    y = np.zeros_like(x)
    x[:, :length] = data
    x[:, length + delay - 1] = symbols + 1
    y[:, length + delay :] = data
    return x, y


def _check_int(name, arg, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{name}: {arg} must be an int >= {minimum}, got {value!r}.")
