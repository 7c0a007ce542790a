"""The Keras summary table: layer (type), output shape, parameter count, then the totals."""

from ..explain import explain_model, explanation_lines, mb
from ..layers.base import format_shape


def _size(count: int, itemsize: int = 4) -> str:
    size = float(count * itemsize)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def _nested(layer):
    """The layers shown under ``layer`` with expand_nested: a model's layers, or the layers a
    custom layer holds as attributes."""
    from .functional import Model

    return layer.layers if isinstance(layer, Model) else layer._sublayers()


def summary_rows(model, expand_nested=False):
    """(name (type), output shape, params) per layer; Sequential hides its InputLayer.
    expand_nested: each layer's own layers follow it, indented, at any depth."""
    rows, depths = [], []

    def add(layer, depth, seen):
        kind, indent = type(layer).__name__, "  " * depth
        if not layer.built:
            rows.append((f"{indent}{layer.name} ({kind})", "?", "0 (unbuilt)"))
        else:
            shape = layer.output_shape
            shape_text = ("?" if shape is None else
                          ", ".join(format_shape(s) for s in shape) if isinstance(shape, list)
                          else format_shape(shape))
            rows.append((f"{indent}{layer.name} ({kind})", shape_text,
                         str(layer.count_params())))
        depths.append(depth)
        if expand_nested and id(layer) not in seen:
            for inner in _nested(layer):
                add(inner, depth + 1, seen | {id(layer)})

    for layer in model.layers:
        add(layer, 0, {id(model)})
    return (rows, depths) if expand_nested else rows


def _extra_cells(explanations, show_macs, show_memory):
    """Per layer: the MACs cell and the two memory cells, '?' where unknown or unbuilt."""
    cells = []
    for e in explanations:
        row = ()
        if show_macs:
            row += ("?" if e is None or e.macs is None else str(e.macs),)
        if show_memory:
            row += ("?",) * 2 if e is None else (mb(e.param_bytes), mb(e.activation_bytes))
        cells.append(row)
    return cells


def _extra_totals(explanations, show_macs, show_memory):
    known = [e for e in explanations if e is not None]
    lines = []
    if show_macs:
        unknown = len(explanations) - sum(e.macs is not None for e in known)
        total = sum(e.macs for e in known if e.macs is not None)
        lines.append(f"Multiply-adds per sample: {total}"
                     + (f" (+ {unknown} layer(s) unknown)" if unknown else ""))
    if show_memory:
        activations = sum(e.activation_bytes or 0 for e in known)
        lines.append(f"Memory: parameters {mb(sum(e.param_bytes for e in known))} MB, "
                     f"activations {mb(activations)} MB per sample")
    return lines


def summary_text(model, line_length=None, explain=False, show_macs=False, show_memory=False,
                 expand_nested=False):
    """The table. explain: under each layer, the formulas of its output shape and parameter
    count with the numbers filled in; show_macs: a multiply-adds column (per sample);
    show_memory: parameters and activations (per sample) in MB; expand_nested: the layers of
    nested models and custom layers under them, indented (not explained)."""
    rows, depths = summary_rows(model, expand_nested=True)
    if not expand_nested:
        rows = [row for row, depth in zip(rows, depths) if depth == 0]
        depths = [0] * len(rows)
    headers = ("Layer (type)", "Output Shape", "Param #")
    minimums = (29, 26, 10)
    explanations = explain_model(model) if explain or show_macs or show_memory else None
    if explanations is not None and expand_nested:
        top = iter(explanations)
        explanations = [next(top) if depth == 0 else None for depth in depths]
    if show_macs or show_memory:
        extra = _extra_cells(explanations, show_macs, show_memory)
        rows = [row + cells for row, cells in zip(rows, extra)]
        headers += ("MACs",) * show_macs + ("Params MB", "Activations MB") * show_memory
        minimums += (14,) * show_macs + (12, 16) * show_memory
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 if rows else len(h) + 2
              for i, h in enumerate(headers)]
    widths = [max(w, m) for w, m in zip(widths, minimums)]
    total_width = line_length or sum(widths) + 1

    def line(cells):
        return " " + "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    weights = model.weights
    trainable = sum(w.size for w in model.trainable_weights)
    total = sum(w.size for w in weights)
    itemsize = weights[0].dtype.itemsize if weights else 4
    out = [f'Model: "{model.name}"', "_" * total_width,
           line(headers), "=" * total_width]
    for i, row in enumerate(rows):
        out.append(line(row))
        if explain and explanations[i] is not None:
            out += explanation_lines(explanations[i], indent="    ")
        out.append("_" * total_width if i < len(rows) - 1 else "=" * total_width)
    if not rows:
        out.append("=" * total_width)
    out += [f"Total params: {total} ({_size(total, itemsize)})",
            f"Trainable params: {trainable} ({_size(trainable, itemsize)})",
            f"Non-trainable params: {total - trainable} ({_size(total - trainable, itemsize)})"]
    if explanations is not None:
        out += _extra_totals(explanations, show_macs, show_memory)
    out.append("_" * total_width)
    return "\n".join(out)
