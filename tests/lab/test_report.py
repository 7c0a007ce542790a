"""`shenjing lab report`: one HTML page with the figures embedded."""

import base64
import json
import re

import numpy as np
import pytest

from shenjing import viz
from shenjing.lab import report
from tests.lab import assert_png


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    return out, report.run(out, small=True, verbose=False)


def test_page_embeds_every_figure(result, tmp_path):
    out, numbers = result
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == numbers["images"] >= 5  # 2 histories, maps, 2 kernels, gates
    for index, encoded in enumerate(images):
        path = tmp_path / f"{index}.png"
        path.write_bytes(base64.b64decode(encoded))
        assert_png(path, min_size=100)
    assert "Model summary (explained)" in page and "Param #" in page


def test_numbers_are_those_of_the_trained_models(result):
    out, numbers = result
    assert numbers["cnn_accuracy"] > 0.5  # 800 digits, 2 epochs: well above chance (0.1)
    assert numbers["lstm_accuracy"] > 0.3  # four waveforms: chance is 0.25
    assert numbers["gates"]["h_max_abs_diff"] < 1e-5  # the replay is the layer
    for gate in viz.GATES:
        stats = numbers["gates"][gate]
        assert 0 <= stats["near_0"] <= 1 and 0 <= stats["near_1"] <= 1
    saved = json.loads((out / "report.json").read_text())
    assert saved["cnn_accuracy"] == pytest.approx(numbers["cnn_accuracy"])
    shapes = {name: tuple(m["shape"]) for name, m in numbers["feature_maps"].items()}
    # names carry a process-wide counter (Keras's rule), so other tests may have used "conv2d"
    assert list(shapes.values()) == [(28, 28, 8), (14, 14, 16)]
    assert all(name.startswith("conv2d") for name in shapes)


def test_report_takes_your_models(tmp_path, rng):
    import shenjing as sj
    from shenjing import layers

    sj.utils.set_seed(1)
    cnn = sj.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(2, 3, name="only"),
                         layers.Flatten(), layers.Dense(2)])
    lstm = sj.Sequential([layers.Input((5, 2)), layers.LSTM(3)])
    numbers = report.run(tmp_path, model=cnn, image=rng.standard_normal((6, 6, 1)),
                         lstm_model=lstm, lstm_x=rng.standard_normal((4, 5, 2)), verbose=False)
    assert "cnn_accuracy" not in numbers
    assert list(numbers["feature_maps"]) == ["only"]
    assert numbers["feature_maps"]["only"]["shape"] == (4, 4, 2)
    with pytest.raises(ValueError, match="pass image="):
        report.run(tmp_path, model=cnn, lstm_model=lstm, lstm_x=np.zeros((1, 5, 2)))


def test_files_written(result):
    out, numbers = result
    for path in numbers["files"]:
        if path.endswith(".png"):
            assert_png(path, min_size=100)
