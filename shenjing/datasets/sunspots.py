"""Yearly sunspot numbers 1700-2008 (309 values), a classic forecasting series; no download.

The series is the yearly mean sunspot number as shipped by statsmodels
(statsmodels/datasets/sunspots, column SUNACTIVITY), public domain; its cycle of about 11
years makes it a small test for recurrent networks. Source and licence:
shenjing/datasets/data/README.md.
"""

from importlib import resources

import numpy as np

from ..data import forecast_windows

FILENAME = "sunspots.csv"
FIRST_YEAR, LAST_YEAR = 1700, 2008


def load_data():
    """The yearly series as (years, values): years int64 (309,) from 1700 to 2008, values
    float32 (309,), the yearly mean sunspot number (0.0 to 190.2, the 1957 maximum).
    """
    with resources.files(__package__).joinpath("data", FILENAME).open("r") as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)  # header "YEAR","SUNACTIVITY"
    return table[:, 0].astype(np.int64), table[:, 1].astype(np.float32)


def load_windows(window=11, horizon=1, test_fraction=0.2, scale=None, stride=1):
    """Forecasting windows, split in time: ((x_train, y_train), (x_test, y_test), scaler).

    x (N, window, 1) float32 holds `window` consecutive years, y (N, horizon) the years after
    them; the test targets are the last test_fraction of the years, and a scaler ("standard"
    or "minmax") uses the training years only, so scaler.inverse_transform(pred) gives
    sunspot numbers back. See shenjing.data.forecast_windows for the exact split.
    Args: window (years per input, default 11: about one solar cycle); horizon; test_fraction;
    scale (None, "standard" or "minmax"); stride.
    """
    return forecast_windows(load_data()[1], window, horizon, test_fraction, scale, stride)
