"""BatchNormalization(synchronized=True) in .keras files both ways. Keras writes the argument
as it is; only its TensorFlow backend builds such a layer, so the file from Keras is made here
by setting the flag in a torch-backend file's config.json, as TensorFlow's Keras would."""

import json
import zipfile

import numpy as np
import pytest

import shenjing as sj
from tests.keras_oracle import import_keras

pytest.importorskip("h5py")
keras = import_keras()
K = keras.layers


def _set_synchronized(path, value):
    """Rewrite the .keras file at path with every BatchNormalization's synchronized = value."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    for entry in config["config"]["layers"]:
        if entry["class_name"] == "BatchNormalization":
            entry["config"]["synchronized"] = value
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return config


def test_synchronized_batch_normalization_both_ways(rng, tmp_path):
    model = keras.Sequential([K.Input((5, 3)), K.Dense(4), K.BatchNormalization(momentum=0.9)])
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    x = rng.standard_normal((3, 5, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "k.keras")
    theirs = _set_synchronized(tmp_path / "k.keras", True)
    ours = sj.load_model(tmp_path / "k.keras")
    assert ours.layers[-1].synchronized is True
    np.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)

    ours.save(tmp_path / "s.keras")
    with zipfile.ZipFile(tmp_path / "s.keras") as archive:
        written = json.loads(archive.read("config.json"))
    (bn,) = [e for e in written["config"]["layers"] if e["class_name"] == "BatchNormalization"]
    (their_bn,) = [e for e in theirs["config"]["layers"]
                   if e["class_name"] == "BatchNormalization"]
    assert bn["config"]["synchronized"] is True
    # Keras's torch backend refuses synchronized=True by its own rule (as it refuses the file
    # TensorFlow's Keras writes); the same file with the flag off loads and predicts the same
    with pytest.raises((TypeError, ValueError), match="synchronized=True is only supported"):
        keras.saving.load_model(tmp_path / "s.keras")
    _set_synchronized(tmp_path / "s.keras", False)
    again = keras.saving.load_model(tmp_path / "s.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    theirs_config = {**their_bn["config"], "synchronized": False}
    again_config = again.layers[-1].get_config()
    assert {k: again_config[k] for k in ("axis", "momentum", "epsilon", "center", "scale",
                                         "synchronized")} == {
        k: theirs_config[k] for k in ("axis", "momentum", "epsilon", "center", "scale",
                                      "synchronized")}


def test_onnx_export_is_plain_batch_normalization(rng, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    L = sj.layers
    model = sj.Sequential([L.Input((4, 4, 2)), L.Conv2D(3, 3),
                           L.BatchNormalization(synchronized=True)])
    for w in model.weights:
        w.data[...] = rng.uniform(0.5, 1.5, w.shape)
    model.export(tmp_path / "m.onnx", format="onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((2, 4, 4, 2)).astype("float32")
    (got,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
