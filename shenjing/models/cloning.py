"""Copies of a model: clone_model (new layers, fresh weights, Keras 3's semantics) and the
architecture as JSON (to_json and model_from_json).

The JSON is shenjing's own config format (the one ``save`` writes), not Keras's: a Keras
``model.to_json()`` string is refused with that said. Loading looks classes up in the allow-list
of ``shenjing.saving.registry`` (and ``custom_objects``); it never imports code by name.
"""

from __future__ import annotations

import json

from ..errors import ArgumentError, ArgumentTypeError
from ..layers.base import InputLayer, SymbolicTensor, map_symbolic
from .functional import Model, Sequential
from .graph import new_input_like

FORMAT = "shenjing"


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


# ----- clone_model ------------------------------------------------------------------------
def _default_clone(layer):
    return layer.__class__.from_config(layer.get_config())


def clone_model(model, input_tensors=None, clone_function=None, call_function=None,
                recursive=False):
    """A copy of a Sequential or functional ``model`` with new layers and fresh weights.

    Args: input_tensors (symbolic tensors to build on, in the structure of ``model.input``;
    default: new Inputs like the model's); clone_function (``fn(layer) -> layer`` for each
    layer but the Inputs, default ``cls.from_config(layer.get_config())``; return the layer
    itself to share it); call_function (``fn(layer, *args, **kwargs)`` in place of each call,
    functional models only); recursive (clone nested models with clone_model, not
    clone_function). A layer called several times is cloned once. Compile settings are not
    copied (as Keras 3 copies them, compile the clone yourself).
    """
    if not isinstance(model, Model):
        raise ArgumentTypeError(f"clone_model: model must be a Sequential or functional Model, "
                                f"got {type(model).__name__}.")
    for name, fn in (("clone_function", clone_function), ("call_function", call_function)):
        if fn is not None and not callable(fn):
            raise ArgumentTypeError(f"clone_model: {name} must be callable, got {fn!r:.80}.")
    clone = _cached_clone(clone_function, call_function, bool(recursive), {})
    if isinstance(model, Sequential):
        if call_function is not None:
            raise ArgumentError("clone_model: call_function works with functional models only: "
                                "a Sequential model's layers are listed, not called, when it is "
                                "made.")
        return _clone_sequential(model, clone, input_tensors)
    if getattr(model, "_nodes", None) is None:
        raise ArgumentError(f"clone_model: model '{model.name}' has no graph of layer calls "
                            "(a subclassed model): use type(model).from_config("
                            "model.get_config()) instead.")
    return _clone_functional(model, clone, call_function, input_tensors)


def _cached_clone(clone_function, call_function, recursive, cache):
    clone_function = clone_function or _default_clone

    def clone(layer):
        if id(layer) not in cache:
            if recursive and isinstance(layer, Model):
                cache[id(layer)] = clone_model(layer, clone_function=clone_function,
                                               call_function=(None if isinstance(
                                                   layer, Sequential) else call_function),
                                               recursive=True)
            else:
                cache[id(layer)] = clone_function(layer)
        return cache[id(layer)]

    return clone


def _clone_sequential(model, clone, input_tensors):
    layers = [clone(layer) for layer in model.layers]
    first = model._input_layer
    if input_tensors is not None:
        tensors = _as_list(input_tensors)
        if len(tensors) != 1 or not isinstance(tensors[0], SymbolicTensor):
            raise ArgumentError(f"clone_model: a Sequential model takes one symbolic tensor as "
                                f"input_tensors, got {input_tensors!r:.100}.")
        tensor = tensors[0]
        start = tensor.node.layer if isinstance(tensor.node.layer, InputLayer) else (
            new_input_like(tensor).node.layer)
        layers.insert(0, start)
    elif first is not None:
        layers.insert(0, new_input_like(first.output, name=first.name).node.layer)
    return Sequential(layers, name=model.name, trainable=model.trainable)


def _clone_functional(model, clone, call_function, input_tensors):
    if input_tensors is None:
        new_inputs = [new_input_like(t, name=t.node.layer.name) for t in model.inputs]
    else:
        new_inputs = _as_list(input_tensors)
        if (len(new_inputs) != len(model.inputs)
                or not all(isinstance(t, SymbolicTensor) for t in new_inputs)):
            raise ArgumentError(f"clone_model: input_tensors must be {len(model.inputs)} symbolic "
                                f"tensor{'s' if len(model.inputs) > 1 else ''} (the structure "
                                f"of model.input), got {input_tensors!r:.100}.")
    values = {id(old): new for old, new in zip(model.inputs, new_inputs)}
    call = call_function or (lambda layer, *args, **kwargs: layer(*args, **kwargs))
    for node in model._nodes:
        if isinstance(node.layer, InputLayer):
            continue
        args = map_symbolic(lambda t: values[id(t)], node.inputs)
        kwargs = map_symbolic(lambda t: values[id(t)], node.kwargs)
        outputs = call(clone(node.layer), args, **kwargs)
        for old, new in zip(node.outputs, _as_list(outputs)):
            values[id(old)] = new
    outputs = [values[id(t)] for t in model.outputs]
    single = (model._single_input if input_tensors is None
              else not isinstance(input_tensors, (list, tuple)))
    return Model(new_inputs[0] if single else new_inputs,
                 outputs[0] if model._single_output else outputs, name=model.name,
                 trainable=model.trainable)


# ----- JSON -------------------------------------------------------------------------------
def model_to_json(model, **kwargs) -> str:
    """``{"format": "shenjing", "class_name": ..., "config": ...}`` as a JSON string."""
    from ..saving.registry import serialize_layer

    return json.dumps({"format": FORMAT, **serialize_layer(model)}, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A model (new weights) from ``model.to_json()``. Classes come from shenjing's allow-list
    and ``custom_objects`` ({name: Layer subclass}); nothing is imported by name."""
    from ..saving.registry import deserialize_layer

    if not isinstance(json_string, (str, bytes, bytearray)):
        raise ArgumentTypeError(f"model_from_json: expected a JSON string, got "
                                f"{type(json_string).__name__}.")
    try:
        spec = json.loads(json_string)
    except (ValueError, RecursionError) as error:
        raise ArgumentError(f"model_from_json: not valid JSON ({error}).") from error
    if not isinstance(spec, dict):
        raise ArgumentError(f"model_from_json: expected a JSON object, got {spec!r:.80}.")
    if spec.get("format") != FORMAT:
        keras = "module" in spec or "keras_version" in spec
        raise ArgumentError(
            "model_from_json: " + ("this is Keras's JSON; shenjing reads its own config format "
                                   "(from shenjing's model.to_json())" if keras else
                                   "the JSON has no 'format': 'shenjing' entry; expected the "
                                   "output of shenjing's model.to_json()") + ".")
    if not isinstance(spec.get("class_name"), str) or not issubclass(
            _registered(spec["class_name"], custom_objects), Model):
        raise ArgumentError(f"model_from_json: class_name must name a model class (Model, "
                            f"Sequential), got {spec.get('class_name')!r:.80}.")
    return deserialize_layer({"class_name": spec["class_name"], "config": spec.get("config")},
                             custom_objects)


def _registered(name, custom_objects):
    from ..saving.registry import registered

    cls = (custom_objects or {}).get(name) or registered().get(name)
    return cls if isinstance(cls, type) else type(None)
