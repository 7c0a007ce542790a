"""`shenjing convert IN OUT`: the format by the names' extensions, a summary of what it wrote."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.cli import main


def _model():
    model = sj.Sequential([layers.Input((6,)), layers.Dense(4, activation="relu"),
                           layers.Dense(2)], name="small")
    model.compile(optimizer="adam", loss="mse")
    return model


def test_converts_between_our_formats_and_says_what_it_wrote(tmp_path, capsys):
    model = _model()
    model.save(tmp_path / "m.shenjing")
    assert main(["convert", str(tmp_path / "m.shenjing"), str(tmp_path / "m.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "m.safetensors (.safetensors" in out and "model 'small', 2 layers, 38 parameters" in out
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(sj.load_model(tmp_path / "m.safetensors").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


@pytest.mark.parametrize("source, target, message", [
    ("m.weights.h5", "m.shenjing", "holds no model architecture"),
    ("m.onnx", "m.shenjing", "holds no model architecture"),
    ("m.txt", "m.shenjing", "cannot tell the format of the input"),
    ("m.shenjing", "m.pt", "cannot tell the format of the output"),
])
def test_refusals_name_the_file_and_the_formats(tmp_path, capsys, source, target, message):
    _model().save(tmp_path / "m.shenjing")
    assert main(["convert", str(tmp_path / source), str(tmp_path / target)]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / target).exists() or target == "m.shenjing"


def test_converts_to_onnx_that_onnxruntime_runs_as_predict(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    model = _model()
    model.save(tmp_path / "m.shenjing")
    assert main(["convert", str(tmp_path / "m.shenjing"), str(tmp_path / "m.onnx")]) == 0
    assert "m.onnx (.onnx" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_converts_keras_files_both_ways(tmp_path, capsys):
    pytest.importorskip("h5py")
    from tests.keras_oracle import import_keras

    keras = import_keras()
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="tanh"),
                               keras.layers.Dense(2)])
    theirs.save(tmp_path / "k.keras")
    x = np.random.default_rng(2).standard_normal((5, 6)).astype(np.float32)
    assert main(["convert", str(tmp_path / "k.keras"), str(tmp_path / "k.shenjing")]) == 0
    np.testing.assert_allclose(sj.load_model(tmp_path / "k.shenjing").predict(x, verbose=0),
                               theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert main(["convert", str(tmp_path / "k.shenjing"), str(tmp_path / "back.keras")]) == 0
    assert "back.keras (.keras" in capsys.readouterr().out
    again = keras.saving.load_model(tmp_path / "back.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
