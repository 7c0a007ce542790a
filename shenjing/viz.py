"""Look inside a model: feature maps, learned kernels, LSTM gate statistics, training curves.

The numeric helpers (``layer_outputs``, ``feature_maps``, ``lstm_gate_statistics``) need NumPy
only. The ``plot_*`` functions import matplotlib lazily (``pip install "shenjing[plot]"``),
draw on a non-interactive Agg canvas (never a window, never the global pyplot state) and return
the Figure; with ``path`` they also save it as a PNG.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from .errors import ArgumentError
from .ops import activation as activations
from .tensor import no_grad

GATES = ("i", "f", "c", "o")
INSTALL_HINT = 'pip install "shenjing[plot]"'


# ----- matplotlib ------------------------------------------------------------------------
def new_figure(width=8.0, height=5.0):
    """A matplotlib Figure on its own Agg canvas; ImportError with the install hint if absent."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f"shenjing.viz: plotting needs matplotlib, which is not installed; "
                          f"run {INSTALL_HINT}.") from error
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure, dpi=100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def figure_base64(figure, dpi=100) -> str:
    """The figure as a base64 PNG, ready for ``<img src="data:image/png;base64,...">``."""
    return base64.b64encode(figure_png(figure, dpi)).decode("ascii")


def _finish(figure, path):
    if path is not None:
        figure.savefig(path, format="png", dpi=100)
    return figure


# ----- intermediate outputs --------------------------------------------------------------
def _node_of(model, layer):
    for node in model._nodes:
        if node.layer is layer:
            return node
    raise ArgumentError(f"shenjing.viz: layer '{layer.name}' is not called in model "
                        f"'{model.name}'.")


def layer_outputs(model, x, layer_names, training=False):
    """{name: output ndarray} of the named layers of a built model for input x (one pass)."""
    from .models import Model

    if not getattr(model, "built", False):
        raise ArgumentError(f"shenjing.viz: model '{model.name}' is not built yet; call it on an "
                            "input (or give it an Input) first.")
    wanted = [model.get_layer(name) for name in layer_names]
    probe = Model(model.inputs, [_node_of(model, layer).output for layer in wanted],
                  name=f"{model.name}_probe")
    with no_grad():
        outputs = probe(x, training=training)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return {layer.name: np.array(out.numpy()) for layer, out in zip(wanted, outputs)}


def conv_layer_names(model):
    """Names of the model's convolution-like layers (Conv1D, Conv2D, LocallyConnected2D)."""
    from .layers.conv import _Conv
    from .layers.locally_connected import LocallyConnected2D

    return [layer.name for layer in model.layers
            if isinstance(layer, (_Conv, LocallyConnected2D))]


def feature_maps(model, image, layer_names=None):
    """{layer name: activations (H', W', filters)} of each conv layer for one image.

    image (H, W, C) or (1, H, W, C); layer_names defaults to every conv layer, in model order.
    """
    image = np.asarray(image)
    batch = image[None] if image.ndim == len(model.input_shape) - 1 else image
    if batch.shape[0] != 1:
        raise ArgumentError(f"feature_maps: expected one image (H, W, C) or (1, H, W, C), got "
                            f"shape {image.shape}.")
    names = conv_layer_names(model) if layer_names is None else list(layer_names)
    if not names:
        raise ArgumentError(f"feature_maps: model '{model.name}' has no convolution layer.")
    return {name: out[0] for name, out in layer_outputs(model, batch, names).items()}


def plot_feature_maps(model, image, path=None, layer_names=None, max_channels=16):
    """The input image, then one row per conv layer with up to max_channels feature maps."""
    maps = feature_maps(model, image, layer_names)
    columns = max(min(max_channels, m.shape[-1]) for m in maps.values())
    figure = new_figure(1.3 * (columns + 1), 1.4 * len(maps) + 0.4)
    grid = figure.add_gridspec(len(maps), columns + 1)
    picture = np.asarray(image).reshape(np.asarray(image).shape[-3:])
    axis = figure.add_subplot(grid[:, 0])
    rgb = picture.shape[-1] == 3
    axis.imshow(picture if rgb else picture.mean(axis=-1), cmap=None if rgb else "gray")
    axis.set_title("input" if picture.shape[-1] in (1, 3) else "input (channel mean)",
                   fontsize=8)
    axis.axis("off")
    for row, (name, fmap) in enumerate(maps.items()):
        if fmap.ndim == 2:  # Conv1D: (width, filters) -> one strip per filter
            fmap = fmap[None]
        for channel in range(min(max_channels, fmap.shape[-1])):
            axis = figure.add_subplot(grid[row, channel + 1])
            axis.imshow(fmap[..., channel], cmap="viridis", aspect="auto")
            axis.set_xticks([])
            axis.set_yticks([])
            if channel == 0:
                axis.set_ylabel(f"{name}\n{fmap.shape[0]}x{fmap.shape[1]}", fontsize=7)
    figure.suptitle("Feature maps (each conv layer's output for one image)", fontsize=9)
    return _finish(figure, path)


