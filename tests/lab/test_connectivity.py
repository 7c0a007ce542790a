"""`shenjing lab connectivity`: 100000 / 1000 / 100 weights, and what sharing buys."""

import json
import sys

import numpy as np
import pytest

from shenjing import layers
from shenjing.cli import main
from shenjing.lab import connectivity
from tests.lab import assert_png


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("connectivity")
    return out, connectivity.run(out, small=True, verbose=False)


def test_counts_follow_the_three_formulas(result):
    _, numbers = result
    # 100x100 pixels to 10 units: every pixel, one 10x10 patch each, one shared 10x10 kernel
    assert numbers["weights"] == [100 * 100 * 10, 10 * 10 * 10, 10 * 10]
    for kind, expected in zip(connectivity.KINDS, numbers["weights"]):
        model, hidden = connectivity.build(kind)
        assert sum(np.size(w) for w in hidden.get_weights()) == expected
        assert model.get_layer("head").count_params() == 10 * 2 + 2


def test_locally_connected_units_see_their_own_patch():
    """Unit j of the local layer depends on pixels [0:10, 10j:10j+10] and on nothing else."""
    model, hidden = connectivity.build("locally connected")
    x = np.zeros((1, 100, 100, 1), np.float32)
    base = hidden(x).numpy().reshape(-1)
    x[0, 3, 47, 0] = 1.0  # inside patch 4
    x[0, 50, 47, 0] = 1.0  # below the strip: seen by nobody
    changed = np.flatnonzero(hidden(x).numpy().reshape(-1) != base)
    assert changed.tolist() == [4]


def test_sharing_generalizes_where_full_connection_memorizes(result):
    _, numbers = result
    full, local, shared = numbers["test_accuracy"]
    assert numbers["train_accuracy"][0] > 0.9  # 100000 weights fit 600 images...
    assert full < 0.7  # ...and barely beat chance on new ones
    assert shared > full + 0.15 and local > full
    assert shared > 0.8


def test_files_hold_the_numbers(result):
    out, numbers = result
    saved = json.loads((out / "connectivity.json").read_text())
    assert saved["weights"] == numbers["weights"]
    assert saved["test_accuracy"] == pytest.approx(numbers["test_accuracy"])
    for name in ("connectivity.png", "connectivity_weights.png"):
        assert_png(out / name)


def test_stripes_labels_match_orientation():
    x, y = connectivity.stripes(64, seed=3, noise=0.0)
    # horizontal stripes vary down the rows, vertical ones across the columns
    across_rows = np.abs(np.diff(x[..., 0], axis=1)).mean(axis=(1, 2))
    across_cols = np.abs(np.diff(x[..., 0], axis=2)).mean(axis=(1, 2))
    assert np.all((across_rows > across_cols) == (y == 0))


def test_cli_runs_the_lab_without_matplotlib(tmp_path, monkeypatch, capsys):
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.figure"):
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["lab", "connectivity", "--small", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "100 * 100 * 10 = 100000" in printed and "10 * 10 =    100" in printed
    assert 'pip install "shenjing[plot]"' in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["connectivity.json"]


def test_unknown_lab_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["lab", "nonsense"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown lab 'nonsense'"):
        from shenjing.lab import run
        run("nonsense")


def test_layers_used_are_public():
    assert isinstance(connectivity.hidden_layer("locally connected"), layers.LocallyConnected2D)
