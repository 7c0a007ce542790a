import csv
import hashlib
from pathlib import Path

import numpy as np

import shenjing.datasets
from shenjing.datasets import elnino

SHIPPED = Path(shenjing.datasets.__file__).parent / "data" / "elnino.csv"
# sha256 of statsmodels/datasets/elnino/elnino.csv in the statsmodels 0.15.0 wheel
STATSMODELS_SHA256 = "b647be00e0fd264be9764e317e6b963f35030014ecca2b21b204521716e463ad"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def test_shipped_file_is_the_statsmodels_copy():
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() == STATSMODELS_SHA256


def test_load_data_is_the_table_read_month_by_month():
    months, values = elnino.load_data()
    assert months.dtype == np.dtype("datetime64[M]") and values.dtype == np.float32
    assert months.shape == values.shape == (732,)
    assert str(months[0]) == "1950-01" and str(months[-1]) == "2010-12"
    assert np.all(np.diff(months) == np.timedelta64(1, "M"))
    with open(SHIPPED, newline="") as f:
        table = {(int(r["YEAR"]), i + 1): float(r[m]) for r in csv.DictReader(f)
                 for i, m in enumerate(MONTHS)}  # fmt: skip
    for month, value in zip(months, values, strict=True):
        year, mon = int(str(month)[:4]), int(str(month)[5:])
        assert value == np.float32(table[year, mon])
    assert values[0] == np.float32(23.11) and values[-1] == np.float32(22.07)
    # the 1997-98 El Nino: the warmest month of the record is March 1998
    assert str(months[values.argmax()]) == "1998-03" and values.max() == np.float32(29.24)


def test_series_is_seasonal_with_a_twelve_month_period():
    _, values = elnino.load_data()
    power = np.abs(np.fft.rfft(values - values.mean())) ** 2
    period = 1 / np.fft.rfftfreq(len(values))[1:][power[1:].argmax()]
    assert period == 12


def test_load_windows_line_up_with_the_raw_series():
    _, values = elnino.load_data()
    (x_tr, y_tr), (x_te, y_te), scaler = elnino.load_windows(scale="minmax")
    k = int(732 * 0.8)  # 585
    assert x_tr.shape == (k - 12, 12, 1) and y_tr.shape == (k - 12, 1)
    assert x_te.shape == (732 - k, 12, 1) and x_te.dtype == np.float32
    assert scaler.offset == values[:k].min() and x_tr.min() == 0 and x_tr.max() == 1
    np.testing.assert_allclose(scaler.inverse_transform(y_te[:, 0]), values[k:], atol=1e-5)
    np.testing.assert_allclose(scaler.inverse_transform(x_tr[7, :, 0]), values[7:19], atol=1e-5)
