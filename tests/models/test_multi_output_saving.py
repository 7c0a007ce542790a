"""A two-output model compiled with per-output metrics: ModelCheckpoint takes the per-output log
names (they were refused before the first batch), and saving warns that those metrics are not
kept in the file."""

import warnings

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers


def _model():
    x = layers.Input((4,))
    a = layers.Dense(2, activation="softmax", name="cls")(x)
    b = layers.Dense(1, name="reg")(x)
    model = sj.Model(x, [a, b])
    model.compile(optimizer="sgd", loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
                  metrics={"cls": ["accuracy"], "reg": ["mae"]})
    return model


def test_checkpoint_takes_per_output_log_names_and_saving_warns(tmp_path):
    model = _model()
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = [np.zeros(16, np.int64), np.zeros((16, 1), np.float32)]
    path = str(tmp_path / "m-{epoch}-{cls_accuracy:.2f}-{reg_loss:.3f}.shenjing")
    with pytest.warns(UserWarning, match="compile again"):
        history = model.fit(x, y, epochs=1, batch_size=8, verbose=0,
                            callbacks=[sj.callbacks.ModelCheckpoint(path)])
    assert {"cls_accuracy", "reg_loss"} <= set(history.history)
    saved = list(tmp_path.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("m-1-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = sj.load_model(saved[0])
    np.testing.assert_allclose(loaded.predict(x, verbose=0)[1], model.predict(x, verbose=0)[1])
