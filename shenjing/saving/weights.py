"""Which tensor of a file goes to which weight of a model, and which values are refused.

load_model rebuilds the model with ``FileWeights`` as the source of every weight: each weight
the config implies is looked up by name and shape in the file as the layer builds, so a config
that disagrees with the file fails before anything of its size exists. load_weights pairs the
file's tensors with a built model's weights by name (``match``), or in the saved order on
request. Either way every value is checked before any is assigned, so a refused file leaves
the model as it was.
"""

import math
import re
import warnings

import numpy as np

from ..io import FileFormatError
from .naming import weight_keys

_KINDS = {"f": "floating", "i": "integer", "u": "unsigned integer", "b": "boolean",
          "c": "complex"}


def check_value(path, name, value, dtype, check_values=True):
    """``value`` cast to ``dtype`` if both are floating; else FileFormatError naming the weight.

    Integer, boolean and complex values are never cast to a floating weight. With
    check_values, NaN/Inf and negative moving variances are refused too.
    """
    expected, field = np.dtype(dtype), f"weight {name!r}"
    if value.dtype.kind != expected.kind:
        raise FileFormatError(path, f"holds {_KINDS.get(value.dtype.kind, value.dtype.kind)} "
                              f"values ({value.dtype}) where the model has a {expected} weight; "
                              "they are not cast", field=field)
    if check_values and value.dtype.kind == "f":
        bad = value.size - np.count_nonzero(np.isfinite(value))
        if bad:
            raise FileFormatError(path, f"holds {bad} NaN or infinite value(s); pass "
                                  "check_values=False to load them as they are", field=field)
        if name.endswith("moving_variance") and value.size and value.min() < 0:
            raise FileFormatError(path, f"holds negative variances (down to {value.min():.3g}); "
                                  "pass check_values=False to load them as they are",
                                  field=field)
    return value.astype(expected, copy=False)


class FileWeights:
    """The source of weights while load_model rebuilds a model (layers.base.weights_provided_by):
    each weight a layer asks for must be in the file, by name, with the shape the config
    implies; the file's array (checked) becomes the weight, and no initializer runs."""

    def __init__(self, tensors, path, check_values=True, by_path=False):
        self.tensors, self.path, self.check_values = tensors, path, check_values
        self.used = set()
        # by_path: the file keys some weights by path (see naming), which only the built model
        # knows; the layers build with their initializers, bounded by the file's size, and
        # assign_by_key sets every weight afterwards
        self.by_path, self.budget = by_path, sum(v.size for v in tensors.values())

    def __call__(self, layer, name, shape, dtype):
        where = f"layer '{layer.name}' ({type(layer).__name__})"
        if self.by_path:
            self.budget -= math.prod(shape)
            if self.budget < 0:
                raise FileFormatError(self.path, f"its config implies weights (up to {name!r} of "
                                      f"shape {shape}) of more values than the file holds",
                                      field=where)
            return None
        value = self.tensors.get(name)
        if name in self.used:
            raise FileFormatError(self.path, f"a second weight is named {name!r}; layer names "
                                  "must be unique", field=where)
        if value is None:
            raise FileFormatError(self.path, f"its config implies a weight {name!r} of shape "
                                  f"{shape}, which the file does not hold", field=where)
        if value.shape != shape:
            raise FileFormatError(self.path, f"its config implies a weight {name!r} of shape "
                                  f"{shape}, the file holds shape {value.shape}", field=where)
        self.used.add(name)
        return check_value(self.path, name, value, dtype, self.check_values)

    def assign_by_key(self, keyed):
        """Set each (key, variable, layer) of a built model from the file's tensor of that key,
        all checked before any is assigned."""
        values = []
        for key, variable, layer in keyed:
            where = f"layer '{layer.name}' ({type(layer).__name__})"
            value = self.tensors.get(key)
            if value is None or key in self.used:
                raise FileFormatError(self.path, f"the model has a weight {key!r} of shape "
                                      f"{variable.shape}, which the file does not hold",
                                      field=where)
            if value.shape != variable.shape:
                raise FileFormatError(self.path, f"the model's weight {key!r} has shape "
                                      f"{variable.shape}, the file holds shape {value.shape}",
                                      field=where)
            self.used.add(key)
            values.append(check_value(self.path, key, value, variable.dtype, self.check_values))
        for (_, variable, _), value in zip(keyed, values):
            variable.assign(value)

    def check_all_used(self):
        unexpected = [name for name in self.tensors if name not in self.used]
        if unexpected:
            raise FileFormatError(self.path, f"tensors {_some(unexpected)} match no weight of "
                                  "the model its config describes", field="weights")


