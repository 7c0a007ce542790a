"""Inside a trained model: one self-contained HTML page (figures embedded as base64 PNG).

Trains a small CNN on the shipped digits (or takes yours) and an LSTM on the waveform task
(or takes yours), then gathers: the explained summary, the training history as curves, the
feature maps of each conv layer for one test image, the learned kernels, and how often each
LSTM gate is near 0 or 1 over a batch (shenjing.viz does the work).
"""

from __future__ import annotations

import html
import time

from .. import layers, optimizers, utils, viz
from ..datasets import sequences
from ..demo import build_cnn, load_digits
from ..errors import ArgumentError
from ..models import Sequential
from . import plotting, prepare, save, say, write_json

SETTINGS = {False: dict(n_train=4000, epochs=5, lstm_train=2000, lstm_epochs=10),
            True: dict(n_train=800, epochs=2, lstm_train=400, lstm_epochs=3)}
WAVE_STEPS = 48


def train_cnn(settings, seed=0):
    """The demo CNN, narrower (8 and 16 filters), trained with Adam; returns (model, test data)."""
    utils.set_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    n = settings["n_train"]
    model = build_cnn(filters=(8, 16), dropout=0.2)
    model.compile(optimizer=optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train[:n], y_train[:n], epochs=settings["epochs"], batch_size=32, verbose=0,
              validation_data=(x_test, y_test))
    return model, (x_test, y_test)


def train_lstm(settings, seed=0):
    """LSTM(16) -> Dense(4, softmax) on sequences.waveforms (sine, square, sawtooth, triangle)."""
    utils.set_seed(seed)
    x_train, y_train = sequences.waveforms(settings["lstm_train"], WAVE_STEPS, seed=seed)
    x_test, y_test = sequences.waveforms(500, WAVE_STEPS, seed=seed + 1)
    model = Sequential([layers.Input((WAVE_STEPS, 1)), layers.LSTM(16),
                        layers.Dense(len(sequences.WAVEFORM_CLASSES), activation="softmax")],
                       name="waveform_lstm")
    model.compile(optimizer=optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=settings["lstm_epochs"], batch_size=32, verbose=0,
              validation_data=(x_test, y_test))
    return model, (x_test, y_test)


def summary_text(model):
    """model.summary(explain=True) as text (the plain summary where explain is not known)."""
    lines = []
    try:
        model.summary(print_fn=lines.append, explain=True)
    except TypeError:
        model.summary(print_fn=lines.append)
    return "\n".join(lines)


def run(out_dir, small=False, seed=0, verbose=True, model=None, image=None, lstm_model=None,
        lstm_x=None):
    """Write report.html (and its figures as PNG files) and return the numbers behind them.

    model: a built model with conv layers (default: train a small CNN on the digits); image: one
    input for its feature maps (default: the first test digit); lstm_model and lstm_x: a model
    with an LSTM layer and a batch of its inputs (default: train one on sequences.waveforms).
    """
    settings = SETTINGS[bool(small)]
    out, files = prepare(out_dir), []
    start = time.perf_counter()
    numbers = {"settings": settings}
    if model is None:
        model, (x_test, y_test) = train_cnn(settings, seed)
        image = x_test[0] if image is None else image
        numbers["cnn_accuracy"] = float(model.evaluate(x_test, y_test, verbose=0)[1])
    if image is None:
        raise ArgumentError(
            "lab report: pass image= (one input for the feature maps) with model=.")
    if lstm_model is None:
        lstm_model, (lstm_x, lstm_y) = train_lstm(settings, seed)
        numbers["lstm_accuracy"] = float(lstm_model.evaluate(lstm_x, lstm_y, verbose=0)[1])
    if lstm_x is None:
        raise ArgumentError("lab report: pass lstm_x= (a batch of inputs) with lstm_model=.")
    maps = viz.feature_maps(model, image)
    numbers["feature_maps"] = {name: {"shape": m.shape, "mean": float(m.mean()),
                                      "std": float(m.std())} for name, m in maps.items()}
    gates = viz.lstm_gate_statistics(lstm_model, lstm_x)
    numbers["gates"] = gates
    texts = {"cnn": summary_text(model), "lstm": summary_text(lstm_model)}
    for label, key in (("CNN", "cnn_accuracy"), ("LSTM", "lstm_accuracy")):
        if key in numbers:
            say(verbose, f"{label} test accuracy: {numbers[key]:.1%}")
    say(verbose, "LSTM gates over the batch: " + ", ".join(
        f"{g} {gates[g]['near_0']:.0%} < 0.1, {gates[g]['near_1']:.0%} > 0.9" for g in viz.GATES))
    figures = []
    if plotting(verbose):
        figures = _figures(model, image, lstm_model, gates)
        for name, figure, _ in figures:
            save(figure, out / name, files)
    page = _html(figures, texts, numbers, model, lstm_model)
    (out / "report.html").write_text(page, encoding="utf-8")
    files.append(str(out / "report.html"))
    numbers["images"] = len(figures)
    numbers["seconds"] = time.perf_counter() - start
    write_json(numbers, out / "report.json", files)
    numbers["files"] = files
    say(verbose, *(f"wrote {f}" for f in files))
    return numbers


