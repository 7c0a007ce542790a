"""Three ways to connect a 100x100 image to 10 hidden units, counted and trained side by side.

fully connected: every unit sees every pixel, Dense(10): 100 * 100 * 10 = 100000 weights.
locally connected: each unit sees its own 10x10 patch, LocallyConnected2D(1, 10, strides=
(100, 10)) puts 1 x 10 patches along the top strip: 10 * (10 * 10) = 1000 weights.
shared (convolution): the same ten patches through one 10x10 kernel, Conv2D(1, 10, strides=
(100, 10)): 10 * 10 = 100 weights. No biases, so the counts are the weights alone.

The task is synthetic on purpose: stripes, horizontal or vertical, with random period (4-8
pixels), phase and a small tilt, under strong pixel noise. Like natural texture it is
stationary, the same statistics in every patch, which is the assumption weight sharing makes,
and a strip of ten patches sees enough of it (MNIST digits would leave ten patches mostly
blank). With 1,000 training images the 100000 weights memorize, the 100 generalize.
"""

from __future__ import annotations

import time

import numpy as np

from .. import layers, optimizers, utils, viz
from ..models import Sequential
from . import plotting, prepare, save, say, write_json

SIZE, UNITS, PATCH = 100, 10, 10
SETTINGS = {False: dict(n_train=1000, n_test=1000, epochs=20),
            True: dict(n_train=600, n_test=400, epochs=12)}
KINDS = ("fully connected", "locally connected", "shared (convolution)")