def file_order(tensors, metadata_order):
    """The file's weight names in the model's order: the saved list if any, else the header's
    order when every tensor has one item size (the writer sorts by item size), else None."""
    if metadata_order is not None:
        return metadata_order
    if len({value.dtype.itemsize for value in tensors.values()}) <= 1:
        return list(tensors)
    return None


def match(model, tensors, order, path, by_name=True, skip_mismatch=False):
    """[(variable, value)] pairing the file's tensors with ``model.weights``.

    by_name: the same names; failing that, the same architecture under other automatic layer
    names (dense_3 for dense: the same layer kinds, weight names and shapes in the saved order),
    as Keras 3 matches by topology. by_name=False: in the saved order. Shapes must agree;
    skip_mismatch skips (with a warning each) what does not fit instead of refusing the file.
    """
    keyed = [(key, variable) for key, variable, _ in weight_keys(model)]
    own = [variable for _, variable in keyed]
    if by_name:
        names = {key for key, _ in keyed}
        if names != set(tensors) and order is not None and _same_architecture(keyed, order,
                                                                              tensors):
            pairs = list(zip(own, order))
        else:
            pairs = [(v, key) for key, v in keyed if key in tensors]
            _report_unmatched([key for key, _ in keyed if key not in tensors],
                              [n for n in tensors if n not in names], path, skip_mismatch)
    else:
        if order is None:
            raise FileFormatError(path, "the file does not record its weights' order and holds "
                                  "tensors of several item sizes, so by_name=False cannot pair "
                                  "them; load by name", field="weights")
        pairs = list(zip(own, order))
        if len(own) != len(order):
            _report_unmatched([v.name for v in own[len(order):]], order[len(own):], path,
                              skip_mismatch)
    fitting = []
    for variable, name in pairs:
        value = tensors[name]
        if value.shape == variable.shape:
            fitting.append((variable, name))
            continue
        problem = (f"shape {value.shape} in the file, the model's {variable.name!r} has "
                   f"{variable.shape}")
        if not skip_mismatch:
            raise FileFormatError(path, problem + "; pass skip_mismatch=True to skip it",
                                  field=f"weight {name!r}")
        warnings.warn(f"load_weights: skipped weight {name!r} of {path}: {problem}.",
                      stacklevel=4)
    return fitting


def _report_unmatched(missing, unexpected, path, skip_mismatch):
    if not missing and not unexpected:
        return
    problem = f"missing {_some(missing)}, unexpected {_some(unexpected)}"
    if not skip_mismatch:
        raise FileFormatError(path, f"the weights' names do not fit the model: {problem}; pass "
                              "by_name=False to load them in order, or skip_mismatch=True",
                              field="weights")
    for name in missing:
        warnings.warn(f"load_weights: skipped weight {name!r}: not in {path}.", stacklevel=5)
    for name in unexpected:
        warnings.warn(f"load_weights: skipped tensor {name!r} of {path}: no such weight.",
                      stacklevel=5)


def _same_architecture(keyed, order, tensors):
    """Whether the file holds this model's weights under other automatic layer names: the same
    weight names and shapes in the same order, each layer name the same up to Keras's numeric
    suffix (dense, dense_3), and one file layer for each model layer."""
    if len(keyed) != len(order):
        return False
    layers = {}
    for (key, variable), name in zip(keyed, order):
        mine, theirs = key.rpartition("/"), name.rpartition("/")
        if (mine[2] != theirs[2] or _base(mine[0]) != _base(theirs[0])
                or tensors[name].shape != variable.shape
                or layers.setdefault(mine[0], theirs[0]) != theirs[0]):
            return False
    return len(set(layers.values())) == len(layers)


def _base(layer_name):
    return re.sub(r"_\d+$", "", layer_name)


def _some(names, limit=5):
    return f"{list(names)[:limit]}{'...' if len(names) > limit else ''}"
