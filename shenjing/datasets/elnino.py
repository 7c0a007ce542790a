"""Monthly sea surface temperature of the Pacific (El Nino region 1+2), 1950-2010; no download.

732 monthly means in degrees Celsius, a seasonal series with El Nino years on top, as shipped
by statsmodels (statsmodels/datasets/elnino), public domain, from NOAA's ERSST.V3B data.
Source and licence: shenjing/datasets/data/README.md.
"""

from importlib import resources

import numpy as np

from ..data import forecast_windows

FILENAME = "elnino.csv"
FIRST_YEAR, LAST_YEAR = 1950, 2010


def load_data():
    """The monthly series as (months, values): months datetime64[M] (732,) from 1950-01 to
    2010-12, values float32 (732,), the mean sea surface temperature in degrees Celsius.
    """
    with resources.files(__package__).joinpath("data", FILENAME).open("r") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)  # YEAR, then JAN ... DEC
    years = table[:, 0].astype(np.int64)
    first = np.datetime64(f"{years[0]}-01", "M")
    months = first + np.arange(12 * len(years))  # rows are consecutive years, read row-wise
    return months, table[:, 1:].reshape(-1).astype(np.float32)


def load_windows(window=12, horizon=1, test_fraction=0.2, scale=None, stride=1):
    """Forecasting windows, split in time: ((x_train, y_train), (x_test, y_test), scaler).

    x (N, window, 1) float32 holds `window` consecutive months, y (N, horizon) the months
    after them; the test targets are the last test_fraction of the months, and a scaler
    ("standard" or "minmax") uses the training months only. See
    shenjing.data.forecast_windows for the exact split.
    Args: window (months per input, default 12: one year); horizon; test_fraction; scale
    (None, "standard" or "minmax"); stride.
    """
    return forecast_windows(load_data()[1], window, horizon, test_fraction, scale, stride)
