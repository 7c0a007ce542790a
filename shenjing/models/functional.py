"""Model: a graph of layers from inputs to outputs (the functional API), and Sequential.

``Model(inputs, outputs)`` walks back from the outputs' graph nodes to the inputs, orders the
nodes topologically and replays them on real tensors. ``Sequential`` is a stack of layers that
builds as soon as the input shape is known, so a shape that cannot work fails when added.
"""

from __future__ import annotations

from ..distribution import context as distribution_context
from ..errors import ArgumentError, ArgumentTypeError
from ..layers.base import InputLayer, Layer, SymbolicTensor, format_shape, map_symbolic
from ..tensor import is_grad_enabled
from . import fusion, subclassed
from .training import TrainingMixin


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class Model(TrainingMixin, Layer):
    """Functional model. Args: inputs, outputs (a SymbolicTensor or a list of them), name.

    Subclassing also works as in Keras: ``super().__init__()``, layers assigned as attributes
    in ``__init__``, ``call(inputs, training=None)`` overridden (see models/subclassed.py).
    """

    # the graph's own structures: their layers are listed by _layers, not found by walking
    _untracked_attributes = frozenset({"_graph_layers", "_stack", "_input_layer", "_chain",
                                       "inputs", "outputs", "_nodes", "_fusion_plans",
                                       "_graph_layer_ids", "_graph_names"})

    def __init__(self, inputs=None, outputs=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._init_training()
        self._graph_layers = []
        if inputs is None and outputs is None:
            return  # a subclass (Sequential) fills in its layers
        self._set_graph(inputs, outputs)

    def _set_graph(self, inputs, outputs):
        for what, value in (("inputs", inputs), ("outputs", outputs)):
            if isinstance(value, dict):  # Keras takes dicts; name the tensors' order instead
                raise ArgumentTypeError(
                    f"Model '{self.name}': {what} as a dict are not supported; pass a list "
                    f"(e.g. {what}=list(d.values())) and give data in the same order.")
        self._single_input = not isinstance(inputs, (list, tuple))
        self._single_output = not isinstance(outputs, (list, tuple))
        self.inputs, self.outputs = _as_list(inputs), _as_list(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, SymbolicTensor):
                raise ArgumentTypeError(
                    f"Model '{self.name}': inputs and outputs must come from "
                    f"shenjing.Input(...) and layer calls, got {type(t).__name__}.")
        if not all(isinstance(t.node.layer, InputLayer) for t in self.inputs):
            self._start_at_intermediate_inputs()
        self._nodes = self._ordered_nodes()
        self._fusion_plans = None  # layers that run together, found when first needed
        # sets, not list scans: a model of n layers is built in O(n), not O(n^2)
        layers, ids, names = [], set(), set()
        for node in self._nodes:
            if id(node.layer) not in ids:
                self._check_unique_name(node.layer, names)
                layers.append(node.layer)
                ids.add(id(node.layer))
                names.add(node.layer.name)
        self._graph_layers, self._graph_layer_ids, self._graph_names = layers, ids, names
        self.built = True
        self.input_shape = [t.shape for t in self.inputs]
        self.output_shape = [t.shape for t in self.outputs]
        if self._single_input:
            self.input_shape = self.input_shape[0]
        if self._single_output:
            self.output_shape = self.output_shape[0]

    def _start_at_intermediate_inputs(self):
        """Inputs that are not Input(...) tensors get a new Input each, and the calls after
        them are recorded again from those (Keras 3's clone_graph_nodes): the model starts
        there, sharing the layers and weights of the graph it was cut from."""
        from .graph import clone_graph_nodes

        inputs, outputs = clone_graph_nodes(self.inputs, self.outputs)
        self.inputs, self.outputs = inputs, outputs

    @property
    def input(self):
        """The input tensor(s) as given to the constructor: one tensor, or a list."""
        return self._graph_struct("inputs", "_single_input")

    @property
    def output(self):
        """The output tensor(s) as given to the constructor: one tensor, or a list."""
        return self._graph_struct("outputs", "_single_output")

    def _graph_struct(self, attribute, single):
        tensors = getattr(self, attribute, None)
        if not tensors:
            raise AttributeError(f"{type(self).__name__} '{self.name}' has no {attribute} yet "
                                 "(it is not built: give it an Input or call it on data).")
        return tensors[0] if getattr(self, single, False) else list(tensors)

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (shenjing's config format, not Keras's); rebuild it with
        ``shenjing.models.model_from_json``. kwargs go to ``json.dumps``."""
        from .cloning import model_to_json

        return model_to_json(self, **kwargs)

    def _check_unique_name(self, layer, names):
        if layer.name in names:
            raise ArgumentError(f"Model '{self.name}': two layers are named '{layer.name}'; "
                                "layer names must be unique.")

    def _ordered_nodes(self):
        """Every node between the inputs and the outputs, each after its parents, in Keras 3's
        order (see graph.ordered_nodes), which fixes the order of layers and weights."""
        from .graph import ordered_nodes

        return ordered_nodes(self.inputs, self.outputs, self.name)

    # ----- layers and weights ------------------------------------------------------------
    @property
    def _layers(self) -> list[Layer]:
        """Every layer, input layers included, in call order; then the layers held as
        attributes that the graph does not hold (a subclassed model has only those)."""
        graph = self.__dict__.get("_graph_layers", [])
        ids = {id(layer) for layer in graph}
        return graph + [layer for layer in Layer._sublayers(self) if id(layer) not in ids]

    def _sublayers(self):
        return self._layers

    @property
    def layers(self) -> list[Layer]:
        """A graph's layers (as Keras 3's functional models list their operations; models
        held as attributes still add their weights), else the tracked ones (subclassed)."""
        graph = self.__dict__.get("_graph_layers")
        return list(graph) if graph else list(self._layers)

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ArgumentError(f"Model '{self.name}': no layer named {name!r}; layers are "
                            f"{[layer.name for layer in self._layers]}.")

    # ----- calling -----------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        if self._subclassed:
            return Layer.compute_output_shape(self, input_shape)
        return self.output_shape

    def call(self, inputs, training=False):
        inputs = _as_list(inputs)
        if len(inputs) != len(self.inputs):
            raise ArgumentError(f"Model '{self.name}': expected {len(self.inputs)} "
                                f"input{'s' if len(self.inputs) > 1 else ''}, got "
                                f"{len(inputs)} (a list or tuple of arrays means one per "
                                "input).")
        # inference without autograd: conv blocks run fused; always: a ReLU and the max pool it
        # feeds in one op (the results of the layers one by one; see fusion)
        chains, swaps = self._plans()
        if training or is_grad_enabled():
            chains = {}
        fused = set()  # ids of the nodes computed with an earlier one
        values = {}
        for symbolic, value in zip(self.inputs, inputs):
            expected = symbolic.shape
            if len(value.shape) != len(expected) or any(
                e is not None and e != g for e, g in zip(expected[1:], value.shape[1:])
            ):
                raise ArgumentError(
                    f"Model '{self.name}': input '{symbolic.node.layer.name}' expects shape "
                    f"{format_shape(expected)}, got {tuple(value.shape)}."
                )
            values[id(symbolic)] = value
        for node in self._nodes:
            if isinstance(node.layer, InputLayer) or id(node) in fused:
                continue
            chain = chains.get(id(node))
            out = None if chain is None else fusion.run_chain(chain, values[id(node.inputs)])
            if out is not None:
                values[id(chain[-1].outputs[0])] = out
                fused.update(id(n) for n in chain)
                continue
            pool = swaps.get(id(node))
            if pool is not None and fusion.swappable(node, pool):
                values[id(pool.outputs[0])] = fusion.relu_then_pool(
                    node, pool, values[id(node.inputs)], training)
                fused.add(id(pool))
                continue
            args = node.inputs
            if isinstance(args, (list, tuple)):
                args = [values[id(t)] for t in args]
            else:
                args = values[id(args)]
            kwargs = node.kwargs  # its symbolic tensors (initial_state, ...) take their values
            if kwargs:
                kwargs = map_symbolic(lambda t: values[id(t)], kwargs)
            out = node.layer(args, training=training, **kwargs)
            for symbolic, value in zip(node.outputs, _as_list(out)):
                values[id(symbolic)] = value
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if self._single_output else outputs

    def _plans(self):
        """(conv chains, ReLU-pool swaps) of this graph (see fusion), found once."""
        if getattr(self, "_fusion_plans", None) is None:
            self._fusion_plans = (fusion.conv_chains(self._nodes, self.outputs),
                                  fusion.relu_pool_swaps(self._nodes, self.outputs))
        return self._fusion_plans

    def __call__(self, inputs, *args, training=None, **kwargs):
        if self._subclassed:
            return subclassed.call(self, Layer.__call__, inputs, *args, training=training,
                                   **kwargs)
        if not self.built and not isinstance(inputs, SymbolicTensor):
            self.build_for(tuple(inputs.shape) if not isinstance(inputs, (list, tuple)) else
                           [tuple(x.shape) for x in inputs])
        return super().__call__(inputs, *args, training=training, **kwargs)

    # ----- saving ------------------------------------------------------------------------
    def save(self, path, include_optimizer=True):
        """One safetensors file: architecture, weights, optimizer state (no pickle). Under a
        DataParallel only rank 0 writes (the ranks hold the same weights)."""
        from ..saving.model_io import save_model

        if not distribution_context.writes_files():
            return

        save_model(self, path, include_optimizer=include_optimizer)

    def save_weights(self, path):
        from ..saving.model_io import save_weights

        if not distribution_context.writes_files():  # rank 0 writes (see save)
            return

        save_weights(self, path)

    def load_weights(self, path, skip_mismatch=False, by_name=True, check_values=True):
        """Load weights saved by save_weights or save (see saving.load_weights): by name, or
        in the saved order with by_name=False; skip_mismatch skips what does not fit."""
        from ..saving.loading import load_weights

        load_weights(self, path, skip_mismatch=skip_mismatch, by_name=by_name,
                     check_values=check_values)

    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
        """Export for inference outside shenjing, as Keras 3's Model.export: format "onnx"
        only (needs the onnx extra), opset_version in kwargs (default 17); see shenjing/export."""
        from ..export import export_model

        if not distribution_context.writes_files():  # rank 0 writes (see save)
            return

        export_model(self, filepath, format=format, verbose=verbose,
                     input_signature=input_signature, **kwargs)

    # ----- subclassed models (models/subclassed.py) ---------------------------------------
    @property
    def _subclassed(self) -> bool:
        """A subclass with its own call (Keras's subclassed model), not a graph."""
        return type(self).call is not Model.call and not self.__dict__.get("_graph_layers")

    def _derives_output_shape(self):
        return self._subclassed and type(self).compute_output_shape is Model.compute_output_shape

    def build(self, input_shape):
        """A subclassed model builds its layers by running call on zeros of input_shape."""
        if self._subclassed:
            subclassed.build(self, input_shape)

    # ----- config ------------------------------------------------------------------------
    def get_config(self):
        """Layers with their configs and, per node, which (layer, node, output) feed it."""
        if self._subclassed:
            return Layer.get_config(self)
        node_ids = {id(n): i for i, n in enumerate(self._nodes)}
        layer_index = {id(layer): i for i, layer in enumerate(self._graph_layers)}

        def ref(t):
            return [t.node.layer.name, node_ids[id(t.node)], t.index]

        from ..saving.registry import serialize_layer
        from .node_config import kwargs_to_config

        nodes = []
        for node in self._nodes:
            inputs = node.inputs
            inbound = [ref(t) for t in inputs] if isinstance(inputs, (list, tuple)) else ref(inputs)
            nodes.append({"layer": layer_index[id(node.layer)], "inputs": inbound,
                          "list_input": isinstance(inputs, (list, tuple))})
            if node.kwargs:
                nodes[-1]["kwargs"] = kwargs_to_config(self, node, ref)

        return {
            "name": self.name,
            "layers": [serialize_layer(layer) for layer in self._graph_layers],
            "nodes": nodes,
            "inputs": [ref(t) for t in self.inputs],
            "outputs": [ref(t) for t in self.outputs],
            "single_input": self._single_input, "single_output": self._single_output,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.registry import deserialize_layer
        from .node_config import kwargs_from_config

        if cls.call is not Model.call:
            return subclassed.from_config(cls, config)
        layers = [deserialize_layer(c, custom_objects) for c in config["layers"]]
        produced = []  # outputs of each node, in order
        names = [layers[spec["layer"]].name for spec in config["nodes"]]
        for i, spec in enumerate(config["nodes"]):
            layer = layers[spec["layer"]]
            if isinstance(layer, InputLayer):
                produced.append([layer.output])
                continue

            def resolve(r):
                return produced[r[1]][r[2]]

            inputs = ([resolve(r) for r in spec["inputs"]] if spec["list_input"]
                      else resolve(spec["inputs"]))
            kwargs = kwargs_from_config(spec.get("kwargs", {}), i, produced, names, layer)
            produced.append(_as_list(layer(inputs, **kwargs)))
        inputs = [produced[r[1]][r[2]] for r in config["inputs"]]
        outputs = [produced[r[1]][r[2]] for r in config["outputs"]]
        return cls(inputs[0] if config["single_input"] else inputs,
                   outputs[0] if config["single_output"] else outputs, name=config["name"])


class Sequential(Model):
    """A linear stack of layers: ``Sequential([Input((28, 28, 1)), Conv2D(8, 3), ...])``."""

    def __init__(self, layers=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self._single_input = self._single_output = True
        self._input_layer: InputLayer | None = None
        self._stack: list[Layer] = []
        self._stack_names: set[str] = set()
        self._chain: list = []  # the input, then the output of each stack layer called so far
        self.built = False
        if layers is not None and not isinstance(layers, (list, tuple)):
            raise ArgumentTypeError(f"Sequential: layers must be a list of layers, got "
                                    f"{type(layers).__name__} {layers!r:.80}.")
        for layer in layers or []:
            self.add(layer)

    @property
    def _layers(self):
        return ([self._input_layer] if self._input_layer else []) + self._stack

    @property
    def layers(self):
        return list(self._stack)  # as in Keras, a Sequential's layers omit its InputLayer

    def add(self, layer) -> None:
        """Append a layer; if the input shape is known, build it now (errors show here)."""
        if isinstance(layer, SymbolicTensor):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._input_layer is not None or self._stack:
                raise ArgumentError(f"Sequential '{self.name}': an Input must come first.")
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise ArgumentTypeError(f"Sequential '{self.name}': layers must be Layer instances "
                                    f"(or Input(...)), got {layer!r:.60} of type "
                                    f"{type(layer).__name__}.")
        if layer.name in self._stack_names:
            raise ArgumentError(f"Sequential '{self.name}': a layer named '{layer.name}' is "
                             "already in the model; layer names must be unique.")
        if self._input_layer is None and not self._stack and layer._input_shape_arg:
            self._input_layer = InputLayer(shape=layer._input_shape_arg)
        self._stack.append(layer)
        self._stack_names.add(layer.name)
        if self._input_layer is not None:
            self._build_graph()

    def pop(self) -> Layer:
        layer = self._stack.pop()
        self._stack_names = {kept.name for kept in self._stack}
        del self._chain[len(self._stack) + 1:]
        if self._input_layer is not None and self._stack:
            self._build_graph(rebuild=True)
        return layer

    def _build_graph(self, rebuild=False):
        """Call the stack's layers not called yet on the last output, then take the graph.

        Each layer is called once, on the output of the one before (not the whole stack again
        per add), and a layer that just extends the chain is appended to the graph: building n
        layers costs O(n). A layer that failed is called again by the next add, as before.
        """
        start = self._input_layer.output
        if not self._chain or self._chain[0] is not start:
            self._chain = [start]
        before = len(self._chain)
        for layer in self._stack[before - 1:]:
            self._chain.append(layer(self._chain[-1]))
        x = self._chain[-1]
        if rebuild or not self._append_node(x, len(self._chain) - before):
            self._set_graph(start, x)

    def _append_node(self, x, added) -> bool:
        """Extend the graph by the one node that made x from its output; False if x is not
        such a node (then the graph is taken again from scratch, as _set_graph orders it)."""
        if not (added == 1 and self.built and getattr(self, "_graph_names", None) is not None
                and self._single_output and len(self.outputs) == 1
                and isinstance(x, SymbolicTensor) and len(x.node.parents) == 1
                and x.node.parents[0] is self.outputs[0]):
            return False
        # x's node is one level below every node of the graph, so it sorts last
        layer = x.node.layer
        if id(layer) not in self._graph_layer_ids:
            self._check_unique_name(layer, self._graph_names)
            self._graph_layers.append(layer)
            self._graph_layer_ids.add(id(layer))
            self._graph_names.add(layer.name)
        self._nodes.append(x.node)
        self._fusion_plans = None
        self.outputs = [x]
        self.output_shape = x.shape
        return True

    def build(self, input_shape):
        if self._input_layer is None:
            self._input_layer = InputLayer(shape=tuple(input_shape[1:]))
        self._build_graph()

    def build_for(self, input_shape):
        if not self.built:
            self.build(input_shape)
        return self.output_shape

    def compute_output_shape(self, input_shape):
        if not self.built:
            self.build(input_shape)
        return self.output_shape

    def get_config(self):
        from ..saving.registry import serialize_layer

        layers = [serialize_layer(layer) for layer in self._stack]
        if self._input_layer is not None:
            layers.insert(0, serialize_layer(self._input_layer))
        return {"name": self.name, "layers": layers}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from ..saving.registry import deserialize_layer

        return cls([deserialize_layer(c, custom_objects) for c in config["layers"]],
                   name=config["name"])
