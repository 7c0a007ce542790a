"""Explained shapes and parameter counts: each layer's formulas with the numbers filled in.

explain_layer(layer, input_shape) -> Explanation; explain_model(model) -> one per layer. Output
size per spatial axis (n input, k kernel, d dilation, s stride, pads before and after):
    out = floor((n + before + after - k_eff) / s) + 1,   k_eff = d*(k - 1) + 1,
which is ceil(n / s) for 'same' (total pad max((ceil(n/s) - 1)*s + k_eff - n, 0), odd pixel
after). Multiply-adds (MACs) count the weight products per sample: conv OH*OW*KH*KW*C*F, dense
d*units, LSTM T*4u*(d + u); normalization one per value; pooling, merging and reshaping none.
Memory: parameters and one sample's output activations, in MB (1024**2 bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ArgumentError
from .layers.base import format_shape
from .ops.conv import conv_output_length, resolve_padding

MB = 1024 ** 2
_AXES = {1: ("steps",), 2: ("height", "width")}


@dataclass
class Explanation:
    """One layer explained; macs per sample (None when unknown), bytes per parameter set and
    per sample of output."""

    name: str
    kind: str
    input_shape: object
    output_shape: object
    shape_formula: list[str]
    params: int
    params_formula: str
    non_trainable: int = 0
    macs: int | None = 0
    macs_formula: str = "0"
    param_bytes: int = 0
    activation_bytes: int | None = 0
    dtype: str = "float32"
    pads: tuple | None = None  # (before, after) per spatial axis, for windowed layers

    @property
    def bytes(self) -> int:
        """Parameters plus one sample's activations."""
        return self.param_bytes + (self.activation_bytes or 0)


def _mul(values) -> str:
    return "*".join(str(v) for v in values)


def _known(values) -> bool:
    return all(v is not None for v in values)


