"""Vanishing gradients, seen: SimpleRNN vs LSTM of the same size on the adding problem.

For each sequence length T, three recurrent nets of `units` units -> Dense(1), trained the same
way (Adam, MSE): a SimpleRNN, an LSTM with Keras's initialization (forget-gate bias 1) and an
LSTM with the chrono initialization of Tallec & Ollivier (2018) (forget bias log U[1, T - 1],
input bias its negative), which starts with its forget gates open. Measured: ||dL/dh_t|| for
every step (shenjing.diagnostics.hidden_state_gradient_norms) at initialization and after
training, the first-step/last-step ratio after every epoch, the forget gates, and the final
test MSE against the baseline of always answering 1 (~1/6).

What the numbers show: at initialization the LSTM's gradient vanishes too (its forget gates sit
near sigmoid(1) = 0.73, and 0.73^49 ~ 2e-7), faster than the SimpleRNN's, whose orthogonal
recurrent kernel keeps it. The difference appears with training: once an LSTM holds some forget
gates open it solves the task and ||dL/dh_1|| stays within ~1-2 orders of magnitude of
||dL/dh_T||, epoch after epoch, while the SimpleRNN's ratio collapses after the first epoch
(1e-9..1e-6 at T = 50) and later swings up to exploding values without learning the task.
"""

from __future__ import annotations

import time

import numpy as np

from .. import layers, optimizers, utils
from ..datasets import sequences
from ..diagnostics import hidden_state_gradient_norms
from ..models import Sequential
from ..viz import lstm_gate_statistics
from . import plotting, prepare, save, say, write_json

SETTINGS = {
    False: dict(lengths=(10, 25, 50), units=32, n_train=2000, epochs=20, batch_size=32),
    True: dict(lengths=(10, 50), units=16, n_train=1000, epochs=8, batch_size=16),
}
MODELS = ("SimpleRNN", "LSTM", "LSTM (chrono init)")
PROBE = 256  # test sequences used to measure the gradients


def build(kind, steps, units, seed=0):
    """Input (T, 2) -> SimpleRNN or LSTM(units) -> Dense(1), compiled with Adam(1e-2) and MSE."""
    utils.set_seed(seed)
    cell = layers.SimpleRNN(units) if kind == "SimpleRNN" else layers.LSTM(units)
    model = Sequential([layers.Input((steps, 2)), cell, layers.Dense(1)])
    if kind == "LSTM (chrono init)":
        bias = cell.bias.numpy().copy()
        forget = np.log(utils.get_rng().uniform(1, max(steps - 1, 2), units))
        bias[units:2 * units], bias[:units] = forget, -forget
        cell.bias.assign(bias)
    model.compile(optimizer=optimizers.Adam(1e-2), loss="mse")
    return model, cell


def _measure(model, cell, x, y, norms=None):
    """Gradient norms (given, or measured now) and, for an LSTM, its forget gates on (x, y)."""
    norms = hidden_state_gradient_norms(model, x, y) if norms is None else norms
    numbers = {"norms": norms, "ratio": float(norms[0] / norms[-1]),
               "first_step": float(norms[0]), "spread": float(norms.max() / norms.min())}
    if isinstance(cell, layers.LSTM):
        forget = lstm_gate_statistics(cell, x)["f"]
        numbers.update(forget_mean=forget["mean"], forget_near_1=forget["near_1"],
                       memory_units=int(np.sum(forget["near_1_per_unit"] > 0.5)))
    return numbers


def train_one(kind, steps, settings, seed=0):
    """Train one model on the adding problem of length `steps`; numbers at init and after."""
    x_train, y_train = sequences.adding_problem(settings["n_train"], steps, seed=seed)
    x_test, y_test = sequences.adding_problem(1000, steps, seed=seed + 1)
    probe = x_test[:PROBE], y_test[:PROBE]
    model, cell = build(kind, steps, settings["units"], seed)
    result = {"init": _measure(model, cell, *probe), "ratio_by_epoch": [], "mse_by_epoch": []}
    start = time.perf_counter()
    for _ in range(settings["epochs"]):
        model.fit(x_train, y_train, epochs=1, batch_size=settings["batch_size"], verbose=0)
        result["mse_by_epoch"].append(model.evaluate(x_test, y_test, batch_size=500, verbose=0))
        norms = hidden_state_gradient_norms(model, *probe)
        result["ratio_by_epoch"].append(float(norms[0] / norms[-1]))
    result["seconds"] = time.perf_counter() - start
    result["trained"] = _measure(model, cell, *probe, norms=norms)  # the last epoch's norms
    result["mse"] = float(result["mse_by_epoch"][-1])
    result["baseline_mse"] = sequences.adding_problem_baseline_mse(y_test)
    return result


