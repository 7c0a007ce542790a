"""Sequence helpers of shenjing.data: forecasting windows, chronological split, Scaler, padding."""

import os

import numpy as np
import pytest

from shenjing.data import (
    Scaler,
    forecast_windows,
    pad_sequences,
    sliding_windows,
    timeseries_split,
)


def _windows_by_loop(series, window, horizon, stride):
    # the definition, one window at a time
    xs, ys = [], []
    for s in range(0, len(series) - window - horizon + 1, stride):
        xs.append(series[s : s + window])
        ys.append(series[s + window : s + window + horizon])
    x, y = np.array(xs), np.array(ys)
    return (x[..., None] if series.ndim == 1 else x), y


# --- sliding_windows ---------------------------------------------------------------------------


def test_sliding_windows_match_the_definition(rng):
    for _ in range(40):
        t, window = int(rng.integers(2, 40)), int(rng.integers(1, 10))
        horizon, stride = int(rng.integers(1, 4)), int(rng.integers(1, 5))
        if window + horizon > t:
            continue
        shape = (t,) if rng.random() < 0.5 else (t, int(rng.integers(1, 4)))
        series = rng.standard_normal(shape)
        x, y = sliding_windows(series, window, horizon, stride)
        want_x, want_y = _windows_by_loop(series, window, horizon, stride)
        n = (t - window - horizon) // stride + 1
        assert x.shape == (n, window, shape[1] if len(shape) == 2 else 1)
        assert y.shape == (n, horizon, *shape[1:])
        np.testing.assert_array_equal(x, want_x)
        np.testing.assert_array_equal(y, want_y)


def test_sliding_windows_keep_dtype_and_are_contiguous_copies():
    series = np.arange(20, dtype=np.float32)
    x, y = sliding_windows(series, 5, horizon=2)
    assert x.dtype == y.dtype == np.float32
    assert x.flags.c_contiguous and y.flags.c_contiguous and x.flags.writeable
    assert not np.shares_memory(x, series) and not np.shares_memory(y, series)
    x[0, 0, 0] = -1  # writing to the windows leaves the series alone
    assert series[0] == 0
    xi, yi = sliding_windows(np.arange(12), 3)  # integers stay integers
    assert xi.dtype == yi.dtype == np.arange(1).dtype
    np.testing.assert_array_equal(yi[:, 0], np.arange(3, 12))
    # the whole series as one window: exactly one pair
    x1, y1 = sliding_windows([1.0, 2.0, 3.0], 2)
    np.testing.assert_array_equal(x1, [[[1.0], [2.0]]])
    np.testing.assert_array_equal(y1, [[3.0]])


@pytest.mark.parametrize(
    "series, kwargs, match",
    [(np.zeros(5), {"window": 5}, r"window \+ horizon = 5 \+ 1 exceeds the series length 5"),
     (np.zeros(5), {"window": 3, "horizon": 3}, "exceeds the series length 5"),
     (np.zeros(5), {"window": 0}, "window must be an int >= 1, got 0"),
     (np.zeros(5), {"window": 2, "horizon": 0}, "horizon must be an int >= 1, got 0"),
     (np.zeros(5), {"window": 2, "stride": -1}, "stride must be an int >= 1, got -1"),
     (np.zeros(5), {"window": 2.0}, "window must be an int >= 1, got 2.0"),
     (np.zeros(5), {"window": True}, "window must be an int >= 1, got True"),
     (np.zeros((5, 2, 2)), {"window": 2}, r"rank 1 \(time,\) or 2.*got shape \(5, 2, 2\)"),
     (np.float64(3.0), {"window": 1}, r"got shape \(\)")],
)  # fmt: skip
def test_sliding_windows_errors(series, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sliding_windows(series, **kwargs)


# --- timeseries_split, Scaler -----------------------------------------------------------------


def test_timeseries_split_is_chronological():
    series = np.arange(10)
    train, test = timeseries_split(series, 0.25)  # k = floor(10 * 0.75) = 7
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, np.arange(7, 10))
    train, test = timeseries_split(series, 0.25, overlap=3)
    np.testing.assert_array_equal(train, np.arange(7))
    np.testing.assert_array_equal(test, np.arange(4, 10))
    train, test = timeseries_split(np.ones((9, 2)), 0.5)  # k = floor(4.5) = 4, rows split
    assert train.shape == (4, 2) and test.shape == (5, 2)


