"""The keyword arguments of a graph node in a model config, symbolic tensors among them.

``layer(x, initial_state=[h, c])`` records the symbolic ``h, c`` in the node's kwargs. A config
writes each such tensor as ``{"__tensor__": [layer name, node index, output index]}`` (the same
reference as a node's inputs) and every other value as plain JSON; ``from_config`` turns the
references back into the rebuilt graph's tensors, checking each one points at an earlier node.
"""

import inspect

from ..errors import ArgumentError, ArgumentTypeError
from ..layers.base import SymbolicTensor

TENSOR_KEY = "__tensor__"
MAX_DEPTH = 8  # nesting of lists and dicts in a config's kwargs (initial_state is depth 1)
_PLAIN = (str, int, float, bool, type(None))


def kwargs_to_config(model, node, ref) -> dict:
    """node.kwargs as JSON: symbolic tensors as references ``ref(tensor)``; a value JSON cannot
    hold is refused, naming the model, the layer and the argument."""

    def convert(value, where, depth):
        if isinstance(value, SymbolicTensor):
            return {TENSOR_KEY: ref(value)}
        if isinstance(value, (list, tuple)) and depth < MAX_DEPTH:
            return [convert(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict) and depth < MAX_DEPTH and all(
                isinstance(k, str) and k != TENSOR_KEY for k in value):
            return {k: convert(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
        if isinstance(value, _PLAIN):
            return value
        raise ArgumentTypeError(
            f"Model '{model.name}': layer '{node.layer.name}' was called with {where}="
            f"{value!r:.80} ({type(value).__name__}); a model config holds only symbolic "
            "tensors, numbers, strings, None and lists or dicts of them as call arguments.")

    return {key: convert(value, key, 0) for key, value in node.kwargs.items()}


def _call_arguments(layer) -> set:
    """The keyword arguments a call of ``layer`` takes besides its inputs and ``training``
    (which the model passes itself): those of ``call`` and of the class's own ``__call__``."""
    names = {"mask"}  # Layer.__call__ takes it for every layer
    for method in (type(layer).call, type(layer).__call__):
        parameters = list(inspect.signature(method).parameters.values())[2:]
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                           p.KEYWORD_ONLY)}
    return names - {"training"}


def kwargs_from_config(spec, node_index, produced, layer_names, layer) -> dict:
    """The kwargs of node ``node_index`` of a config, its tensor references resolved against
    ``produced`` (the outputs of the nodes rebuilt so far; ``layer_names[i]`` is the name of
    the layer of node i), for a call of ``layer``. Errors name the node and the reference."""
    where = f"nodes[{node_index}]['kwargs']"
    if not isinstance(spec, dict) or not all(isinstance(k, str) for k in spec):
        raise ArgumentError(f"{where} must be an object with string keys, got {spec!r:.100}")
    unknown = sorted(set(spec) - _call_arguments(layer))
    if unknown:
        raise ArgumentError(f"{where}: {type(layer).__name__} '{layer.name}' takes no call "
                            f"argument{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}")

    def resolve(ref, where):
        if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)
                and all(type(i) is int for i in ref[1:])):
            raise ArgumentError(f"{where}: a reference must be [layer name, node index, output "
                                f"index], got {ref!r:.100}")
        name, source, index = ref
        if not 0 <= source < node_index:
            raise ArgumentError(f"{where}: {ref!r:.100} must name one of the {node_index} nodes "
                                "before it")
        if layer_names[source] != name:
            raise ArgumentError(f"{where}: {ref!r:.100} names layer {name!r:.50}, but node "
                                f"{source} is a call of layer {layer_names[source]!r:.50}")
        if not 0 <= index < len(produced[source]):
            raise ArgumentError(f"{where}: {ref!r:.100} takes output {index} of layer "
                                f"{name!r:.50}, which has {len(produced[source])}")
        return produced[source][index]

    def convert(value, where, depth):
        if depth > MAX_DEPTH:
            raise ArgumentError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if set(value) == {TENSOR_KEY}:
                return resolve(value[TENSOR_KEY], where)
            return {k: convert(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, _PLAIN):
            return value
        raise ArgumentError(f"{where}: unexpected value {value!r:.100}")

    return {key: convert(value, f"{where}[{key!r}]", 1) for key, value in spec.items()}
