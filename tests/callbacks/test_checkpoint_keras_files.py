"""ModelCheckpoint writes Keras 3's files when the name asks for them: .keras (a whole model)
or .weights.h5 with save_weights_only; Keras 3 opens them and predicts the same."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError
from tests.keras_oracle import import_keras


def _model():
    model = sj.Sequential([layers.Input((5,)), layers.Dense(4, activation="relu"), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_checkpoints_in_keras_files_open_in_keras(tmp_path):
    pytest.importorskip("h5py")
    keras = import_keras()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 5)).astype(np.float32), rng.standard_normal((32, 1))
    model = _model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[
        sj.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor="loss",
                                     save_best_only=True),
        sj.callbacks.ModelCheckpoint(tmp_path / "w-{epoch}.weights.h5", save_weights_only=True)])
    theirs = keras.saving.load_model(tmp_path / "best.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    clone = _model()
    clone.load_weights(tmp_path / "w-2.weights.h5")
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))


def test_keras_names_must_match_what_is_saved(tmp_path):
    with pytest.raises(ArgumentError, match="weights-only files end in .weights.h5"):
        sj.callbacks.ModelCheckpoint(tmp_path / "m.keras", save_weights_only=True)
    with pytest.raises(ArgumentError, match="holds weights only"):
        sj.callbacks.ModelCheckpoint(tmp_path / "m.weights.h5")
    with pytest.raises(ArgumentError, match="legacy HDF5"):
        sj.callbacks.ModelCheckpoint(tmp_path / "m.h5")