def _figures(model, image, lstm_model, gates):
    """(file name, Figure, caption) for every figure of the page."""
    figures = []
    for owner in (model, lstm_model):
        history = getattr(owner, "history", None)
        if history is not None and history.history:
            figures.append((f"report_history_{owner.name}.png",
                            viz.plot_history(history, title=f"Training history: {owner.name}"),
                            f"Loss and metrics of '{owner.name}' per epoch."))
    figures.append(("report_feature_maps.png", viz.plot_feature_maps(model, image),
                    "Feature maps: each conv layer's output for one input (rows), up to 16 "
                    "channels."))
    for name in viz.conv_layer_names(model):
        layer = model.get_layer(name)
        figures.append((f"report_kernels_{name}.png", viz.plot_kernels(layer),
                        f"Learned kernels of '{name}' (input channels averaged when there are "
                        "several)."))
    figures.append(("report_lstm_gates.png", viz.plot_gate_statistics(gates),
                    "LSTM gates over a batch: per unit, the fraction of (sample, step) values "
                    "below 0.1 and above 0.9; the candidate c~ by its magnitude."))
    return figures


def _html(figures, texts, numbers, model, lstm_model):
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>shenjing lab report</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;}"
             "img{max-width:100%;border:1px solid #ddd;}pre{background:#f6f6f6;padding:1em;"
             "overflow-x:auto;}td,th{padding:2px 10px;text-align:right;}</style></head><body>",
             "<h1>Inside a trained model</h1>"]
    scores = [f"{label}: test accuracy {numbers[key]:.1%}" for label, key in
              ((model.name, "cnn_accuracy"), (lstm_model.name, "lstm_accuracy"))
              if key in numbers]
    if scores:
        parts.append("<p>" + html.escape("; ".join(scores)) + "</p>")
    for title, key in (("Model summary (explained)", "cnn"), ("LSTM summary", "lstm")):
        parts += [f"<h2>{title}</h2>", f"<pre>{html.escape(texts[key])}</pre>"]
    gates = numbers["gates"]
    rows = "".join(f"<tr><th>{g}</th><td>{gates[g]['near_0']:.1%}</td>"
                   f"<td>{gates[g]['near_1']:.1%}</td><td>{gates[g]['mean']:.3f}</td></tr>"
                   for g in viz.GATES)
    parts += ["<h2>LSTM gate statistics</h2>",
              "<table><tr><th>gate</th><th>&lt; 0.1</th><th>&gt; 0.9</th><th>mean</th></tr>"
              f"{rows}</table>",
              f"<p>Replayed in NumPy from the weights; largest difference from the layer's own "
              f"h: {gates['h_max_abs_diff']:.1e}.</p>"]
    if not figures:
        parts.append('<p>Figures skipped: matplotlib is not installed (pip install '
                     '"shenjing[plot]").</p>')
    for name, figure, caption in figures:
        parts += [f"<h2>{html.escape(name[7:-4].replace('_', ' '))}</h2>",
                  f'<img alt="{html.escape(name)}" src="data:image/png;base64,'
                  f'{viz.figure_base64(figure)}">', f"<p>{html.escape(caption)}</p>"]
    parts.append("</body></html>")
    return "\n".join(parts)
