"""The key each weight of a model is saved under: stable across processes and unique.

A layer whose name is in the saved config (a functional model's or Sequential's layers, the
layers a Bidirectional or TimeDistributed wraps) keeps its weights' own names,
``"<layer>/<weight>"``, as files have always held them. A layer held as an attribute of a
custom layer or of a subclassed model is made again by that layer's ``__init__`` when the
model is loaded, under a new automatic name (``dense_7`` for ``dense_2``), so its weights are
keyed by the attributes that lead to it instead: ``"block/dense/kernel"``,
``"blocks/0/kernel"`` (Keras's weight files are keyed by that path too).
"""

from __future__ import annotations


def weight_keys(model) -> list[tuple[str, object, object]]:
    """[(key, variable, owning layer)] in ``model.weights`` order."""
    keys: dict[int, tuple[str, object]] = {}
    seen: set[int] = set()

    def visit(layer, prefix, stable):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for w in layer._own_weights():
            keys.setdefault(id(w), (w.name if stable else f"{prefix}/{_short(layer, w)}",
                                    layer))
        for child_prefix, child, child_stable in _children(layer, prefix, stable):
            visit(child, child_prefix, child_stable)

    visit(model, "", True)
    return [(keys[id(w)][0], w, keys[id(w)][1]) for w in model.weights]


def has_path_keys(model) -> bool:
    return any(key != variable.name for key, variable, _ in weight_keys(model))


def _children(layer, prefix, stable):
    """(key prefix, child, stable) of each layer held by ``layer``."""
    from ..layers import Bidirectional, TimeDistributed
    from ..models import Model

    def join(path):
        return f"{prefix}/{path}" if prefix else path

    if isinstance(layer, Model) and not layer._subclassed:
        graph = layer._layers if stable else []
        ids = {id(child) for child in graph}
        children = [(child.name, child, True) for child in graph]
        if not stable:  # the graph's own layers by their place in it
            children = [(join(f"layers/{i}"), child, False)
                        for i, child in enumerate(layer._layers)]
            ids = {id(child) for child in layer._layers}
        return children + [(join(path), child, False) for path, child in layer._sublayer_paths()
                           if id(child) not in ids]
    # a wrapper's layers are in its config: their names hold as long as the wrapper's does
    keeps_names = stable and isinstance(layer, (Bidirectional, TimeDistributed))
    return [(join(path), child, keeps_names) for path, child in layer._sublayer_paths()]


def _short(layer, variable):
    """The weight's own name, without its layer's: 'kernel' of 'dense_3/kernel'."""
    head = f"{layer.name}/"
    return variable.name[len(head):] if variable.name.startswith(head) else (
        variable.name.rpartition("/")[2])