# ----- kernels ---------------------------------------------------------------------------
def kernel_tiles(layer, image_shape=None):
    """The layer's learned kernels as a list of 2-D arrays, one per filter (or unit/position).

    Conv2D (KH, KW, C, F): per filter the (KH, KW) kernel of input channel 0 (the channel mean
    if C > 1 and not 3); LocallyConnected2D: per output position the (KH, KW) kernel of filter
    0; Dense: per unit its column reshaped to image_shape (e.g. (100, 100)).
    """
    kernel = layer.kernel.numpy()
    kind = type(layer).__name__
    if kind == "LocallyConnected2D":
        kh, kw = layer.kernel_size
        return [k.reshape(kh, kw, -1).mean(axis=-1) for k in kernel[..., 0]]
    if kernel.ndim == 4:
        return [kernel[..., f].mean(axis=-1) for f in range(kernel.shape[-1])]
    if kernel.ndim == 3:  # Conv1D (K, C, F): channels x taps per filter
        return [kernel[..., f].T for f in range(kernel.shape[-1])]
    if kernel.ndim == 2 and image_shape is not None:
        return [kernel[:, u].reshape(image_shape) for u in range(kernel.shape[1])]
    raise ArgumentError(
        f"plot_kernels: cannot draw the kernel of {kind} '{layer.name}' with shape "
        f"{kernel.shape}; for Dense pass image_shape=(height, width).")


