"""Keras-shaped image datasets: each `load_data()` returns ((x_train, y_train), (x_test, y_test)).

`mnist.load_subset()` needs no download (5,000 real digits ship with the package); the
full sets are read from a given path or the cache folder, or downloaded once and checked.
Sequence data works offline too: the real series `sunspots` (yearly) and `elnino` (monthly)
ship with the package, their `load_data()` returning (time, values) and `load_windows()`
forecasting windows; `sequences` generates synthetic tasks for recurrent networks.
A dataset file that is corrupt, truncated or hostile (a header announcing more than the format
holds, a decompression bomb, labels outside 0..9) raises DatasetFileError, a ValueError naming
the file, before anything large is allocated.
"""

from . import cifar10, elnino, fashion_mnist, mnist, sequences, sunspots
from ._files import DatasetFileError

__all__ = [
    "DatasetFileError", "cifar10", "elnino", "fashion_mnist", "mnist", "sequences", "sunspots",
]