def axis_formula(label, n, k, stride=1, padding="valid", dilation=1):
    """(out, (before, after), text) of one spatial axis: floor((n + before + after - k_eff) / s)
    + 1 with k_eff = d*(k - 1) + 1; padding 'valid', 'same', an int or a (before, after) pair."""
    if n is None:
        return None, None, f"{label}: unknown input size, output unknown"
    (before, after), = resolve_padding(padding, (n,), (k,), (stride,), (dilation,))
    out = conv_output_length(n, k, stride, padding, dilation)
    k_eff = dilation * (k - 1) + 1
    text = f"{label}: out = floor(({n} + {before} + {after} - {k_eff}) / {stride}) + 1 = {out}"
    if dilation > 1:
        text += f"; k_eff = {dilation}*({k} - 1) + 1 = {k_eff}"
    if padding == "same":
        c = -(-n // stride)
        text += (f"; same: ceil({n} / {stride}) = {c}, pad max(({c} - 1)*{stride} + {k_eff} - "
                 f"{n}, 0) = {before + after} -> ({before}, {after})")
    return out, (before, after), text


def _axis_paddings(padding, rank):
    """Per-axis padding specs: the mode string for every axis, else explicit (before, after)."""
    if isinstance(padding, str):
        return [padding.lower()] * rank
    ones = (1,) * rank
    return list(resolve_padding(padding, ones, ones, ones, ones))


def _split(layer, shape):
    """(spatial sizes, channels) of a channels-last or channels-first input."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return list(shape[2:]), shape[1]
    return list(shape[1:-1]), shape[-1]


def _join(layer, batch, spatial, channels):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return (batch, channels, *spatial)
    return (batch, *spatial, channels)


def _windows(layer, shape, window, dilations):
    """Output sizes, formula lines and (before, after) pads of a sliding window."""
    spatial, _ = _split(layer, shape)
    specs = _axis_paddings(layer.padding, len(spatial))
    outs, lines, pads = [], [], []
    for label, n, k, s, p, d in zip(_AXES[len(spatial)], spatial, window, layer.strides, specs,
                                    dilations):
        out, pad, text = axis_formula(label, n, k, s, p, d)
        outs.append(out)
        lines.append(text)
        pads.append(pad)
    return outs, lines, tuple(pads)


# ----- one function per layer family: (layer, input shape) -> Explanation fields ----------


def _conv(layer, shape):
    """Conv1D/Conv2D params (k1*...*C + 1) * filters; LocallyConnected2D params
    OH*OW*(KH*KW*C + 1)*filters (one kernel per output position). MACs OH*OW*KH*KW*C*filters."""
    outs, lines, pads = _windows(layer, shape, layer.kernel_size,
                                 getattr(layer, "dilation_rate", (1,) * len(layer.kernel_size)))
    channels, f = _split(layer, shape)[1], layer.filters
    fan_in = _mul((*layer.kernel_size, channels))
    per_filter = math.prod(layer.kernel_size) * channels
    core = f"({fan_in} + 1)" if layer.use_bias else fan_in
    params = (per_filter + layer.use_bias) * f
    text = f"{core} * {f}"
    if type(layer).__name__.startswith("LocallyConnected"):
        params *= math.prod(outs) if _known(outs) else 0
        text = f"{_mul(outs)} * {core} * {f}"
    macs = math.prod(outs) * per_filter * f if _known(outs) else None
    return {"output_shape": _join(layer, shape[0], outs, f), "shape_formula": lines, "pads": pads,
            "params": params, "params_formula": f"{text} = {params}", "macs": macs,
            "macs_formula": f"{_mul(outs)} * {fan_in} * {f}"}


def _pooling(layer, shape):
    """Windowed pooling: the window formula with k = pool_size, d = 1. No params, no MACs."""
    outs, lines, pads = _windows(layer, shape, layer.pool_size, (1,) * len(layer.pool_size))
    return {"output_shape": _join(layer, shape[0], outs, _split(layer, shape)[1]),
            "shape_formula": lines, "pads": pads}


def _global_pooling(layer, shape):
    """Global pooling reduces every spatial axis: (N, ..., C) -> (N, C)."""
    out = tuple(layer.compute_output_shape(shape))
    spatial = _split(layer, shape)[0]
    return {"output_shape": out, "shape_formula": [
        f"reduce {_mul(spatial)} positions per channel -> {format_shape(out)}"]}


def _dense(layer, shape):
    """Dense params (d + 1) * units; MACs (positions) * d * units."""
    d, u, lead = shape[-1], layer.units, list(shape[1:-1])
    params = (d + layer.use_bias) * u
    core = f"({d} + 1)" if layer.use_bias else str(d)
    factors = [*lead, d, u]
    return {"output_shape": (*shape[:-1], u),
            "shape_formula": [f"last axis: {d} -> units = {u}"],
            "params": params, "params_formula": f"{core} * {u} = {params}",
            "macs": math.prod(factors) if _known(lead) else None,
            "macs_formula": " * ".join(str(v) for v in factors)}


def _recurrent(layer, shape):
    """SimpleRNN (u + d + 1) * u, LSTM 4 * (u + d + 1) * u, GRU 3 * (u + d + 2) * u with
    reset_after (two bias rows) else 3 * (u + d + 1) * u. MACs T * gates*u * (d + u)."""
    kind, (batch, steps, d), u = type(layer).__name__, shape, layer.units
    gates = {"LSTM": 4, "GRU": 3}.get(kind, 1)
    biases = (2 if kind == "GRU" and layer.reset_after else 1) if layer.use_bias else 0
    params = gates * (u + d + biases) * u
    inner = f"({u} + {d}" + (f" + {biases})" if biases else ")")
    text = f"{inner} * {u}" if gates == 1 else f"{gates} * {inner} * {u}"
    output = (batch, steps, u) if layer.return_sequences else (batch, u)
    lines = [f"return_sequences: (batch, steps, units) = {format_shape(output)}"
             if layer.return_sequences else
             f"last step only: (batch, units) = {format_shape(output)}"]
    if layer.return_state:
        states = len(layer.state_names)
        output = [output] + [(batch, u)] * states
        lines.append(f"return_state: + {states} state(s) of (batch, units) = "
                     f"{format_shape((batch, u))}")
    gate_text = f"{gates}*{u}" if gates > 1 else str(u)
    macs = steps * gates * u * (d + u) if steps is not None else None
    macs_text = f"{'T' if steps is None else steps} * {gate_text} * ({d} + {u})"
    return {"output_shape": output, "shape_formula": lines, "params": params,
            "params_formula": f"{text} = {params}", "macs": macs, "macs_formula": macs_text}


def _batch_norm(layer, shape):
    """BatchNormalization params 4 * C: gamma, beta trainable, moving mean and variance not.
    MACs: one multiply-add per value (y = a*x + b at inference)."""
    c = shape[layer.axis]
    per = 2 + layer.scale + layer.center
    frozen = 2 * c if layer.trainable else per * c
    values = list(shape[1:])
    return {"output_shape": tuple(shape), "shape_formula": ["same as input"], "params": per * c,
            "params_formula": f"{per} * {c} = {per * c} ({frozen} non-trainable)",
            "non_trainable": frozen, "macs": math.prod(values) if _known(values) else None,
            "macs_formula": _mul(values)}


def _group_norm(layer, shape):
    """LayerNormalization / GroupNormalization params 2 * C (gamma, beta; C the product of the
    normalized sizes), all trainable; rms_scaling keeps gamma only. MACs one per value."""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    sizes = [shape[a] for a in axes]
    rms = getattr(layer, "rms_scaling", False)
    per = (layer.scale or rms) + (layer.center and not rms)
    params = per * math.prod(sizes)
    line = "same as input"
    if hasattr(layer, "groups"):
        groups = sizes[0] if layer.groups == -1 else layer.groups
        line += f" ({groups} groups of {sizes[0]} / {groups} = {sizes[0] // groups} channels)"
    values = list(shape[1:])
    return {"output_shape": tuple(shape), "shape_formula": [line], "params": params,
            "params_formula": f"{per} * {_mul(sizes)} = {params}",
            "macs": math.prod(values) if _known(values) else None,
            "macs_formula": _mul(values)}


def _embedding(layer, shape):
    """Embedding params input_dim * output_dim; a lookup, no MACs."""
    params = layer.input_dim * layer.output_dim
    out = (*shape, layer.output_dim)
    line = f"ids {format_shape(shape)} + (output_dim,) = {format_shape(out)}"
    return {"output_shape": out, "params": params, "shape_formula": [line],
            "params_formula": f"{layer.input_dim} * {layer.output_dim} = {params}"}


def _flatten(layer, shape):
    """Flatten: (N, d1, d2, ...) -> (N, d1*d2*...)."""
    size = math.prod(shape[1:])
    return {"output_shape": (shape[0], size),
            "shape_formula": [f"out = {_mul(shape[1:])} = {size}"]}


def _reshape(layer, shape):
    """Reshape keeps the product of the non-batch sizes; a -1 takes size / (the others)."""
    out = tuple(layer.compute_output_shape(shape))
    size = math.prod(shape[1:]) if _known(shape[1:]) else None
    line = f"{_mul(shape[1:])} = {size} values -> {format_shape(out[1:])}"
    if -1 in layer.target_shape and size is not None:
        known = [s for s in layer.target_shape if s != -1]
        line += f"; -1 = {size} / {_mul(known) or 1} = {size // math.prod(known)}"
    return {"output_shape": out, "shape_formula": [line]}


def _zero_padding(layer, shape):
    """ZeroPadding2D: n + before + after per axis."""
    spatial, c = _split(layer, shape)
    outs, lines = [], []
    for label, n, (before, after) in zip(_AXES[2], spatial, layer.padding):
        outs.append(None if n is None else n + before + after)
        lines.append(f"{label}: {n} + {before} + {after} = {outs[-1]}")
    return {"output_shape": _join(layer, shape[0], outs, c), "shape_formula": lines}


def _concatenate(layer, shape):
    """Concatenate: the sizes along the axis add up."""
    out = tuple(layer.compute_output_shape(shape))
    axis = layer.axis % len(shape[0])
    sizes = [s[axis] for s in shape]
    return {"output_shape": out, "shape_formula": [
        f"axis {layer.axis}: {' + '.join(str(s) for s in sizes)} = {out[axis]}"]}


def _merge(layer, shape):
    return {"output_shape": tuple(layer.compute_output_shape(shape)),
            "shape_formula": ["same as each input (elementwise)"]}


def _identity(layer, shape):
    return {"output_shape": shape, "shape_formula": ["same as input"]}


def _bidirectional(layer, shape):
    """Bidirectional: forward + backward copy, params 2 * (inner); concat doubles units."""
    fwd = explain_layer(layer.forward_layer, shape)
    bwd = explain_layer(layer.backward_layer, shape)
    lhs_f, lhs_b = (e.params_formula.split(" = ")[0] for e in (fwd, bwd))
    params = fwd.params + bwd.params
    text = f"2 * ({lhs_f})" if lhs_f == lhs_b else f"({lhs_f}) + ({lhs_b})"
    lines = list(fwd.shape_formula)
    if layer.return_state or layer.merge_mode is None:
        out = layer.compute_output_shape(shape)
        lines.append(f"merge_mode {layer.merge_mode!r}: {shape_text(out)}")
    else:
        seq = fwd.output_shape
        u = seq[-1]
        merged = 2 * u if layer.merge_mode == "concat" else u
        out = (*seq[:-1], merged)
        lines.append(f"concat: 2 * {u} = {merged}" if layer.merge_mode == "concat" else
                     f"{layer.merge_mode}: {u} (elementwise)")
    both = None if fwd.macs is None or bwd.macs is None else fwd.macs + bwd.macs
    macs_text = (f"2 * ({fwd.macs_formula})" if fwd.macs_formula == bwd.macs_formula
                 else f"({fwd.macs_formula}) + ({bwd.macs_formula})")
    return {"output_shape": out, "shape_formula": lines, "params": params,
            "params_formula": f"{text} = {params}", "macs": both, "macs_formula": macs_text,
            "non_trainable": fwd.non_trainable + bwd.non_trainable}


def _time_distributed(layer, shape):
    """TimeDistributed: the inner layer once per step, one set of weights; MACs T * inner."""
    inner = explain_layer(layer.layer, (None, *shape[2:]))
    steps = shape[1]
    out = (shape[0], steps, *inner.output_shape[1:])
    macs = None if inner.macs is None or steps is None else steps * inner.macs
    return {"output_shape": out, "params": inner.params, "params_formula": inner.params_formula,
            "shape_formula": [f"each of {steps} steps: {t}" for t in inner.shape_formula],
            "macs": macs, "macs_formula": f"{steps} * ({inner.macs_formula})",
            "non_trainable": inner.non_trainable}


def _fallback(layer, shape):
    """Any other layer: its own compute_output_shape and count_params, no formula."""
    built = layer.built  # as asked: a layer without its own compute_output_shape builds in it
    out = layer.compute_output_shape(shape)
    params = layer.count_params() if built else 0
    how = "counted" if built else "not built, unknown"
    return {"output_shape": out, "params": params, "macs": None, "macs_formula": "?",
            "shape_formula": [f"compute_output_shape: {out}"],
            "params_formula": f"{params} ({how}, no formula for {type(layer).__name__})",
            "non_trainable": sum(w.size for w in layer.non_trainable_weights)}


_EXPLAINERS = {
    "Conv1D": _conv, "Conv2D": _conv, "LocallyConnected2D": _conv,
    "MaxPooling1D": _pooling, "MaxPooling2D": _pooling, "AveragePooling1D": _pooling,
    "AveragePooling2D": _pooling, "GlobalAveragePooling1D": _global_pooling,
    "GlobalAveragePooling2D": _global_pooling, "GlobalMaxPooling1D": _global_pooling,
    "GlobalMaxPooling2D": _global_pooling, "Dense": _dense, "SimpleRNN": _recurrent,
    "LSTM": _recurrent, "GRU": _recurrent, "BatchNormalization": _batch_norm,
    "LayerNormalization": _group_norm, "GroupNormalization": _group_norm,
    "Embedding": _embedding, "Flatten": _flatten, "Reshape": _reshape,
    "ZeroPadding2D": _zero_padding, "Concatenate": _concatenate, "Add": _merge,
    "Multiply": _merge, "Activation": _identity, "Dropout": _identity, "Masking": _identity,
    "InputLayer": _identity, "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
}


def _explainer(layer):
    for cls in type(layer).__mro__:
        if cls.__name__ in _EXPLAINERS:
            return _EXPLAINERS[cls.__name__]
    return _fallback


def _output_bytes(shape, itemsize):
    shapes = shape if isinstance(shape, list) else [shape]
    if not all(_known(s[1:]) for s in shapes):
        return None
    return sum(math.prod(s[1:]) for s in shapes) * itemsize


def explain_layer(layer, input_shape=None) -> Explanation:
    """Explain layer for input_shape (batch axis first, may be None); defaults to the shape it
    was built for. The layer need not be built. Invalid shapes raise the layer's ValueError."""
    shape = layer.input_shape if input_shape is None else input_shape
    if shape is None:
        raise ArgumentError(f"explain_layer: {type(layer).__name__} '{layer.name}' is not built; "
                            "pass its input_shape, e.g. (None, 28, 28, 1).")
    shape = [tuple(s) for s in shape] if isinstance(shape, list) else tuple(shape)
    derived = layer._derives_output_shape()  # its shape comes from running call, which builds
    if type(layer).__name__ != "InputLayer" and not derived:
        layer.compute_output_shape(shape)  # the layer's own, named errors for bad shapes
    fields = {"params": 0, "params_formula": "0", **_explainer(layer)(layer, shape)}
    if not layer.trainable:
        fields["non_trainable"] = fields["params"]
    itemsize = np.dtype(layer.dtype).itemsize
    return Explanation(name=layer.name, kind=type(layer).__name__, input_shape=shape,
                       dtype=np.dtype(layer.dtype).name, param_bytes=fields["params"] * itemsize,
                       activation_bytes=_output_bytes(fields["output_shape"], itemsize),
                       **fields)


def explain_model(model) -> list[Explanation | None]:
    """One Explanation per layer of model.layers (None for a layer that is not built)."""
    return [explain_layer(layer) if layer.built and layer.input_shape is not None
            or type(layer).__name__ == "InputLayer" else None
            for layer in model.layers]


def explanation_lines(e: Explanation, indent: str = "") -> list[str]:
    """The formulas as text: 'shape' lines, 'params  Kind: formula', 'macs' when nonzero."""
    lines = [f"{indent}{'shape' if i == 0 else '':<8}{line}"
             for i, line in enumerate(e.shape_formula)]
    lines.append(f"{indent}{'params':<8}{e.kind}: {e.params_formula}")
    if e.macs:
        lines.append(f"{indent}{'macs':<8}{e.macs_formula} = {e.macs}")
    return lines


def mb(nbytes) -> str:
    """Bytes as MB text, '?' when unknown."""
    return "?" if nbytes is None else f"{nbytes / MB:.4f}"


def shape_text(shape) -> str:
    """'(None, 4, 4, 2)', or several shapes joined by commas."""
    if isinstance(shape, list):
        return ", ".join(format_shape(s) for s in shape)
    return format_shape(shape)


def format_explanation(e: Explanation) -> str:
    """A one-layer report (used by `shenjing calc`): input, formulas, output, memory."""
    lines = [f"{e.kind} on input {shape_text(e.input_shape)}", *explanation_lines(e, "  ")]
    if e.pads is not None:
        sides = [("left", "right")] if len(e.pads) == 1 else [("top", "bottom"), ("left", "right")]
        lines.append("padding: " + ", ".join(
            f"{a} {p[0]}, {b} {p[1]}" if p is not None else f"{a}/{b} unknown"
            for (a, b), p in zip(sides, e.pads)))
    lines += [f"output shape: {shape_text(e.output_shape)}",
              f"parameters: {e.params} ({e.non_trainable} non-trainable)",
              f"multiply-adds per sample: {'?' if e.macs is None else e.macs}",
              (f"memory: parameters {mb(e.param_bytes)} MB, activations "
              f"{mb(e.activation_bytes)} MB per sample ({e.dtype})")]
    return "\n".join(lines)
