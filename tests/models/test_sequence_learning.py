"""Recurrent networks learning real and long-range tasks; gradients through time."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.datasets import sequences
from shenjing.demo import run_lstm_demo
from shenjing.diagnostics import hidden_state_gradient_norms

T = 50


@pytest.fixture(scope="module")
def adding():
    x_train, y_train = sequences.adding_problem(6000, T, seed=0)
    x_test, y_test = sequences.adding_problem(1000, T, seed=1)
    return (x_train, y_train), (x_test, y_test)


def _fit(kind, data, stacked, epochs=12, seed=0):
    (x_train, y_train), (x_test, y_test) = data
    sj.utils.set_seed(seed)
    cell = getattr(layers, kind)
    stack = [layers.Input((T, 2))]
    stack += [cell(32, return_sequences=True), cell(32)] if stacked else [cell(32)]
    model = sj.Sequential(stack + [layers.Dense(1)])
    model.compile(optimizer=sj.optimizers.Adam(3e-3), loss="mse")
    model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    return model, model.evaluate(x_test, y_test, verbose=0)


@pytest.mark.slow  # minutes of training: `.ci/run` runs it as its second step
def test_stacked_lstm_learns_the_adding_problem_where_a_simple_rnn_does_not(adding):
    baseline = sequences.adding_problem_baseline_mse(adding[1][1])
    assert 0.14 < baseline < 0.19  # always answering 1.0
    _, lstm_mse = _fit("LSTM", adding, stacked=True)
    _, rnn_mse = _fit("SimpleRNN", adding, stacked=True)
    assert lstm_mse < 0.01, lstm_mse
    assert rnn_mse > 0.01, rnn_mse


@pytest.mark.slow  # minutes of training: `.ci/run` runs it as its second step
def test_gradients_reach_the_first_step_of_a_trained_lstm(adding):
    """Once an LSTM has learned the task, dL/dh_1 is a sizable fraction of dL/dh_50: the cell
    state carries the gradient back fifty steps. A SimpleRNN of the same size, trained the same
    way, has not learned the task (its gradients vanish or, later, explode)."""
    x, y = adding[1][0][:256], adding[1][1][:256]
    lstm, lstm_mse = _fit("LSTM", adding, stacked=False)
    norms = hidden_state_gradient_norms(lstm, x, y)
    assert norms.shape == (T,) and np.all(norms > 0)
    assert lstm_mse < 0.01 and norms[0] / norms[-1] > 0.05, (lstm_mse, norms[0] / norms[-1])
    _, rnn_mse = _fit("SimpleRNN", adding, stacked=False)
    assert rnn_mse > 0.1, rnn_mse


def test_state_gradient_norms_match_a_torch_step_loop(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 6, 2))
    y = rng.standard_normal((3, 1))
    model = sj.Sequential([layers.Input((6, 2), dtype="float64"),
                           layers.SimpleRNN(4, dtype="float64"), layers.Dense(1, dtype="float64")],
                          dtype="float64")
    model.compile(optimizer="sgd", loss="mse")
    norms = hidden_state_gradient_norms(model, x, y)
    kernel, recurrent, bias, dense_kernel, dense_bias = (
        torch.tensor(w, requires_grad=True) for w in model.get_weights())
    h, states = torch.zeros(3, 4, dtype=torch.float64), []
    for t in range(6):
        h = torch.tanh(torch.tensor(x[:, t]) @ kernel + h @ recurrent + bias)
        h.retain_grad()
        states.append(h)
    loss = ((h @ dense_kernel + dense_bias - torch.tensor(y)) ** 2).mean()
    loss.backward()
    expected = [s.grad.norm(dim=1).mean().item() for s in states]
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def test_sunspot_lstm_beats_the_naive_forecast():
    ours, naive = run_lstm_demo(epochs=60)
    assert ours < 0.85 * naive, (ours, naive)
