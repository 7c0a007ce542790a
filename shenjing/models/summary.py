"""The Keras summary table: layer (type), output shape, parameter count, then the totals."""

from ..layers.base import format_shape


def _size(count: int, itemsize: int = 4) -> str:
    size = float(count * itemsize)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024


def summary_rows(model):
    """(name (type), output shape, params) per layer; Sequential hides its InputLayer."""
    rows = []
    for layer in model.layers:
        kind = type(layer).__name__
        if not layer.built:
            rows.append((f"{layer.name} ({kind})", "?", "0 (unbuilt)"))
            continue
        shape = layer.output_shape
        shape_text = (", ".join(format_shape(s) for s in shape) if isinstance(shape, list)
                      else format_shape(shape))
        rows.append((f"{layer.name} ({kind})", shape_text, str(layer.count_params())))
    return rows


def summary_text(model, line_length=None):
    rows = summary_rows(model)
    widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 if rows else len(h) + 2
              for i, h in enumerate(("Layer (type)", "Output Shape", "Param #"))]
    widths = [max(w, m) for w, m in zip(widths, (29, 26, 10))]
    total_width = line_length or sum(widths) + 1

    def line(cells):
        return " " + "".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    weights = model.weights
    trainable = sum(w.size for w in model.trainable_weights)
    total = sum(w.size for w in weights)
    itemsize = weights[0].dtype.itemsize if weights else 4
    out = [f'Model: "{model.name}"', "_" * total_width,
           line(("Layer (type)", "Output Shape", "Param #")), "=" * total_width]
    for i, row in enumerate(rows):
        out.append(line(row))
        out.append("_" * total_width if i < len(rows) - 1 else "=" * total_width)
    if not rows:
        out.append("=" * total_width)
    out += [f"Total params: {total} ({_size(total, itemsize)})",
            f"Trainable params: {trainable} ({_size(trainable, itemsize)})",
            f"Non-trainable params: {total - trainable} ({_size(total - trainable, itemsize)})",
            "_" * total_width]
    return "\n".join(out)


