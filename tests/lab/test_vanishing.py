"""`shenjing lab vanishing`: gradients through time in a SimpleRNN and an LSTM."""

import json

import numpy as np
import pytest

from shenjing.datasets import sequences
from shenjing.diagnostics import hidden_state_gradient_norms
from shenjing.lab import vanishing
from tests.lab import assert_png


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("vanishing")
    return out, vanishing.run(out, small=True, verbose=False)


def test_lstm_gradient_reaches_the_first_step_at_t50(result):
    _, numbers = result
    rnn = numbers["results"]["SimpleRNN"][50]
    lstm = numbers["results"]["LSTM (chrono init)"][50]
    # dL/dh_1 relative to dL/dh_T: orders of magnitude apart after training...
    assert lstm["trained"]["ratio"] > 100 * rnn["trained"]["ratio"]
    # ...and at every epoch the SimpleRNN's low point is far below the LSTM's
    assert min(lstm["ratio_by_epoch"]) > 1e3 * min(rnn["ratio_by_epoch"])
    assert lstm["trained"]["first_step"] > 10 * rnn["trained"]["first_step"]


def test_lstm_solves_t50_where_simple_rnn_stays_at_the_baseline(result):
    _, numbers = result
    rnn = numbers["results"]["SimpleRNN"][50]
    lstm = numbers["results"]["LSTM (chrono init)"][50]
    assert lstm["mse"] < 0.05 < 0.5 * rnn["baseline_mse"]
    assert rnn["mse"] > 0.8 * rnn["baseline_mse"]
    # at T = 10 both learn: the gap is a matter of length
    assert numbers["results"]["SimpleRNN"][10]["mse"] < 0.05
    assert numbers["results"]["LSTM"][10]["mse"] < 0.05


def test_norms_are_the_diagnostic_of_the_trained_model(result):
    """The plotted norms have one value per step and match a fresh call of the diagnostic."""
    _, numbers = result
    for kind in vanishing.MODELS:
        for steps in numbers["settings"]["lengths"]:
            r = numbers["results"][kind][steps]
            assert r["trained"]["norms"].shape == (steps,)
            assert r["trained"]["ratio"] == pytest.approx(
                r["trained"]["norms"][0] / r["trained"]["norms"][-1])
    model, cell = vanishing.build("LSTM", 10, 4)
    x, y = sequences.adding_problem(16, 10, seed=5)
    norms = hidden_state_gradient_norms(model, x, y)
    again = vanishing._measure(model, cell, x, y)["norms"]
    np.testing.assert_allclose(again, norms)


def test_chrono_init_opens_the_forget_gates():
    _, cell = vanishing.build("LSTM (chrono init)", 50, 8)
    bias = cell.bias.numpy()
    forget, inputs = bias[8:16], bias[:8]
    assert np.all(forget >= 0) and np.all(forget <= np.log(49) + 1e-6)
    np.testing.assert_allclose(inputs, -forget)
    _, keras_cell = vanishing.build("LSTM", 50, 8)
    np.testing.assert_array_equal(keras_cell.bias.numpy()[8:16], 1.0)  # unit_forget_bias


def test_files_hold_the_numbers(result):
    out, numbers = result
    saved = json.loads((out / "vanishing.json").read_text())
    assert saved["results"]["LSTM"]["50"]["mse"] == pytest.approx(
        numbers["results"]["LSTM"][50]["mse"])
    for name in ("gradients", "training", "mse"):
        assert_png(out / f"vanishing_{name}.png")
