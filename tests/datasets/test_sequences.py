import numpy as np
import pytest

from shenjing.datasets import sequences
from shenjing.datasets.sequences import (
    WAVEFORM_CLASSES,
    adding_problem,
    adding_problem_baseline_mse,
    copy_memory,
    waveforms,
)

# --- adding problem ------------------------------------------------------------------------------


@pytest.mark.parametrize("timesteps", [2, 7, 50])
def test_adding_problem_convention(timesteps):
    x, y = adding_problem(500, timesteps, seed=1)
    assert x.shape == (500, timesteps, 2) and y.shape == (500, 1)
    assert x.dtype == y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers).tolist()) <= {0.0, 1.0}
    half = timesteps // 2
    # exactly two markers: one at t < T // 2, one at t >= T // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1)
    for i in range(0, 500, 37):
        first, second = np.flatnonzero(markers[i])
        assert first < half <= second
        assert y[i, 0] == values[i, first] + values[i, second]
    np.testing.assert_allclose(y[:, 0], (values * markers).sum(axis=1), rtol=1e-6)


def test_adding_problem_marker_positions_cover_each_half():
    x, _ = adding_problem(4000, 10, seed=2)
    counts = x[..., 1].sum(axis=0)  # ~800 per position of the first half, ~800 in the second
    assert np.all(counts > 650) and np.all(counts < 950), counts


def test_adding_problem_baseline_is_one_sixth():
    _, y = adding_problem(10_000, 30, seed=0)
    mse = adding_problem_baseline_mse(y)
    assert mse == pytest.approx(np.mean((y.astype(np.float64) - 1) ** 2))
    assert abs(mse - 1 / 6) < 0.01, mse  # Var(u1 + u2) = 2/12; standard error ~0.002
    assert y.mean() == pytest.approx(1.0, abs=0.02)


def test_adding_problem_is_deterministic_per_seed():
    a, ya = adding_problem(20, 12, seed=5)
    b, yb = adding_problem(20, 12, seed=5)
    c, _ = adding_problem(20, 12, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)
    d, _ = adding_problem(20, 12, seed=np.random.default_rng(5))  # a Generator works too
    np.testing.assert_array_equal(a, d)


# --- waveforms -----------------------------------------------------------------------------------


def _shape_features(x):
    # amplitude-free summaries: sorted values and sorted first differences, each standardised
    x = x[..., 0].astype(np.float64)
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    d = np.diff(x, axis=1)
    return np.concatenate([np.sort(x, axis=1), np.sort(d / d.std(axis=1, keepdims=True), 1)], 1)


def test_waveforms_shapes_balance_and_determinism():
    x, y = waveforms(103, 48, seed=3)
    assert x.shape == (103, 48, 1) and x.dtype == np.float32
    assert y.shape == (103,) and y.dtype == np.int64
    assert sorted(np.bincount(y, minlength=4).tolist()) == [25, 26, 26, 26]
    assert np.any(np.diff(y) != 1)  # shuffled, not in class order
    x2, y2 = waveforms(103, 48, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(x, waveforms(103, 48, seed=4)[0])
    assert len(WAVEFORM_CLASSES) == 4


def test_waveforms_without_noise_have_their_class_shape():
    x, y = waveforms(200, 64, seed=0, noise=0.0)
    x = x[..., 0].astype(np.float64)
    amp = np.abs(x).max(axis=1)
    assert amp.min() > 0.45 and amp.max() <= 1.5
    for i in range(200):
        steps = np.diff(x[i])
        big = np.abs(steps) > amp[i]  # a jump of more than the amplitude
        if WAVEFORM_CLASSES[y[i]] == "square":  # two levels +-a
            np.testing.assert_allclose(np.unique(np.abs(x[i])), amp[i], rtol=1e-6)
        elif WAVEFORM_CLASSES[y[i]] == "sawtooth":  # equal rising steps, then a drop
            assert np.all(steps[big] < 0)
            np.testing.assert_allclose(steps[~big], steps[~big][0], rtol=1e-4, atol=1e-6)
        elif WAVEFORM_CLASSES[y[i]] == "triangle":  # steps of one size, up or down
            assert not big.any()
            assert np.abs(steps).max() <= 4 * amp[i] / 8 + 1e-6  # slope 4a per period >= 8
        else:  # sine: smooth, no jump, and not two-level
            assert not big.any() and len(np.unique(np.round(x[i], 4))) > 10


def test_waveform_classes_are_separable_by_nearest_centroid():
    x_tr, y_tr = waveforms(1200, 64, seed=0)
    x_te, y_te = waveforms(600, 64, seed=1)
    f_tr, f_te = _shape_features(x_tr), _shape_features(x_te)
    centroids = np.stack([f_tr[y_tr == c].mean(axis=0) for c in range(4)])
    pred = ((f_te[:, None, :] - centroids[None]) ** 2).sum(axis=-1).argmin(axis=1)
    accuracy = (pred == y_te).mean()
    assert accuracy > 0.85, accuracy  # chance is 0.25


# --- copy memory ---------------------------------------------------------------------------------


def test_copy_memory_layout():
    x, y = copy_memory(50, delay=30, length=10, symbols=8, seed=0)
    assert x.shape == y.shape == (50, 50) and x.dtype == y.dtype == np.int64
    data = x[:, :10]
    assert data.min() >= 1 and data.max() <= 8
    np.testing.assert_array_equal(x[:, 10:39], 0)  # delay - 1 blanks
    np.testing.assert_array_equal(x[:, 39], 9)  # the cue, symbols + 1
    np.testing.assert_array_equal(x[:, 40:], 0)
    np.testing.assert_array_equal(y[:, :40], 0)  # length + delay blanks
    np.testing.assert_array_equal(y[:, 40:], data)  # then the symbols, in order
    assert len(np.unique(data)) == 8
    x2, _ = copy_memory(50, delay=30, length=10, symbols=8, seed=0)
    np.testing.assert_array_equal(x, x2)
    x1, y1 = copy_memory(3, delay=1, length=2, symbols=3, seed=1)
    assert x1.shape == (3, 5) and np.all(x1[:, 2] == 4) and np.all(y1[:, 3:] == x1[:, :2])


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fn, args, kwargs, match",
    [(adding_problem, (0, 10), {}, "adding_problem: n must be an int >= 1, got 0"),
     (adding_problem, (5, 1), {}, "adding_problem: timesteps must be an int >= 2, got 1"),
     (adding_problem, (5, 10.0), {}, "timesteps must be an int >= 2, got 10.0"),
     (waveforms, (5, 1), {}, "waveforms: timesteps must be an int >= 2, got 1"),
     (waveforms, (True, 10), {}, "waveforms: n must be an int >= 1, got True"),
     (waveforms, (5, 10), {"noise": -0.1}, "noise must be a finite float >= 0, got -0.1"),
     (copy_memory, (5, 0), {}, "copy_memory: delay must be an int >= 1, got 0"),
     (copy_memory, (5, 3), {"symbols": 0}, "copy_memory: symbols must be an int >= 1, got 0")],
)  # fmt: skip
def test_errors(fn, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_module_exports():
    for name in ("adding_problem", "adding_problem_baseline_mse", "waveforms", "copy_memory"):
        assert callable(getattr(sequences, name))