def stripes(n, seed=0, amplitude=0.7, noise=1.0, size=SIZE):
    """Noisy stripe images (n, size, size, 1) float32; label 0 horizontal, 1 vertical.

    x = amplitude * sin(2 pi u / period + phase) + noise * N(0, 1), u the coordinate across the
    stripes (tilted by up to 0.2 rad), period ~ U[4, 8], phase ~ U[0, 2 pi).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    angle = np.where(y == 0, np.pi / 2, 0.0) + rng.uniform(-0.2, 0.2, n)
    period, phase = rng.uniform(4, 8, n), rng.uniform(0, 2 * np.pi, n)
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    x = np.empty((n, size, size, 1), np.float32)
    for i in range(n):
        across = cols * np.cos(angle[i]) + rows * np.sin(angle[i])
        wave = amplitude * np.sin(2 * np.pi * across / period[i] + phase[i])
        x[i, ..., 0] = wave + noise * rng.standard_normal((size, size))
    return x, y


def hidden_layer(kind):
    """The layer that connects the image to the 10 hidden units, as described above."""
    strides = (SIZE, PATCH)  # one row of ten side-by-side patches
    if kind == "fully connected":
        return layers.Dense(UNITS, use_bias=False, name="fully_connected")
    if kind == "locally connected":
        return layers.LocallyConnected2D(1, PATCH, strides=strides, use_bias=False,
                                         name="locally_connected")
    return layers.Conv2D(1, PATCH, strides=strides, use_bias=False, name="shared")


def build(kind, seed=0):
    utils.set_seed(seed)
    hidden = hidden_layer(kind)
    stack = [layers.Input((SIZE, SIZE, 1))]
    stack += [layers.Flatten(), hidden] if kind == "fully connected" else [hidden,
                                                                         layers.Flatten()]
    stack += [layers.Activation("relu"), layers.Dense(2, activation="softmax", name="head")]
    return Sequential(stack, name=kind.split()[0]), hidden


def run(out_dir, small=False, seed=0, verbose=True):
    """Build, count and train the three networks; returns their numbers and writes
    connectivity.png, connectivity_weights.png and connectivity.json."""
    settings = SETTINGS[bool(small)]
    out, files = prepare(out_dir), []
    x_train, y_train = stripes(settings["n_train"], seed)
    x_test, y_test = stripes(settings["n_test"], seed + 1)
    numbers = {"settings": settings, "kinds": list(KINDS), "weights": [], "head_params": [],
               "test_accuracy": [], "train_accuracy": [], "seconds": []}
    formulas = {KINDS[0]: f"{SIZE} * {SIZE} * {UNITS}",
                KINDS[1]: f"{UNITS} * ({PATCH} * {PATCH})", KINDS[2]: f"{PATCH} * {PATCH}"}
    say(verbose, f"Connecting a {SIZE}x{SIZE} image to {UNITS} hidden units (stripes task, "
                 f"{settings['n_train']} training images, {settings['n_test']} test):")
    hiddens = {}
    for kind in KINDS:
        model, hidden = build(kind, seed)
        hiddens[kind] = hidden
        model.compile(optimizer=optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        start = time.perf_counter()
        history = model.fit(x_train, y_train, epochs=settings["epochs"], batch_size=16,
                            verbose=0)
        seconds = time.perf_counter() - start
        _, accuracy = model.evaluate(x_test, y_test, batch_size=200, verbose=0)
        weights = hidden.count_params()
        numbers["weights"].append(weights)
        numbers["head_params"].append(model.get_layer("head").count_params())
        numbers["test_accuracy"].append(float(accuracy))
        numbers["train_accuracy"].append(float(history.history["accuracy"][-1]))
        numbers["seconds"].append(seconds)
        say(verbose, f"  {kind:<21} {formulas[kind]:>15} = {weights:>6} weights;  test "
                     f"accuracy {accuracy:.1%} (train {history.history['accuracy'][-1]:.1%}), "
                     f"{seconds:.1f} s for {settings['epochs']} epochs")
    numbers["examples"] = x_test[:2, ..., 0], y_test[:2]
    if plotting(verbose):
        save(_plot_bars(numbers), out / "connectivity.png", files)
        save(_plot_weights(numbers, hiddens), out / "connectivity_weights.png", files)
    numbers.pop("examples")
    write_json(numbers, out / "connectivity.json", files)
    numbers["files"] = files
    say(verbose, *(f"wrote {f}" for f in files))
    return numbers


def _plot_bars(numbers):
    figure = viz.new_figure(12, 3.8)
    labels = ["fully\nconnected", "locally\nconnected", "shared\n(convolution)"]
    colors = ["tab:gray", "tab:blue", "tab:green"]
    panels = (("weights", "connection weights (log scale)", "{:d}"),
              ("test_accuracy", "test accuracy", "{:.1%}"),
              ("seconds", "training time (s)", "{:.1f}"))
    for index, (key, title, form) in enumerate(panels):
        axis = figure.add_subplot(1, 3, index + 1)
        bars = axis.bar(labels, numbers[key], color=colors)
        axis.bar_label(bars, [form.format(v) for v in numbers[key]], fontsize=8)
        axis.set_title(title, fontsize=10)
        if key == "weights":
            axis.set_yscale("log")
            axis.set_ylim(30, 5e5)
        if key == "test_accuracy":
            axis.scatter(labels, numbers["train_accuracy"], color="black", marker="_", s=300,
                         label="train accuracy", zorder=3)
            axis.axhline(0.5, color="gray", ls=":", lw=0.8)
            axis.set_ylim(0, 1.1)
            axis.legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{SIZE}x{SIZE} image -> {UNITS} hidden units -> 2 classes "
                    f"({numbers['settings']['n_train']} training images)", fontsize=10)
    return figure


def _plot_weights(numbers, hiddens):
    from matplotlib.patches import Rectangle

    figure = viz.new_figure(13, 3.6)
    grid = figure.add_gridspec(2, 6)
    images, labels = numbers["examples"]
    for row in range(2):
        axis = figure.add_subplot(grid[row, 0])
        axis.imshow(images[row], cmap="gray")
        axis.add_patch(Rectangle((-0.5, -0.5), SIZE, PATCH, fill=False, color="tab:red", lw=1))
        axis.set_title(["horizontal", "vertical"][labels[row]] + " (red: the 10 patches)",
                       fontsize=7)
        axis.axis("off")
    panels = ((KINDS[0], grid[:, 1:3], viz.kernel_tiles(hiddens[KINDS[0]], (SIZE, SIZE))[0],
               "fully connected: unit 0's 10000 weights"),
              (KINDS[2], grid[:, 5], viz.kernel_tiles(hiddens[KINDS[2]])[0],
               "shared: the one 10x10 kernel"))
    for _, place, tile, title in panels:
        axis = figure.add_subplot(place)
        limit = np.abs(tile).max()
        axis.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    local = viz.kernel_tiles(hiddens[KINDS[1]])
    padded = [np.pad(t, ((0, 1), (0, 1)), constant_values=np.nan) for t in local]
    half = len(padded) // 2
    strip = np.concatenate([np.concatenate(padded[:half], axis=1),
                            np.concatenate(padded[half:], axis=1)], axis=0)
    axis = figure.add_subplot(grid[:, 3:5])
    limit = np.nanmax(np.abs(strip))
    axis.imshow(strip, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axis.set_title("locally connected: each unit's own 10x10 kernel\n(units 0-4 top, 5-9 below)", fontsize=8)
    axis.axis("off")
    figure.suptitle("Learned weights (red > 0, blue < 0)", fontsize=10)
    return figure
