"""Keras 3 on the torch backend, imported once, for parity tests (same weight layout)."""

import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")


def import_keras():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("Keras runs on another backend in this process")
    return keras
