"""Layer: the Keras contract. ``__init__`` stores config, ``build(input_shape)`` makes weights
on the first input, ``call(inputs, training)`` computes with ``shenjing.ops``,
``compute_output_shape`` feeds ``summary()``, ``get_config`` returns the constructor arguments.

Calling a layer on a ``SymbolicTensor`` (from ``Input``) records a graph node instead of
computing: that is how the functional ``Model(inputs, outputs)`` is described.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
import re
from collections import defaultdict

import numpy as np

from .. import arguments, initializers, regularizers
from ..errors import ArgumentError, ArgumentTypeError
from ..ops.elementwise import cast
from ..tensor import Tensor
from ..variable import Variable
from . import subclassing, tracking

_name_counts: defaultdict[str, int] = defaultdict(int)
# Set while a model is rebuilt from a file: add_weight then takes each weight's value from it
# (see weights_provided_by) instead of running the initializer.
_weight_provider: contextvars.ContextVar = contextvars.ContextVar("weight_provider", default=None)


@contextlib.contextmanager
def weights_provided_by(provider):
    """Within this block ``add_weight`` calls ``provider(layer, full_name, shape, dtype)`` for
    each weight's value instead of its initializer. load_model passes the file's arrays this
    way, so a config whose sizes disagree with the file fails before anything of that size is
    allocated, and no initializer runs for a weight that is loaded anyway."""
    token = _weight_provider.set(provider)
    try:
        yield
    finally:
        _weight_provider.reset(token)


def unique_name(base: str) -> str:
    """'dense', 'dense_1', 'dense_2', ... as Keras names layers."""
    count = _name_counts[base]
    _name_counts[base] += 1
    return base if count == 0 else f"{base}_{count}"


def snake_case(name: str) -> str:
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower().replace("2_d", "2d").replace("1_d", "1d")


def format_shape(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class SymbolicTensor:
    """A placeholder with a shape (None for the batch axis) flowing through a model graph."""

    def __init__(self, shape, dtype="float32", node: Node | None = None, index: int = 0):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.node, self.index = node, index

    ndim = property(lambda self: len(self.shape))

    def __repr__(self):
        layer = self.node.layer.name if self.node else "?"
        return f"<SymbolicTensor shape={format_shape(self.shape)} from '{layer}'>"


class Node:
    """One call of a layer inside a graph: which symbolic tensors went in and came out.

    ``parents`` are the symbolic tensors of the inputs and, in order after them, those held in
    the call's keyword arguments (nested in lists, tuples or dicts), e.g. an RNN's
    ``initial_state``: a model replays the call with real values for all of them.
    """

    def __init__(self, layer: Layer, inputs, kwargs, outputs_shapes, dtype):
        self.layer, self.inputs, self.kwargs = layer, inputs, kwargs
        self.parents = [t for t in flatten((inputs, kwargs)) if isinstance(t, SymbolicTensor)]
        multi = isinstance(outputs_shapes, list)
        shapes = outputs_shapes if multi else [outputs_shapes]
        self.outputs = [SymbolicTensor(s, dtype, self, i) for i, s in enumerate(shapes)]
        self.output = self.outputs if multi else self.outputs[0]
        layer._inbound_nodes.append(self)


def flatten(structure) -> list:
    """The leaves of nested lists, tuples and dicts (values, in order)."""
    if isinstance(structure, dict):
        structure = list(structure.values())
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten(item)]
    return [structure]


def map_symbolic(fn, structure):
    """``structure`` with each SymbolicTensor leaf replaced by ``fn(leaf)``."""
    if isinstance(structure, SymbolicTensor):
        return fn(structure)
    if isinstance(structure, dict):
        return {key: map_symbolic(fn, value) for key, value in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_symbolic(fn, item) for item in structure)
    return structure


def _batchless_shapes(outputs):
    """The shapes of (nested lists of) outputs with the batch axis as None."""
    if isinstance(outputs, (list, tuple)):
        return [_batchless_shapes(o) for o in outputs]
    shape = getattr(outputs, "shape", None)
    return None if shape is None or not shape else (None, *shape[1:])


def _is_symbolic(inputs) -> bool:
    return any(isinstance(x, SymbolicTensor) for x in flatten(inputs))


def _shape_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [tuple(x.shape) for x in inputs]
    return tuple(inputs.shape)


def _mask_of(inputs):
    """The (batch, time) boolean mask carried by an input tensor, if any."""
    if isinstance(inputs, (list, tuple)):
        masks = [getattr(x, "_keras_mask", None) for x in inputs]
        return masks if any(m is not None for m in masks) else None
    return getattr(inputs, "_keras_mask", None)


class Layer:
    """Base class. Args: name (unique by default), trainable, dtype (of weights and compute)."""

    def __init__(self, name: str | None = None, trainable: bool = True, dtype=None,
                 input_shape=None, **kwargs):
        if kwargs:  # Keras 3's wording; a TypeError, as Python's own for an unknown keyword
            raise ArgumentTypeError(f"Unrecognized keyword arguments passed to "
                                    f"{type(self).__name__}: {kwargs}")
        dtype, input_shape = arguments.layer_options(type(self).__name__, name, trainable, dtype,
                                                     input_shape)
        self.name = name or unique_name(snake_case(type(self).__name__))
        self._creation_index = next(tracking.creation_counter)
        self._weights: list[Variable] = []
        self._regularized: list[tuple[Variable, object]] = []
        self._added_losses: list[Tensor] = []
        self.trainable = trainable
        self.dtype = dtype
        self.built = False
        self._input_shape_arg = None if input_shape is None else tuple(input_shape)
        parameters = inspect.signature(self.call).parameters
        self._takes_training, self._takes_mask = "training" in parameters, "mask" in parameters
        default = parameters["training"].default if self._takes_training else None
        self._training_default = None if default is inspect.Parameter.empty else default
        self.input_shape = self.output_shape = None
        self._inbound_nodes: list[Node] = []  # one per symbolic call, in call order

    # ----- to override -------------------------------------------------------------------
    def build(self, input_shape) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis may be None)."""

    def call(self, inputs, training=None, mask=None):
        raise NotImplementedError(f"{type(self).__name__} '{self.name}': a Layer subclass must "
                                  "implement call(inputs).")

    def compute_output_shape(self, input_shape):
        """By default, as in Keras, the shape of what ``call`` returns: found by running it on
        a batch of zeros (see _infer_output_shape). Override it when the shape is cheaper to
        compute, or when call cannot run on zeros."""
        return self._infer_output_shape(input_shape)

    def get_config(self) -> dict:
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    # ----- weights -----------------------------------------------------------------------
    def add_weight(self, *args, **kwargs) -> Variable:
        """A new weight of this layer, as Keras 3's ``add_weight(shape=None, initializer=None,
        dtype=None, trainable=True, regularizer=None, constraint=None, name=None)``; call it
        from ``build``. initializer None: glorot_uniform for floats, zeros for integers; name
        None: 'variable', 'variable_1', ... The older form ``add_weight("kernel", shape,
        initializer, trainable, regularizer, dtype)`` (a name first) is accepted too.
        """
        return self._add_weight(**subclassing.add_weight_arguments(self, args, kwargs))

    def _add_weight(self, shape, initializer, dtype, trainable, regularizer, constraint, name):
        if constraint is not None:
            raise self._error("add_weight: weight constraints are not supported by shenjing "
                              f"yet, got constraint={constraint!r:.60}.")
        if shape is None:
            shape = ()
        shape = tuple(int(s) for s in ((shape,) if isinstance(shape, (int, np.integer))
                                       else shape))
        dtype = np.dtype(dtype or self.dtype)
        if initializer is None:
            initializer = "zeros" if dtype.kind in "iub" else "glorot_uniform"
        if name is None:
            name = self._next_weight_name()
        full_name, provider = f"{self.name}/{name}", _weight_provider.get()
        value = None if provider is None else provider(self, full_name, shape, dtype)
        if value is None:  # no provider, or a weight the provider finds by its path later
            value = initializers.get(initializer)(shape, dtype)
        variable = Variable(value, name=full_name, trainable=trainable, dtype=dtype)
        self._weights.append(variable)
        if regularizer is not None:
            self._regularized.append((variable, regularizers.get(regularizer)))
            tracking.uses["regularizer"] = True
        return variable

    def _next_weight_name(self) -> str:
        """'variable', 'variable_1', ...: the first not taken in this layer."""
        taken = {w.name.rpartition("/")[2] for w in self._weights}
        index = 0
        while (candidate := "variable" + (f"_{index}" if index else "")) in taken:
            index += 1
        return candidate

    # Keras's _layers: the layers held as attributes (see tracking). Attributes named here are
    # not walked (a class that keeps its layers in its own structure lists them itself).
    _untracked_attributes = frozenset()
    # the base class's own lists, which never hold layers
    _bookkeeping_attributes = frozenset({"_weights", "_regularized", "_added_losses",
                                         "_inbound_nodes", "_holding_attributes"})

    def __setattr__(self, name, value):
        # NOTE: the names of attributes that may hold layers (a layer, a list, tuple or dict)
        # are noted as they are set, so that finding the sublayers (tracking.held_layers,
        # several times per training step) walks those few attributes and not every one a
        # layer has: on a model of 12 Dense layers that was 40% of a small train step.
        if isinstance(value, (Layer, list, tuple, dict)) and (
                name not in self._bookkeeping_attributes):
            holding = self.__dict__.get("_holding_attributes")
            if holding is None:
                holding = {}
                object.__setattr__(self, "_holding_attributes", holding)
            holding[name] = None  # a dict: an ordered set, in first-assignment order
        object.__setattr__(self, name, value)

    def _sublayer_paths(self) -> list[tuple[str, Layer]]:
        """[(attribute path, layer)] of the layers this one holds directly."""
        return tracking.held_layers(self, self._untracked_attributes)

    def _sublayers(self) -> list[Layer]:
        return [layer for _, layer in self._sublayer_paths()]

    def _flatten_layers(self, include_self=True) -> list[Layer]:
        layers = [layer for layer, _ in tracking.walk(self)]
        return layers if include_self else layers[1:]

    def _own_weights(self) -> list[Variable]:
        """This layer's weights without its sublayers': trainable first, as Keras orders."""
        return ([w for w in self._weights if w.trainable]
                + [w for w in self._weights if not w.trainable])

    def _weights_and_frozen(self):
        """(weight, frozen) in Keras's order: own weights, then each sublayer's, each once."""
        seen = set()
        for layer, frozen in tracking.walk(self):
            for w in layer._own_weights():
                if id(w) not in seen:
                    seen.add(id(w))
                    yield w, frozen

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        """Sets this layer and, as in Keras, every layer it holds."""
        initial = "_trainable" not in self.__dict__
        self._trainable = bool(value)
        if not initial:
            for layer in self._sublayers():
                layer.trainable = value

    @property
    def weights(self) -> list[Variable]:
        return [w for w, _ in self._weights_and_frozen()]

    @property
    def trainable_weights(self) -> list[Variable]:
        return [w for w, frozen in self._weights_and_frozen() if w.trainable and not frozen]

    @property
    def non_trainable_weights(self) -> list[Variable]:
        return [w for w, frozen in self._weights_and_frozen() if frozen or not w.trainable]

    def count_params(self) -> int:
        return sum(math.prod(w.shape) for w in self.weights)

    def get_weights(self) -> list[np.ndarray]:
        return [w.data.copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        own = self.weights
        if len(weights) != len(own):
            raise ArgumentError(
                f"{type(self).__name__} '{self.name}': expected {len(own)} weight "
                f"arrays ({[w.shape for w in own]}), got {len(weights)}."
            )
        for variable, value in zip(own, weights):
            if np.shape(value) != variable.shape:
                raise self._error(f"set_weights: weight {variable.name!r} has shape "
                                  f"{variable.shape}, got an array of shape {np.shape(value)}.")
        for variable, value in zip(own, weights):
            variable.assign(value)

    # ----- losses ------------------------------------------------------------------------
    def add_loss(self, loss) -> None:
        """Add a term to the training loss from inside ``call``; a tensor is summed to a scalar
        (as Keras's fit sums each). The terms are kept until the next outermost call."""
        if not isinstance(loss, Tensor):
            try:
                value = np.asarray(loss, dtype=self.dtype)
            except (TypeError, ValueError):
                value = None
            if value is None or value.dtype.kind != "f":
                raise self._error(f"add_loss expects a tensor or a number, got "
                                  f"{type(loss).__name__} {loss!r:.60}.")
            loss = Tensor(value)
        tracking.uses["add_loss"] = True
        self._added_losses.append(loss if loss.ndim == 0 else loss.sum())

    def _clear_losses(self) -> None:
        if not tracking.uses["add_loss"]:
            return
        for layer in self._flatten_layers():
            layer._added_losses.clear()

    @property
    def losses(self) -> list[Tensor]:
        """Keras's ``losses``: the add_loss terms of the latest call and the weight penalties,
        of this layer and every layer it holds."""
        return self.regularization_losses()

    def regularization_losses(self) -> list[Tensor]:
        """What fit adds to the loss: the penalties of the regularized weights and the terms
        added by ``add_loss`` in the latest call, of this layer and every layer it holds."""
        result = []
        if not (tracking.uses["add_loss"] or tracking.uses["regularizer"]):
            return result
        for layer in self._flatten_layers():
            result += [penalty(w) for w, penalty in layer._regularized]
            result += layer._added_losses
        return result

    # ----- calling -----------------------------------------------------------------------
    def _error(self, message: str) -> ArgumentError:
        return ArgumentError(f"{type(self).__name__} '{self.name}': {message}")

    def build_for(self, input_shape):
        """Build once for input_shape and return the output shape; errors name the layer."""
        output_shape = self.compute_output_shape(input_shape)
        if not self.built:
            self.build(input_shape)
            self.built = True
            self.input_shape = input_shape
        self.output_shape = output_shape
        return output_shape

    def _derives_output_shape(self) -> bool:
        """True when the class has no compute_output_shape of its own: the output shape is then
        found by running call (see compute_output_shape)."""
        return type(self).compute_output_shape is Layer.compute_output_shape

    def _infer_output_shape(self, input_shape, dtypes=None):
        """The output shape found by running call on zeros (see subclassing)."""
        return subclassing.infer_output_shape(self, input_shape, dtypes)

    def _resolve_training(self, training):
        """Keras's order: the value passed, else the enclosing call's, else the default of
        this call's ``training`` parameter if not None, else False."""
        if training is None:
            training = tracking.outer_training()
        if training is None:
            training = self._training_default
        return bool(training) if training is not None else False

    def __call__(self, inputs, *args, training=None, **kwargs):
        if self.single_input and isinstance(inputs, (list, tuple)):
            raise self._error(f"expects one input tensor, got a {type(inputs).__name__} of "
                              f"{len(inputs)}; a list means several inputs here (as in Keras's "
                              "merge layers). Pass np.asarray(...) for one nested-list input.")
        if _is_symbolic(inputs) or _is_symbolic(kwargs):
            return self._symbolic_call(inputs, kwargs)
        inputs = self._to_tensors(inputs)
        derived = self._derives_output_shape()
        if not self.built:
            if derived:  # build now, the output shape comes from the output
                self.build(_shape_of(inputs))
                self.built = True
                self.input_shape = _shape_of(inputs)
            else:
                self.build_for(_shape_of(inputs))
        elif not derived:
            self.compute_output_shape(_shape_of(inputs))  # explained errors for bad shapes
        training = self._resolve_training(training)
        if self._takes_training:
            kwargs["training"] = training
        mask = kwargs.pop("mask", None)
        if mask is None:
            mask = _mask_of(inputs)
        if self._takes_mask:
            kwargs["mask"] = mask
        if not tracking.in_call():  # the outermost call: the losses of the one before go
            self._clear_losses()
        with tracking.call_scope(training):
            outputs = self.call(inputs, *args, **kwargs)
        if derived and self.output_shape is None:  # the batch axis as None, as summary shows
            self.output_shape = _batchless_shapes(outputs)
        output_mask = self.compute_mask(inputs, mask)
        if isinstance(outputs, (list, tuple)):
            masks = output_mask if isinstance(output_mask, list) else [output_mask] * len(outputs)
            for out, out_mask in zip(outputs, masks):
                if out_mask is not None:
                    out._keras_mask = out_mask
        elif output_mask is not None:
            outputs._keras_mask = output_mask
        return outputs

    def _symbolic_call(self, inputs, kwargs):
        """Record a graph node: build for the inputs' shapes, return symbolic outputs. Symbolic
        tensors in ``kwargs`` (an RNN's initial_state, a mask) become parents of the node."""
        if not all(isinstance(x, SymbolicTensor) for x in flatten(inputs)):
            raise self._error(
                "the inputs mix symbolic tensors (from Input(...)) with arrays, or an argument "
                f"holds a symbolic tensor while the inputs are {type(inputs).__name__}; in a "
                "functional model every input of a call must come from Input(...) or a layer.")
        shape = _shape_of(inputs)
        if self._derives_output_shape():  # no compute_output_shape: run call on zeros
            dtypes = [x.dtype for x in inputs] if isinstance(inputs, (list, tuple)) else [
                inputs.dtype]
            output_shape = self._infer_output_shape(shape, dtypes)
            self.input_shape, self.output_shape = shape, output_shape
        else:
            output_shape = self.build_for(shape)
        return Node(self, inputs, kwargs, output_shape, self.dtype).output

    # ----- the graph: Keras 3's properties of a layer's first call -----------------------
    def _first_node(self, what: str) -> Node:
        if not self._inbound_nodes:
            raise AttributeError(f"{type(self).__name__} '{self.name}' has never been called "
                                 f"on a symbolic tensor and thus has no defined {what}.")
        return self._inbound_nodes[0]

    @property
    def input(self):
        """The symbolic input(s) of the layer's first call, keyword arguments' tensors after
        the inputs (a tensor for one, a list for several), as Keras 3."""
        parents = self._first_node("input").parents
        return parents[0] if len(parents) == 1 else list(parents)

    @property
    def output(self):
        """The symbolic output(s) of the layer's first call (a list for several)."""
        return self._first_node("output").output

    single_input = False  # True: a list or tuple passed as inputs is refused (shenjing's own)

    # ----- masks -------------------------------------------------------------------------
    supports_masking = False  # True: the output keeps the input's (batch, time) mask

    def compute_mask(self, inputs, mask=None):
        """The mask of the output: the input's if supports_masking, else none."""
        return mask if self.supports_masking else None

    def _to_tensors(self, inputs):
        if isinstance(inputs, (list, tuple)):
            return [self._to_tensor(x) for x in inputs]
        return self._to_tensor(inputs)

    def _to_tensor(self, x):
        """Floating inputs are cast to the layer's dtype, as Keras autocasts; complex, string
        and object inputs and zero-size feature axes are refused (arguments.layer_input)."""
        values = arguments.layer_input(x, self)
        if isinstance(x, Tensor):
            return x if x.dtype == self.dtype else cast(x, self.dtype)
        return Tensor(values.astype(self.dtype, copy=False))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"


class InputLayer(Layer):
    """The entry of a functional model: holds the input shape, has no weights."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None,
                 **kwargs):
        super().__init__(name=name or unique_name("input_layer"), dtype=dtype, **kwargs)
        shape = shape if shape is not None else input_shape
        if shape is None:
            raise self._error("a shape is required, e.g. Input((28, 28, 1)).")
        shape = arguments.shape(shape, "shape", self)
        if batch_size is not None:
            batch_size = arguments.positive_int(batch_size, "batch_size", self)
        self.shape, self.batch_size = shape, batch_size
        self.built = True
        self.output_shape = self.input_shape = (batch_size, *shape)
        Node(self, [], {}, (batch_size, *shape), self.dtype)  # its output: self.output

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {"shape": list(self.shape), "batch_size": self.batch_size, "dtype": self.dtype,
                "name": self.name}


def Input(shape, batch_size=None, dtype=None, name=None) -> SymbolicTensor:  # noqa: N802
    """A symbolic input of the given shape (without the batch axis), as ``keras.Input``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output
