"""Keras 3's weights layout in HDF5 (``model.weights.h5``, ``*.weights.h5``), read and written.

Keras 3 stores each layer's variables under the attribute path that leads to it from the model:
``layers/<name>/vars/0, 1, ...`` (trainable variables first, in creation order), where
``<name>`` is the snake_case class name made unique within the list (``dense``, ``dense_1``:
not the layer's own name). Layers held inside layers add their attribute: a recurrent layer's
cell (``layers/lstm/cell/vars``), Bidirectional's ``forward_layer`` / ``backward_layer``,
TimeDistributed's ``layer``, StackedRNNCells' ``cells/<name>``, MultiHeadAttention's ``query_dense`` ... ``output_dense``, a
nested model's ``layers``. ``keras_groups`` walks a built shenjing model the same way.

Reading is strict: only the groups this walk names are opened, each dataset's shape and dtype
are checked against the model's weight before it is read, a group holding more or fewer
datasets than the layer has weights is refused, and every value is checked before any is
assigned. h5py is imported only here, on use (``pip install 'shenjing[keras]'``).
"""

import io
import re

import numpy as np

from ..io import FileFormatError
from . import weights as weights_module

EXTRA_HINT = "pip install 'shenjing[keras]'"
_MHA_PARTS = ("query_dense", "key_dense", "value_dense", "output_dense")


def import_h5py(caller):
    """h5py, or an ImportError naming the extra that installs it."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f"{caller}: Keras's files (.keras, .weights.h5) need h5py, which is "
                          f"not installed; install it with {EXTRA_HINT}. shenjing's own "
                          "format (.shenjing, .safetensors) needs nothing more.") from error
    return h5py


def keras_snake_case(name):
    """Keras 3's naming.to_snake_case: the container key of a layer of class ``name``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _children_of_model(model):
    from ..models import Sequential

    if isinstance(model, Sequential):
        return list(model._stack)  # Keras's Sequential.layers leaves its InputLayer out
    return list(model._graph_layers)


def keras_groups(layer, prefix=""):
    """[(group path, [variables in Keras's order], layer)] for ``layer`` and what it holds, as
    Keras 3 names them; groups without variables are left out."""
    from ..layers import Bidirectional, MultiHeadAttention, StackedRNNCells, TimeDistributed
    from ..layers.recurrent import _RNN
    from ..layers.rnn import RNN
    from ..models import Model

    def join(*parts):
        return "/".join(p for p in parts if p)

    if isinstance(layer, Model):
        if getattr(layer, "_subclassed", False):
            raise FileFormatError(layer.name, "a subclassed model's weights have no Keras "
                                  "layout shenjing writes; save it in shenjing's format",
                                  field="keras weights")
        groups, used = [], {}
        for child in _children_of_model(layer):
            name = type(child).__name__
            key = _unique(keras_snake_case("Functional" if name == "Model" else name), used)
            groups += keras_groups(child, join(prefix, "layers", key))
        return groups
    if isinstance(layer, Bidirectional):
        return (keras_groups(layer.forward_layer, join(prefix, "forward_layer"))
                + keras_groups(layer.backward_layer, join(prefix, "backward_layer")))
    if isinstance(layer, TimeDistributed):
        return keras_groups(layer.layer, join(prefix, "layer"))
    if isinstance(layer, RNN) and hasattr(layer.cell, "weights"):
        return keras_groups(layer.cell, join(prefix, "cell"))
    if isinstance(layer, StackedRNNCells):
        groups, used = [], {}
        for cell in layer.cells:
            key = _unique(keras_snake_case(type(cell).__name__), used)
            groups += keras_groups(cell, join(prefix, "cells", key))
        return groups
    variables = _ordered(layer)
    if not variables:
        return []
    if isinstance(layer, _RNN):
        return [(join(prefix, "cell", "vars"), variables, layer)]
    if isinstance(layer, MultiHeadAttention):
        per = len(variables) // 4
        return [(join(prefix, part, "vars"), variables[i * per:(i + 1) * per], layer)
                for i, part in enumerate(_MHA_PARTS)]
    return [(join(prefix, "vars"), variables, layer)]


def _ordered(layer):
    """The layer's variables as Keras orders them: trainable ones first, each in creation
    order."""
    variables = list(layer.weights)
    return ([v for v in variables if v.trainable] + [v for v in variables if not v.trainable]
            if layer.trainable else variables)


# ----- reading -----------------------------------------------------------------------------
def open_h5(source, path, caller):
    """An h5py File on a path or bytes; FileFormatError if it is no HDF5 file."""
    h5py = import_h5py(caller)
    try:
        return h5py.File(io.BytesIO(source) if isinstance(source, bytes) else source, "r")
    except OSError as error:
        raise FileFormatError(path, f"not an HDF5 file ({error})", field="weights") from None