def run(out_dir, small=False, seed=0, verbose=True):
    """Train all models at every length; returns the numbers and writes vanishing_*.png."""
    settings = SETTINGS[bool(small)]
    out, files = prepare(out_dir), []
    numbers = {"settings": settings, "models": list(MODELS), "results": {m: {} for m in MODELS}}
    say(verbose, f"Adding problem, {settings['n_train']} training sequences, {settings['epochs']}"
                 f" epochs, {settings['units']} units each; ||dL/dh_1|| / ||dL/dh_T|| and MSE:")
    for steps in settings["lengths"]:
        for kind in MODELS:
            r = numbers["results"][kind][steps] = train_one(kind, steps, settings, seed)
            forget = (f"; units with f > 0.9 on most steps {r['init']['memory_units']} -> "
                      f"{r['trained']['memory_units']}" if "memory_units" in r["init"] else "")
            say(verbose, f"  T={steps:<3} {kind:<19} ratio {r['init']['ratio']:.1e} at init -> "
                         f"{r['trained']['ratio']:.1e} trained (over training "
                         f"{min(r['ratio_by_epoch']):.0e}..{max(r['ratio_by_epoch']):.0e}); MSE "
                         f"{r['mse']:.4f} (baseline {r['baseline_mse']:.3f}){forget}; "
                         f"{r['seconds']:.1f} s")
    if plotting(verbose):
        save(_plot_norms(numbers), out / "vanishing_gradients.png", files)
        save(_plot_training(numbers), out / "vanishing_training.png", files)
        save(_plot_mse(numbers), out / "vanishing_mse.png", files)
    write_json(numbers, out / "vanishing.json", files)
    numbers["files"] = files
    say(verbose, *(f"wrote {f}" for f in files))
    return numbers


# ----- figures ---------------------------------------------------------------------------
COLORS = {"SimpleRNN": "tab:red", "LSTM": "tab:blue", "LSTM (chrono init)": "tab:green"}


def _plot_norms(numbers):
    from ..viz import new_figure

    lengths = numbers["settings"]["lengths"]
    figure = new_figure(4.6 * len(lengths), 4)
    for index, steps in enumerate(lengths):
        axis = figure.add_subplot(1, len(lengths), index + 1)
        t = np.arange(1, steps + 1)
        for kind in numbers["models"]:
            r = numbers["results"][kind][steps]
            axis.plot(t, r["init"]["norms"], ":", color=COLORS[kind])
            axis.plot(t, r["trained"]["norms"], "-", color=COLORS[kind],
                      label=f"{kind}: MSE {r['mse']:.3f}")
        axis.set_yscale("log")
        axis.set(xlabel="time step t", title=f"T = {steps}")
        if index == 0:
            axis.set_ylabel("||dL/dh_t||  (dotted: at init, solid: trained)")
        axis.legend(fontsize=7, loc="lower right")
        axis.grid(alpha=0.3)
    figure.suptitle("Gradient reaching each step's hidden state, adding problem", fontsize=10)
    return figure


def _plot_training(numbers):
    from ..viz import new_figure

    steps = numbers["settings"]["lengths"][-1]
    figure = new_figure(10, 3.8)
    left, right = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    for kind in numbers["models"]:
        r = numbers["results"][kind][steps]
        epochs = np.arange(0, len(r["ratio_by_epoch"]) + 1)
        left.plot(epochs, [r["init"]["ratio"], *r["ratio_by_epoch"]], "-o", ms=3,
                  color=COLORS[kind], label=kind)
        right.plot(epochs[1:], r["mse_by_epoch"], "-o", ms=3, color=COLORS[kind], label=kind)
    baseline = numbers["results"][numbers["models"][0]][steps]["baseline_mse"]
    right.axhline(baseline, color="gray", ls=":", label="always 1 (baseline)")
    left.set_yscale("log")
    left.set(xlabel="epoch", ylabel="||dL/dh_1|| / ||dL/dh_T||", title=f"T = {steps}")
    right.set(xlabel="epoch", ylabel="test MSE", title=f"T = {steps}")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("During training: the LSTM's gradient reaches step 1 once it solves the "
                    "task", fontsize=10)
    return figure


def _plot_mse(numbers):
    from ..viz import new_figure

    lengths = numbers["settings"]["lengths"]
    figure = new_figure(6.5, 4)
    axis = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(lengths))
    width = 0.8 / len(numbers["models"])
    for index, kind in enumerate(numbers["models"]):
        values = [numbers["results"][kind][steps]["mse"] for steps in lengths]
        bars = axis.bar(positions + (index - 1) * width, values, width, color=COLORS[kind],
                        label=kind)
        axis.bar_label(bars, [f"{v:.4f}" for v in values], fontsize=7)
    baselines = [numbers["results"][numbers["models"][0]][s]["baseline_mse"] for s in lengths]
    axis.hlines(baselines, positions - 0.45, positions + 0.45, color="black", lw=1.5,
                label="baseline (always 1)")
    axis.set_yscale("log")  # a solved task sits orders of magnitude below the baseline
    axis.set_ylim(top=3.0)  # room for the legend above the baselines
    axis.set_xticks(positions, [f"T = {s}" for s in lengths])
    axis.set(ylabel="final test MSE", title="Adding problem after training")
    axis.legend(fontsize=8, ncol=2, loc="upper left")
    return figure
