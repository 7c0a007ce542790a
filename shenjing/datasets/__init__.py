"""Keras-shaped datasets: each `load_data()` returns ((x_train, y_train), (x_test, y_test)).

`mnist.load_subset()` needs no download (5,000 real digits ship with the package); the
full sets are read from a given path or the cache folder, or downloaded once and checked.
"""

from . import cifar10, fashion_mnist, mnist

__all__ = ["cifar10", "fashion_mnist", "mnist"]
