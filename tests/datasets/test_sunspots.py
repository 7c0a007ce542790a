import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

import shenjing.datasets
from shenjing.datasets import sunspots

SHIPPED = Path(shenjing.datasets.__file__).parent / "data" / "sunspots.csv"
# sha256 of statsmodels/datasets/sunspots/sunspots.csv in the statsmodels 0.15.0 wheel
STATSMODELS_SHA256 = "f67889b1d9002cd5227f0e0ef54e35b419cdd85a31279adef6f73fb41e5c0a9b"


def _csv_rows():
    # the file read with the csv module, independently of np.loadtxt
    with open(SHIPPED, newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == ["YEAR", "SUNACTIVITY"]
        return {int(year): float(value) for year, value in reader}


def test_shipped_file_is_the_statsmodels_copy():
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == STATSMODELS_SHA256
    assert SHIPPED.stat().st_size < 4000


def test_load_data_years_values_and_known_points():
    years, values = sunspots.load_data()
    assert years.dtype == np.int64 and values.dtype == np.float32
    assert years.shape == values.shape == (309,)
    np.testing.assert_array_equal(years, np.arange(1700, 2009))
    rows = _csv_rows()
    np.testing.assert_array_equal(values, np.array([rows[y] for y in range(1700, 2009)], "f4"))
    known = {1700: 5.0, 1810: 0.0, 1957: 190.2, 1989: 157.6, 2008: 2.9}  # 1957: cycle 19 max
    for year, value in known.items():
        assert values[year - 1700] == np.float32(value), year
    assert years[values.argmax()] == 1957 and values.min() == 0


def test_series_has_the_eleven_year_solar_cycle():
    _, values = sunspots.load_data()
    power = np.abs(np.fft.rfft(values - values.mean())) ** 2
    freqs = np.fft.rfftfreq(len(values))
    period = 1 / freqs[1:][power[1:].argmax()]
    assert 10 < period < 12, period


def test_load_windows_line_up_with_the_raw_series():
    _, values = sunspots.load_data()
    (x_tr, y_tr), (x_te, y_te), scaler = sunspots.load_windows(window=11)
    k = int(309 * 0.8)  # 247: the training years are 1700..1946
    assert x_tr.shape == (k - 11, 11, 1) and y_tr.shape == (k - 11, 1)
    assert x_te.shape == (309 - k, 11, 1) and y_te.shape == (309 - k, 1)
    assert x_tr.dtype == y_tr.dtype == x_te.dtype == y_te.dtype == np.float32
    assert scaler.method == "none"
    for i in (0, 100, k - 12):
        np.testing.assert_array_equal(x_tr[i, :, 0], values[i : i + 11])
        assert y_tr[i, 0] == values[i + 11]
    np.testing.assert_array_equal(y_te[:, 0], values[k:])  # test targets: 1947..2008
    np.testing.assert_array_equal(x_te[0, :, 0], values[k - 11 : k])
    assert y_tr[-1, 0] == values[k - 1]  # last training target: the year before the split


def test_load_windows_scaled_with_training_years_only():
    _, values = sunspots.load_data()
    v = values.astype(np.float64)
    (x_tr, _), (x_te, y_te), scaler = sunspots.load_windows(
        window=20, horizon=3, test_fraction=0.25, scale="standard"
    )
    k = int(309 * 0.75)  # 231
    assert scaler.offset == pytest.approx(v[:k].mean(), rel=1e-6)
    assert scaler.scale == pytest.approx(v[:k].std(), rel=1e-6)
    assert scaler.offset != pytest.approx(v.mean(), rel=1e-3)  # not the whole series' mean
    np.testing.assert_allclose(x_tr[5, :, 0], (v[5:25] - v[:k].mean()) / v[:k].std(), rtol=1e-5)
    assert y_te.shape == (309 - k - 2, 3)
    np.testing.assert_allclose(scaler.inverse_transform(y_te[:, 0]), values[k:-2], atol=1e-4)
    np.testing.assert_allclose(scaler.inverse_transform(x_te[-1, :, 0]), values[-23:-3], atol=1e-4)
    (x_mm, _), _, mm = sunspots.load_windows(scale="minmax")
    assert mm.offset == values[:247].min() and mm.scale == values[:247].max() - values[:247].min()
    assert x_mm.min() == 0 and x_mm.max() == 1


def test_load_windows_errors():
    with pytest.raises(ValueError, match="the train part has 247 time steps, fewer than the 301"):
        sunspots.load_windows(window=300)
    with pytest.raises(ValueError, match="window must be an int >= 1, got 0"):
        sunspots.load_windows(window=0)