@pytest.mark.parametrize(
    "args, match",
    [((np.arange(10), 0.0), r"test_fraction must be a float in \(0, 1\), got 0.0"),
     ((np.arange(10), 1), r"test_fraction must be a float in \(0, 1\), got 1"),
     ((np.arange(10), "0.2"), "got '0.2'"),
     ((np.arange(3), 0.9), r"3 time steps are too few .*\(train part would get 0\)"),
     ((np.arange(10), 0.2, 9), "overlap must be <= the train length 8, got 9"),
     ((np.arange(10), 0.2, -1), "overlap must be an int >= 0, got -1"),
     ((np.float64(1.0), 0.2), "expected a series with a time axis")],
)  # fmt: skip
def test_timeseries_split_errors(args, match):
    with pytest.raises(ValueError, match=match):
        timeseries_split(*args)


def test_scaler_statistics_and_inverse(rng):
    data = (rng.standard_normal((50, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]).astype(np.float32)
    std = Scaler.fit(data, "standard")
    np.testing.assert_allclose(std.offset, data.astype(np.float64).mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std.scale, data.astype(np.float64).std(axis=0), rtol=1e-5)
    z = std.transform(data)
    assert z.dtype == np.float32 and std.offset.dtype == std.scale.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-5)
    np.testing.assert_allclose(std.inverse_transform(z), data, rtol=1e-6, atol=1e-5)
    mm = Scaler.fit(data[:, 1], "minmax")  # 1-D: scalar statistics
    assert mm.offset.shape == mm.scale.shape == ()
    u = mm.transform(data[:, 1])
    assert u.min() == 0 and u.max() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(mm.inverse_transform(u), data[:, 1], rtol=1e-6)
    assert mm.inverse_transform(u.astype(np.float64)).dtype == np.float64
    ident = Scaler.fit(data, "none")
    np.testing.assert_array_equal(ident.transform(data), data)
    flat = Scaler.fit(np.full(4, 7.0), "standard")  # zero spread: divide by 1, not 0
    np.testing.assert_array_equal(flat.transform([7.0, 8.0]), [0.0, 1.0])
    assert Scaler.fit([1, 2, 3], "minmax").offset.dtype == np.float64  # ints become floats
    with pytest.raises(ValueError, match=r"method must be one of \('standard', 'minmax', "):
        Scaler.fit(data, "robust")
    with pytest.raises(ValueError, match=r"expected data \(T,\) or \(T, F\), T >= 1, got \(0,\)"):
        Scaler.fit(np.zeros(0), "standard")


# --- forecast_windows ------------------------------------------------------------------------


def test_forecast_windows_split_in_time_without_leakage(rng):
    series = np.cumsum(rng.standard_normal(100)).astype(np.float32)
    (x_tr, y_tr), (x_te, y_te), scaler = forecast_windows(series, 6, test_fraction=0.3)
    k = 70
    assert scaler.method == "none" and x_tr.dtype == x_te.dtype == np.float32
    assert x_tr.shape == (k - 6, 6, 1) and y_tr.shape == (k - 6, 1)
    assert x_te.shape == (30, 6, 1) and y_te.shape == (30, 1)
    np.testing.assert_array_equal(y_tr[:, 0], series[6:k])  # train targets stay before k
    np.testing.assert_array_equal(y_te[:, 0], series[k:])  # every later value is a test target
    for j in (0, 17, 29):
        np.testing.assert_array_equal(x_te[j, :, 0], series[k - 6 + j : k + j])
    for i in (0, 31, k - 7):
        np.testing.assert_array_equal(x_tr[i, :, 0], series[i : i + 6])


def test_forecast_windows_scale_with_training_statistics_only(rng):
    series = rng.standard_normal(60) * 3 + 5
    (x_tr, y_tr), (_, y_te), scaler = forecast_windows(series, 4, horizon=2, scale="standard")
    k = 48
    mean, std = series[:k].mean(), series[:k].std()
    assert scaler.offset == pytest.approx(mean) and scaler.scale == pytest.approx(std)
    raw_x = np.array([series[i : i + 4] for i in range(k - 5)])  # train: targets before k
    np.testing.assert_allclose(x_tr[:, :, 0], (raw_x - mean) / std)
    raw_y = np.array([series[k + j : k + j + 2] for j in range(11)])  # test: from k on
    np.testing.assert_allclose(scaler.inverse_transform(y_te), raw_y)
    # changing the test part changes neither the statistics nor the training windows
    spiked = series.copy()
    spiked[k:] += 100
    (x_tr2, y_tr2), _, scaler2 = forecast_windows(spiked, 4, horizon=2, scale="standard")
    np.testing.assert_array_equal(x_tr2, x_tr)
    np.testing.assert_array_equal(y_tr2, y_tr)
    assert scaler2.offset == scaler.offset and scaler2.scale == scaler.scale
    (x_mm, _), _, mm = forecast_windows(series, 4, scale="minmax")
    assert mm.offset == series[:k].min() and mm.scale == pytest.approx(np.ptp(series[:k]))
    assert x_mm.min() >= 0 and x_mm.max() <= 1


