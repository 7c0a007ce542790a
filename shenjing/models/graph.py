"""Walking a model's graph of layer calls: the nodes in Keras 3's order, and the calls after
intermediate tensors recorded again from new Inputs (a model cut from the middle of a graph)."""

from __future__ import annotations

from ..errors import ArgumentError
from ..layers.base import InputLayer, Node, SymbolicTensor, map_symbolic


def ordered_nodes(inputs, outputs, model_name):
    """Every node between the inputs and the outputs, each after its parents, in Keras 3's
    order (ops/function.py map_graph): by depth, the longest path to an output, deepest first;
    ties by when a depth-first walk from the outputs (inputs, then call arguments, in order)
    first meets the layer. Layers and weights take this order, so set_weights(keras_model.
    get_weights()) lines up."""
    post_order, first_seen, seen = [], {}, set()
    stack = [(t.node, False) for t in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            post_order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        first_seen.setdefault(id(node.layer), len(first_seen))
        stack.append((node, True))
        if isinstance(node.layer, InputLayer) and not any(node is t.node for t in inputs):
            raise ArgumentError(
                f"Model '{model_name}': the graph needs input '{node.layer.name}', which is "
                "not in the model's inputs."
            )
        for parent in reversed(node.parents):
            if id(parent.node) not in seen:
                stack.append((parent.node, False))
    depth, layer_depth = {}, {}
    for node in reversed(post_order):  # each node after every node it feeds
        d = max(depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
        depth[id(node)] = layer_depth[id(node.layer)] = d
        for parent in node.parents:
            depth[id(parent.node)] = max(depth.get(id(parent.node), 0), d + 1)
    for t in inputs:  # an input no output needs still belongs to the model
        if id(t.node) not in depth:
            post_order.append(t.node)
            depth[id(t.node)] = layer_depth[id(t.node.layer)] = 0
            first_seen[id(t.node.layer)] = -1
    return sorted(post_order, key=lambda n: (-depth[id(n)], -layer_depth[id(n.layer)],
                                             first_seen[id(n.layer)]))


def new_input_like(tensor, name=None) -> SymbolicTensor:
    return InputLayer(shape=tensor.shape[1:], batch_size=tensor.shape[0], dtype=tensor.dtype,
                      name=name).output


def clone_graph_nodes(inputs, outputs):
    """(new inputs, new outputs): each input that is not an Input(...) tensor is replaced by a
    new Input of its shape, and every call between the inputs and the outputs that depends on
    one is recorded again (same layers, same weights) on the new tensors, as Keras 3 does."""
    mapping = {}
    for t in inputs:
        if id(t) not in mapping:
            mapping[id(t)] = t if isinstance(t.node.layer, InputLayer) else new_input_like(t)
    for node in _nodes_between(inputs, outputs):
        if not any(id(p) in mapping for p in node.parents):
            continue
        new_inputs = map_symbolic(lambda t: mapping.get(id(t), t), node.inputs)
        new_kwargs = map_symbolic(lambda t: mapping.get(id(t), t), node.kwargs)
        shapes = [t.shape for t in node.outputs]
        multi = isinstance(node.output, list)
        copy = Node(node.layer, new_inputs, new_kwargs, shapes if multi else shapes[0],
                    node.outputs[0].dtype)
        for old, new in zip(node.outputs, copy.outputs):
            mapping[id(old)] = new
    return ([mapping[id(t)] for t in inputs], [mapping.get(id(t), t) for t in outputs])


def _nodes_between(inputs, outputs):
    """The nodes from the inputs (excluded) to the outputs, each after its parents."""
    stop = {id(t) for t in inputs}
    order, seen = [], set()
    stack = [(t, False) for t in reversed(outputs) if id(t) not in stop]
    while stack:
        tensor, expanded = stack.pop()
        node = tensor.node
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((tensor, True))
        stack.extend((p, False) for p in reversed(node.parents)
                     if id(p) not in stop and id(p.node) not in seen)
    return order
