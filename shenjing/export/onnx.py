"""ONNX export: a model's graph of layer calls written as one ONNX graph (``onnx.helper``).

Tensors keep shenjing's channels-last layout; a convolution or pooling transposes to ONNX's
channels-first around its own node (runtimes fold the transposes that cancel). The batch axis
is the symbolic dimension "batch". Each layer class has a converter (onnx_layers, onnx_conv,
onnx_recurrent): ``convert(builder, layer, inputs, node) -> [output names]``, where inputs are
ONNX value names; a layer without one is refused, naming it and its class.

Masks (Embedding(mask_zero=True), Masking) travel beside the values as float (batch, time)
tensors; a recurrent layer moves each sample's kept steps to the front, runs with ONNX's
sequence_lens (the count of kept steps) and puts the outputs back at their steps, which is exact
for any mask (left- or right-padded, or with gaps; see onnx_recurrent).
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..io.atomic import atomic_open

DEFAULT_OPSET = 17
MIN_OPSET = 17


class ExportError(ArgumentError):
    """A model or layer that the ONNX export cannot write (the message names it)."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError("model.export(format='onnx') needs the 'onnx' package: "
                          "pip install 'shenjing[onnx]'") from None
    return onnx


def refuse(layer, why):
    """An ExportError naming the layer, its class and why."""
    return ExportError(f"ONNX export: layer '{layer.name}' ({type(layer).__name__}) cannot be "
                       f"exported: {why}")


class Builder:
    """Collects ONNX nodes and initializers; names are unique within the graph."""

    def __init__(self, opset):
        self.onnx = _onnx()
        self.opset = opset
        self.nodes, self.initializers, self.used = [], [], set()

    def name(self, hint):
        hint = "".join(c if c.isalnum() or c in "_./-:" else "_" for c in str(hint)) or "v"
        name, i = hint, 0
        while name in self.used:
            i += 1
            name = f"{hint}_{i}"
        self.used.add(name)
        return name

    def const(self, value, hint="const", dtype=None):
        """An initializer holding `value` (an array, cast to dtype if given); its name."""
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        """One node; returns its output name (or a list when outputs > 1)."""
        hint = hint or op_type.lower()
        names = [self.name(f"{hint}_out{i}" if outputs > 1 else hint) for i in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     name=self.name(f"{hint}_node"), **attrs))
        return names if outputs > 1 else names[0]

    def reduce(self, op_type, x, axes, keepdims, hint=None):
        """ReduceMean/Max/Sum over axes: an attribute before opset 18 (13 for Sum), an input
        after."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(list(axes), "axes")], hint,
                           keepdims=int(keepdims))
        return self.op(op_type, [x], hint, axes=list(axes), keepdims=int(keepdims))

    def transpose(self, x, perm, hint=None):
        return self.op("Transpose", [x], hint or "transpose", perm=list(perm))

    def scalar(self, value, dtype=np.float32, hint="scalar"):
        return self.const(np.asarray(value, dtype=dtype), hint)


def weight(variable, dtype=np.float32):
    """A layer weight as a NumPy array of the exported dtype."""
    return np.asarray(getattr(variable, "data", variable), dtype=dtype)


def _converters():
    from . import onnx_conv, onnx_layers, onnx_recurrent

    table = {}
    for module in (onnx_layers, onnx_conv, onnx_recurrent):
        table.update(module.CONVERTERS)
    return table


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def emit_graph(builder, model, input_values, input_masks, converters):
    """Convert `model`'s nodes given ONNX names for its inputs; returns (outputs, masks)."""
    from ..layers.base import InputLayer
    from ..models.functional import Model

    values, masks = {}, {}
    for symbolic, value, mask in zip(model.inputs, input_values, input_masks):
        values[id(symbolic)], masks[id(symbolic)] = value, mask
    for node in model._nodes:
        layer = node.layer
        if isinstance(layer, InputLayer):
            continue
        symbols = _as_list(node.inputs)
        xs = [values[id(t)] for t in symbols]
        in_masks = [masks.get(id(t)) for t in symbols]
        if node.kwargs:
            raise refuse(layer, f"it is called with keyword arguments {sorted(node.kwargs)} "
                                "(e.g. initial_state), which the export does not carry.")
        dtype = np.dtype(getattr(layer, "dtype", None) or "float32")
        if dtype.kind == "f" and dtype != np.float32:
            raise refuse(layer, f"its dtype is {dtype}; the export writes float32 graphs.")
        if isinstance(layer, Model) and not layer._subclassed:
            outs, out_masks = emit_graph(builder, layer, xs, in_masks, converters)
        else:
            convert = converters.get(type(layer).__name__)
            if convert is None or type(layer).__module__.split(".")[0] != "shenjing":
                raise refuse(layer, "no ONNX converter for this layer class (exported: "
                                    f"{', '.join(sorted(converters))}).")
            outs, out_masks = _convert_one(builder, layer, node, xs, in_masks, convert)
        for symbolic, value, mask in zip(node.outputs, outs, out_masks):
            values[id(symbolic)], masks[id(symbolic)] = value, mask
    return ([values[id(t)] for t in model.outputs], [masks.get(id(t)) for t in model.outputs])