def plot_kernels(layer, path=None, image_shape=None, max_tiles=64, title=None):
    """The learned kernels as tiles on one symmetric color scale (red > 0, blue < 0)."""
    tiles = kernel_tiles(layer, image_shape)[:max_tiles]
    columns = min(len(tiles), 8 if len(tiles) > 10 else len(tiles))
    rows = -(-len(tiles) // columns)
    figure = new_figure(1.2 * columns + 0.8, 1.2 * rows + 0.5)
    limit = max(float(np.abs(t).max()) for t in tiles) or 1.0
    image = None
    for index, tile in enumerate(tiles):
        axis = figure.add_subplot(rows, columns, index + 1)
        image = axis.imshow(tile, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axis.set_xticks([])
        axis.set_yticks([])
    figure.colorbar(image, ax=figure.axes, shrink=0.8)
    figure.suptitle(title or f"{type(layer).__name__} '{layer.name}': learned kernels",
                    fontsize=9)
    return _finish(figure, path)


# ----- LSTM gates ------------------------------------------------------------------------
def _find_lstm(layer_or_model):
    from .layers.recurrent import LSTM

    if isinstance(layer_or_model, LSTM):
        return None, layer_or_model
    for layer in getattr(layer_or_model, "layers", []):
        if isinstance(layer, LSTM):
            return layer_or_model, layer
    raise ArgumentError(
        f"lstm_gate_statistics: expected an LSTM layer or a model with one, got "
        f"{type(layer_or_model).__name__} '{getattr(layer_or_model, 'name', '?')}'.")


def _lstm_input(model, layer, x):
    """What the LSTM layer sees when the model runs on x: (inputs ndarray, mask or None)."""
    from .models import Model

    if model is None:
        return np.asarray(x, layer.dtype), None
    source = _node_of(model, layer).inputs
    if any(source is t for t in model.inputs):
        return np.asarray(x, layer.dtype), None
    with no_grad():
        out = Model(model.inputs, source, name=f"{model.name}_probe")(x, training=False)
    mask = getattr(out, "_keras_mask", None)
    return np.array(out.numpy()), None if mask is None else np.asarray(mask, bool)


def _activation(name):
    fn = activations.get(name)

    def apply(v):
        return fn(v).numpy()
    return apply


def lstm_gate_statistics(layer_or_model, x, low=0.1, high=0.9):
    """How often each LSTM gate is near 0 (< low) or near 1 (> high) over a batch x.

    The recurrence is replayed in NumPy from the layer's weights (gates i, f, c, o; z = x W +
    h U + b): i, f, o are the sigmoid gates, c the tanh candidate, judged by |c| (near 1 =
    saturated at +-1). Given a model, x is the model's input and the layer is its first LSTM.
    Returns {gate: {"near_0", "near_1", "mean" (floats), "near_0_per_unit", "near_1_per_unit"
    (units,)}, "h_max_abs_diff": largest |h replayed - h from the layer itself|}.
    """
    model, layer = _find_lstm(layer_or_model)
    inputs, mask = _lstm_input(model, layer, x)
    if inputs.ndim != 3:
        raise ArgumentError(
            f"lstm_gate_statistics: LSTM '{layer.name}' needs inputs (batch, time, "
            f"features), got shape {inputs.shape}.")
    with no_grad():
        own = layer(inputs, mask=mask, training=False)  # builds an unbuilt layer too
    own = (own[0] if isinstance(own, list) else own).numpy()
    kernel, recurrent = layer.kernel.numpy(), layer.recurrent_kernel.numpy()
    bias = layer.bias.numpy() if layer.bias is not None else 0.0
    gate_fn = _activation(layer.recurrent_activation_name)
    act = _activation(layer.activation_name)
    n, steps, u = inputs.shape[0], inputs.shape[1], layer.units
    h, c = np.zeros((n, u), kernel.dtype), np.zeros((n, u), kernel.dtype)
    values = {g: [] for g in GATES}
    hs = np.zeros((n, steps, u), kernel.dtype)
    order = range(steps - 1, -1, -1) if layer.go_backwards else range(steps)
    real_steps = np.ones((n, steps), bool) if mask is None else np.asarray(mask, bool)
    for k, t in enumerate(order):  # output k is the k-th step processed (reversed inputs too)
        z = inputs[:, t] @ kernel + h @ recurrent + bias
        i, f, o = gate_fn(z[:, :u]), gate_fn(z[:, u:2 * u]), gate_fn(z[:, 3 * u:])
        g = act(z[:, 2 * u:3 * u])
        c_new = f * c + i * g
        h_new = o * act(c_new)
        real = real_steps[:, t]
        c = np.where(real[:, None], c_new, c)
        h = np.where(real[:, None], h_new, h)
        hs[:, k] = np.where(real[:, None], h, 0.0) if layer.zero_output_for_mask else h
        for name, value in zip(GATES, (i, f, np.abs(g), o)):
            values[name].append(value[real])
    replayed = hs if layer.return_sequences else h
    stats = {}
    for name in GATES:
        v = np.concatenate(values[name])  # (real steps x batch, units)
        near_0, near_1 = v < low, v > high
        stats[name] = {"near_0": float(near_0.mean()), "near_1": float(near_1.mean()),
                       "mean": float(v.mean()), "near_0_per_unit": near_0.mean(axis=0),
                       "near_1_per_unit": near_1.mean(axis=0)}
    stats["h_max_abs_diff"] = float(np.abs(replayed - own).max())
    return stats


def plot_gate_statistics(stats, path=None, title=None):
    """Per gate, each unit's fraction of steps near 0 (x) and near 1 (y), as Karpathy et al.
    (2015) draw gate saturation; bars give the totals."""
    figure = new_figure(12, 3.4)
    for index, name in enumerate(GATES):
        axis = figure.add_subplot(1, 5, index + 1)
        s = stats[name]
        axis.scatter(s["near_0_per_unit"], s["near_1_per_unit"], s=12, alpha=0.7)
        axis.plot([0, 1], [1, 0], color="gray", lw=0.5)
        axis.set_xlim(-0.03, 1.03)
        axis.set_ylim(-0.03, 1.03)
        label = "|c~|" if name == "c" else name
        axis.set_title(f"gate {label}", fontsize=9)
        axis.set_xlabel("fraction < 0.1", fontsize=8)
        if index == 0:
            axis.set_ylabel("fraction > 0.9", fontsize=8)
    axis = figure.add_subplot(1, 5, 5)
    positions = np.arange(len(GATES))
    axis.bar(positions - 0.2, [stats[g]["near_0"] for g in GATES], 0.4, label="< 0.1")
    axis.bar(positions + 0.2, [stats[g]["near_1"] for g in GATES], 0.4, label="> 0.9")
    axis.set_xticks(positions, ["i", "f", "|c~|", "o"])
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    axis.set_title("all units", fontsize=9)
    figure.suptitle(title or "LSTM gate saturation (one dot per unit)", fontsize=10)
    return _finish(figure, path)


# ----- training history ------------------------------------------------------------------
def plot_history(history, path=None, title=None):
    """One panel per metric (loss first), training and validation curves over epochs."""
    logs = getattr(history, "history", history)
    if not logs:
        raise ArgumentError("plot_history: the history is empty; train with fit() first.")
    names = [k for k in logs if not k.startswith("val_")]
    names += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in names]
    names.sort(key=lambda k: k != "loss")
    figure = new_figure(4.2 * len(names), 3.2)
    for index, name in enumerate(names):
        axis = figure.add_subplot(1, len(names), index + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            if key in logs:
                epochs = np.arange(1, len(logs[key]) + 1)
                axis.plot(epochs, logs[key], marker="o", ms=3, label=label)
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)  # whole epochs only
        axis.set_title(name, fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title or "Training history", fontsize=10)
    return _finish(figure, path)