def stored_elements(h5file):
    """The values the file really stores: per dataset at most what its storage holds (a
    dataset that claims a huge shape over a few bytes counts for those bytes only)."""
    total = 0

    def visit(_, obj):
        nonlocal total
        if hasattr(obj, "shape") and hasattr(obj, "id"):
            itemsize = max(obj.dtype.itemsize, 1)
            total += min(int(np.prod(obj.shape, dtype=np.int64)),
                         obj.id.get_storage_size() // itemsize)

    h5file.visititems(visit)
    return total


def read_groups(h5file, groups, path, check_values=True, skip_mismatch=False):
    """[(variable, value)] for each group of ``keras_groups``, every dataset checked (shape,
    dtype, count; values with check_values) before it is read and before any is assigned."""
    import warnings

    pairs = []
    for group_path, variables, layer in groups:
        where = f"layer '{layer.name}' ({type(layer).__name__}) at {group_path!r}"
        try:
            group = _group(h5file, group_path, path)
            names = sorted(group.keys(), key=lambda k: (len(k), k))
            if names != [str(i) for i in range(len(variables))]:
                raise FileFormatError(path, f"the layer has {len(variables)} weight(s) "
                                      f"{[tuple(v.shape) for v in variables]}, the file holds "
                                      f"{_some(names)} there", field=where)
            for i, variable in enumerate(variables):
                dataset = _child(group, str(i), path, where)
                if not hasattr(dataset, "shape"):
                    raise FileFormatError(path, f"'{i}' is not a dataset", field=where)
                if dataset.external or dataset.is_virtual:
                    raise FileFormatError(path, f"weight {i} keeps its values in other files "
                                          "(external or virtual storage), which are never "
                                          "read", field=where)
                if tuple(dataset.shape) != tuple(variable.shape):
                    raise FileFormatError(path, f"weight {i} ({variable.name!r}) has shape "
                                          f"{tuple(variable.shape)}, the file holds shape "
                                          f"{tuple(dataset.shape)}", field=where)
                if dataset.dtype.kind not in "fiub":
                    raise FileFormatError(path, f"weight {i} holds {dataset.dtype} values",
                                          field=where)
        except FileFormatError as error:
            if not skip_mismatch:
                raise
            warnings.warn(f"load_weights: skipped {where}: {error.problem}", stacklevel=3)
            continue
        for i, variable in enumerate(variables):
            value = np.asarray(group[str(i)][()])
            pairs.append((variable, weights_module.check_value(
                path, f"{group_path}/{i} {variable.name}", value, variable.dtype,
                check_values)))
    return pairs


def _group(h5file, group_path, path):
    """The group at group_path, walked one name at a time (no links followed elsewhere)."""
    node = h5file
    for part in group_path.split("/"):
        if not hasattr(node, "keys") or part not in node:
            raise FileFormatError(path, f"the file has no group {group_path!r} for this "
                                  "layer's weights", field=group_path)
        node = _child(node, part, path, group_path)
    if not hasattr(node, "keys"):
        raise FileFormatError(path, "expected a group, found a dataset", field=group_path)
    return node


def _child(group, name, path, where):
    """group[name] if it is a hard link: a soft or external link could lead anywhere, an
    external one to another file on this machine."""
    import h5py

    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise FileFormatError(path, f"{name!r} is a {type(link).__name__}, not stored in the "
                              "file; links are not followed", field=where)
    return group[name]


def _some(names, limit=5):
    names = list(names)
    return f"{names[:limit]}{'...' if len(names) > limit else ''}"


class BudgetWeights:
    """The weight source while a Keras config is rebuilt (layers.base.weights_provided_by):
    layers build with their initializers, but only while the weights the config implies stay
    within what the file stores; the file's values are assigned once the model is built."""

    def __init__(self, budget, path):
        self.budget, self.path = budget, path

    def __call__(self, layer, name, shape, dtype):
        self.budget -= int(np.prod(shape, dtype=np.int64))
        if self.budget < 0:
            raise FileFormatError(self.path, f"its config implies weights (up to {name!r} of "
                                  f"shape {tuple(shape)}) of more values than the file stores",
                                  field=f"layer '{layer.name}' ({type(layer).__name__})")


def load_h5_weights(model, source, path, check_values=True, skip_mismatch=False):
    """Assign the weights of an HDF5 file in Keras's layout (a path or bytes) to ``model``."""
    h5file = open_h5(source, path, "load_weights")
    with h5file:
        pairs = read_groups(h5file, keras_groups(model), path, check_values, skip_mismatch)
    for variable, value in pairs:
        variable.assign(value)


# ----- writing -----------------------------------------------------------------------------
def h5_weights_bytes(model, caller):
    """The HDF5 file, as bytes, that Keras 3 writes for ``model``'s weights."""
    h5py = import_h5py(caller)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5file:
        h5file.create_group("vars").attrs["name"] = model.name
        for group_path, variables, layer in keras_groups(model):
            group = h5file.require_group(group_path)
            group.attrs["name"] = layer.name
            for i, variable in enumerate(variables):
                group.create_dataset(str(i), data=np.asarray(variable.data))
    return buffer.getvalue()


__all__ = ["BudgetWeights", "h5_weights_bytes", "import_h5py", "keras_groups",
           "load_h5_weights", "open_h5", "read_groups", "stored_elements"]
