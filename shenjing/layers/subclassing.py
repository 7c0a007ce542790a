"""What Layer needs for Keras's subclassing API beyond its own contract: ``add_weight``'s two
argument forms, and the output shape of a layer that does not compute it itself.

A layer written by subclassing often has no ``compute_output_shape`` (Keras derives it from
``call``). shenjing does the same the plainest way: it runs ``call`` on a batch of zeros in
inference mode without autograd. That also builds the layer and the layers it holds, as a
symbolic call in Keras does, at the cost of one small forward pass when a graph is described.
"""

from __future__ import annotations

import numpy as np

from ..errors import ArgumentTypeError
from ..tensor import no_grad

ADD_WEIGHT_ARGS = ("shape", "initializer", "dtype", "trainable", "regularizer", "constraint",
                   "name")
LEGACY_ADD_WEIGHT_ARGS = ("name", "shape", "initializer", "trainable", "regularizer", "dtype")


def add_weight_arguments(layer, args, kwargs) -> dict:
    """add_weight's arguments by name: Keras 3's order, or shenjing's older one when the first
    positional argument is a string (the name)."""
    names = LEGACY_ADD_WEIGHT_ARGS if args and isinstance(args[0], str) else ADD_WEIGHT_ARGS
    where = f"{type(layer).__name__} '{layer.name}': add_weight"
    if len(args) > len(names):
        raise ArgumentTypeError(f"{where} takes at most {len(names)} positional arguments, got "
                                f"{len(args)}.")
    given = dict(zip(names, args))
    for key, value in kwargs.items():
        if key not in ADD_WEIGHT_ARGS:
            raise ArgumentTypeError(f"{where} got an unexpected argument {key!r}.")
        if key in given:
            raise ArgumentTypeError(f"{where} got two values for {key!r}.")
        given[key] = value
    given.setdefault("trainable", True)
    return {key: given.get(key) for key in ADD_WEIGHT_ARGS}


def infer_output_shape(layer, input_shape, dtypes=None):
    """The output shape of ``layer`` for ``input_shape``: call run on zeros, in inference mode
    and without autograd (which builds the layer and the layers it holds).

    The batch axis and other None axes are taken as 1; when an axis other than the batch one
    is None, call runs a second time with 2 there, and the output axes that changed are None.
    The losses that add_loss records during these runs are dropped.
    """
    multi = isinstance(input_shape, list)
    shapes = input_shape if multi else [input_shape]
    dtypes = dtypes or [layer.dtype] * len(shapes)
    saved = [(inner, list(inner._added_losses)) for inner in layer._flatten_layers()]

    def run(fill):
        arrays = [np.zeros([1 if i == 0 and s is None else fill if s is None else s
                            for i, s in enumerate(shape)], dtype=dtype)
                  for shape, dtype in zip(shapes, dtypes)]
        with no_grad():
            out = layer(arrays if multi else arrays[0], training=False)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return [tuple(o.shape) for o in outs], isinstance(out, (list, tuple))

    try:
        found, listed = run(1)
        if any(s is None for shape in shapes for s in shape[1:]):
            other, _ = run(2)
            found = [tuple(None if a != b else a for a, b in zip(one, two))
                     for one, two in zip(found, other)]
    finally:
        for inner, losses in saved:
            inner._added_losses[:] = losses
    batch = shapes[0][0] if shapes and shapes[0] else None
    found = [(batch, *shape[1:]) if shape else shape for shape in found]
    return found if listed else found[0]
