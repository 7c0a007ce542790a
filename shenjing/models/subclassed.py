"""Subclassed models: ``class M(Model)`` with layers assigned in ``__init__`` and its own call.

Such a model has no graph: its layers are the ones it holds as attributes (layers/tracking.py),
built by the first call, or by ``model.build(input_shape)``, which runs call on a batch of
zeros of that shape (inference mode, no autograd). After that, ``inputs``/``outputs`` are
placeholders of the shapes seen, so that compile, fit and summary can count inputs and outputs
as they do for a graph; the model's own node is their source.
"""

from __future__ import annotations

from ..errors import ArgumentError
from ..layers.base import Layer, Node, SymbolicTensor


def call(model, layer_call, inputs, *args, training=None, **kwargs):
    """Model.__call__ of a subclassed model: Layer.__call__, then note the shapes seen."""
    first = not model.built
    outputs = layer_call(model, inputs, *args, training=training, **kwargs)
    if first and not _symbolic(outputs):
        note_shapes(model, _shapes(inputs), _shapes(outputs))
    return outputs


def build(model, input_shape):
    """Run call once on zeros of input_shape (the batch axis may be None) to build every layer
    the model holds; a call within that run (from Layer.__call__'s own build) does nothing."""
    if model.__dict__.get("_building"):
        return
    model._building = True
    try:
        input_shape = _as_shape(model, input_shape)
        output_shape = Layer._infer_output_shape(model, input_shape)
    finally:
        model._building = False
    model.built = True
    note_shapes(model, input_shape, output_shape)


def note_shapes(model, input_shape, output_shape):
    """inputs, outputs, input_shape and output_shape of a built subclassed model."""
    input_shape, output_shape = _no_batch(input_shape), _no_batch(output_shape)
    model.input_shape, model.output_shape = input_shape, output_shape
    model._single_input = not isinstance(input_shape, list)
    model._single_output = not isinstance(output_shape, list)
    model.inputs = [SymbolicTensor(s, model.dtype) for s in _listed(input_shape)]
    node = Node(model, model.inputs, {}, list(_listed(output_shape)), model.dtype)
    model.outputs = list(node.outputs)


def from_config(cls, config):
    """``cls(**config)``, as Keras rebuilds a subclassed model; a clear error if the class's
    constructor does not take what its get_config returns."""
    try:
        return cls(**config)
    except TypeError as error:
        raise ArgumentError(
            f"{cls.__name__}: cannot rebuild the model from its config {sorted(config)} "
            f"({error}). A subclassed model is saved by its get_config: override get_config "
            "to return the arguments of __init__ (with super().get_config()), or from_config "
            "to rebuild it.") from error


def _as_shape(model, shape):
    if isinstance(shape, list) and shape and isinstance(shape[0], (list, tuple)):
        return [tuple(s) for s in shape]
    if not isinstance(shape, (list, tuple)) or not all(s is None or isinstance(s, int)
                                                       for s in shape):
        raise ArgumentError(f"Model '{model.name}': build expects an input shape such as "
                            f"(None, 8), or a list of them, got {shape!r:.80}.")
    return tuple(shape)


def _shapes(x):
    if isinstance(x, (list, tuple)):
        return [tuple(item.shape) for item in x]
    return tuple(x.shape)


def _symbolic(x):
    items = x if isinstance(x, (list, tuple)) else [x]
    return any(isinstance(item, SymbolicTensor) for item in items)


def _listed(shape):
    return shape if isinstance(shape, list) else [shape]


def _no_batch(shape):
    if isinstance(shape, list):
        return [_no_batch(s) for s in shape]
    return (None, *shape[1:]) if shape else shape