def test_forecast_windows_multivariate_and_stride(rng):
    series = rng.standard_normal((40, 3))
    (x_tr, y_tr), (x_te, y_te), scaler = forecast_windows(series, 5, stride=2, scale="minmax")
    assert scaler.offset.shape == (3,)
    want_x, want_y = _windows_by_loop(scaler.transform(series[:32]), 5, 1, 2)
    np.testing.assert_allclose(x_tr, want_x)
    np.testing.assert_allclose(y_tr, want_y)
    assert y_tr.shape == (14, 1, 3) and x_te.shape == (4, 5, 3)
    np.testing.assert_allclose(scaler.inverse_transform(y_te[:, 0]), series[32::2])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"window": 8}, "the train part has 8 time steps, fewer than the 9 needed for window=8"),
     ({"window": 3, "horizon": 3}, "the test part has 2 time steps, fewer than the 3 needed"),
     ({"window": 2, "scale": "z"}, "method must be one of"),
     ({"window": 0}, "forecast_windows: window must be an int >= 1, got 0"),
     ({"window": 2, "stride": 0}, "forecast_windows: stride must be an int >= 1, got 0"),
     ({"window": 2, "test_fraction": 1.5}, r"test_fraction must be a float in \(0, 1\)")],
)  # fmt: skip
def test_forecast_windows_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        forecast_windows(np.arange(10.0), **kwargs)


# --- pad_sequences against Keras -------------------------------------------------------------


def _keras_pad():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


def test_pad_sequences_matches_keras(rng):
    keras_pad = _keras_pad()
    for case in range(60):
        item = () if case % 3 else (int(rng.integers(1, 3)),)
        seqs = [rng.integers(1, 50, (int(rng.integers(0, 9)), *item)) for _ in range(5)]
        seqs[0] = rng.integers(1, 50, (int(rng.integers(1, 9)), *item))  # Keras: max of lengths
        if case % 4 == 0:
            seqs = [s.tolist() for s in seqs]  # lists of lists too
        kwargs = {
            "maxlen": [None, 1, 3, 6, 12][case % 5],
            "padding": ["pre", "post"][case % 2],
            "truncating": ["pre", "post"][(case // 2) % 2],
            "value": [0.0, -1, 7.5][case % 3],
            "dtype": ["int32", "float32", "int64"][(case // 3) % 3],
        }
        got, want = pad_sequences(seqs, **kwargs), keras_pad(seqs, **kwargs)
        assert got.dtype == want.dtype and got.shape == want.shape, kwargs
        np.testing.assert_array_equal(got, want)


def test_pad_sequences_defaults_match_keras():
    keras_pad = _keras_pad()
    seqs = [[1], [2, 3], [4, 5, 6], []]
    np.testing.assert_array_equal(pad_sequences(seqs), keras_pad(seqs))
    np.testing.assert_array_equal(
        pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6], [0, 0, 0]]
    )
    assert pad_sequences(seqs).dtype == np.int32
    words = [["a", "b"], ["c"]]
    got = pad_sequences(words, dtype=object, value="<pad>")
    np.testing.assert_array_equal(got, keras_pad(words, dtype=object, value="<pad>"))
    assert pad_sequences([]).shape == (0, 0)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [(([[1, 2]],), {"padding": "middle"}, ValueError, "padding must be 'pre' or 'post', got 'mi"),
     (([[1, 2]],), {"truncating": None}, ValueError, "truncating must be 'pre' or 'post', got No"),
     (([[1, 2]],), {"maxlen": 0}, ValueError, "maxlen must be an int >= 1, got 0"),
     (([[1, 2], 3],), {}, ValueError, "sequence 1 has no length, got 3"),
     (([[1, 2]],), {"value": "x"}, ValueError, "string value 'x' needs dtype=object"),
     (([[[1, 2]], [[1, 2, 3]]],), {}, ValueError, r"sequence 1 have shape \(3,\), expected \(2,"),
     ((iter([[1]]),), {}, TypeError, "expected a list of sequences, got list_iterator")],
)  # fmt: skip
def test_pad_sequences_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        pad_sequences(*args, **kwargs)