def _convert_one(builder, layer, node, xs, in_masks, convert):
    """Run one converter; returns (outputs, their masks) following the layer's mask rules."""
    from . import onnx_recurrent

    mask = next((m for m in in_masks if m is not None), None)
    consumes = getattr(convert, "takes_mask", False)
    if mask is not None and not consumes and getattr(layer, "supports_masking", False) and \
            getattr(layer, "_takes_mask", False):
        raise refuse(layer, "a mask (from Embedding(mask_zero=True) or Masking) reaches it, and "
                            "the export carries masks into recurrent layers only.")
    single = len(xs) == 1 and not isinstance(node.inputs, (list, tuple))
    args = (xs[0] if single else xs)
    shapes = [t.shape for t in _as_list(node.inputs)]
    if consumes:
        outs = _as_list(convert(builder, layer, args, shapes, mask))
    else:
        outs = _as_list(convert(builder, layer, args, shapes))
    make_mask = getattr(convert, "make_mask", None)
    if make_mask is not None:
        out_mask = make_mask(builder, layer, args)
    elif consumes:
        return outs, onnx_recurrent.output_masks(layer, mask, len(outs))
    else:
        out_mask = mask if getattr(layer, "supports_masking", False) else None
    return outs, [out_mask] + [None] * (len(outs) - 1)


def _value_info(onnx, name, symbolic):
    dtype = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(symbolic.dtype))
    dims = ["batch" if i == 0 and d is None else (d if d is not None else f"{name}_dim{i}")
            for i, d in enumerate(symbolic.shape)]
    return onnx.helper.make_tensor_value_info(name, dtype, dims)


def _output_names(model):
    names, seen = [], set()
    for t in model.outputs:
        base = t.node.layer.name if t.index == 0 else f"{t.node.layer.name}_{t.index}"
        name, i = base, 0
        while name in seen:
            i += 1
            name = f"{base}_{i}"
        seen.add(name)
        names.append(name)
    return names


def build_onnx_model(model, opset_version=None):
    """The ONNX ModelProto of a built shenjing functional or Sequential model."""
    from ..models.functional import Model

    onnx = _onnx()
    if not isinstance(model, Model):
        raise ArgumentTypeError(f"ONNX export: expected a shenjing Model, got "
                                f"{type(model).__name__}.")
    if model._subclassed or not model.built or not getattr(model, "_nodes", None):
        raise ExportError(f"ONNX export: model '{model.name}' ({type(model).__name__}) has no "
                          "graph of layer calls to export (a subclassed model, or one not built "
                          "yet: give it an Input first).")
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    if isinstance(opset, bool) or not isinstance(opset, int) or not (
            MIN_OPSET <= opset <= onnx.defs.onnx_opset_version()):
        raise ArgumentError(f"ONNX export: opset_version must be an int from {MIN_OPSET} to "
                            f"{onnx.defs.onnx_opset_version()}, got {opset_version!r}.")
    builder = Builder(opset)
    in_names = [t.node.layer.name for t in model.inputs]
    out_names = _output_names(model)
    builder.used.update(in_names + out_names)  # the graph's own names, kept for its ends
    outs, _ = emit_graph(builder, model, in_names, [None] * len(in_names), _converters())
    for name, value in zip(out_names, outs):
        builder.nodes.append(onnx.helper.make_node("Identity", [value], [name],
                                                   name=builder.name(f"{name}_output")))
    graph = onnx.helper.make_graph(
        builder.nodes, model.name,
        [_value_info(onnx, n, t) for n, t in zip(in_names, model.inputs)],
        [_value_info(onnx, n, t) for n, t in zip(out_names, model.outputs)],
        builder.initializers)
    proto = onnx.helper.make_model(graph, producer_name="shenjing",
                                   opset_imports=[onnx.helper.make_opsetid("", opset)])
    # the oldest IR version that holds this opset, so that older runtimes open the file
    proto.ir_version = onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, filepath, verbose=None, input_signature=None, opset_version=None,
                **kwargs):
    """Write `model` as an ONNX file at `filepath` (atomically), checked by onnx.checker.

    Args: filepath (str or os.PathLike); verbose (print a line when done); input_signature
    (None only: the model's own Input shapes, batch axis dynamic); opset_version (None: 17).
    """
    if kwargs:
        raise ArgumentError(f"export(format='onnx'): unexpected arguments {sorted(kwargs)}.")
    if input_signature is not None:
        raise ArgumentError("export(format='onnx'): input_signature is not supported; the "
                            "model's Input shapes are used (the batch axis is dynamic).")
    proto = build_onnx_model(model, opset_version)
    data = proto.SerializeToString()
    with atomic_open(filepath, "wb", caller="export") as f:
        f.write(data)
    if verbose:
        print(f"Saved ONNX model to {filepath} ({len(proto.graph.node)} nodes, opset "
              f"{proto.opset_import[0].version}).")
