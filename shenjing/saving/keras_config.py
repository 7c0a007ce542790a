"""Keras 3's model configs (``config.json`` of a ``.keras`` file) mapped to ours and back.

Keras 3 serializes every object as ``{"module", "class_name", "config", "registered_name"}``
(layers, initializers, regularizers, DTypePolicy dtypes), adds ``build_config`` to layers and,
in a functional model, each layer's ``inbound_nodes`` (``{"args", "kwargs"}`` holding
``__keras_tensor__`` entries whose ``keras_history`` is [layer name, node index of that layer,
output index]). ``from_keras`` reads such a config as data into our config (registry names
only: nothing is imported; a Keras argument with no counterpart here is dropped only when it
holds Keras's neutral default, otherwise refused by name). ``to_keras`` writes the other way.
"""

from ..errors import ArgumentError
from .registry import LayerConfigError, _unknown_arguments, registered

# Keras arguments shenjing's layers do not take, and the values that mean "not used"
_NEUTRAL = {"groups": 1, "renorm_momentum": 0.99, "data_format": "channels_last",
            "trainable": True, "lora_alpha": None, "autocast": True, "seed": None,
            "build_input_shape": None, "input_dim": None}
_OPS_FOR_MASKS = {"NotEqual"}  # keras.ops nodes that only compute an Embedding's mask
_SKIP_KEYS = ("module", "registered_name", "build_config", "compile_config", "shared_object_id",
              "name", "inbound_nodes")
_NESTED_LAYER_KEYS = ("layer", "backward_layer", "cell")


def _fail(where, problem):
    raise LayerConfigError(where, problem)


# ----- Keras -> shenjing ---------------------------------------------------------------------
def from_keras(entry, custom_objects, where=()):
    """Our {"class_name", "config"} for a Keras 3 layer or model entry; LayerConfigError names
    the layer chain and the argument that cannot be mapped."""
    if not (isinstance(entry, dict) and isinstance(entry.get("class_name"), str)
            and isinstance(entry.get("config", {}), dict)):
        _fail([*where, "layer"], f"a layer entry must be {{'class_name', 'config'}}, got "
              f"{entry!r:.100}")
    name = entry["class_name"]
    config = entry.get("config", {})
    label = [*where, f"{name} {config.get('name')!r}"]
    module, registered_name = entry.get("module"), entry.get("registered_name")
    key = registered_name if isinstance(registered_name, str) and ">" in registered_name else name
    key = "Model" if key == "Functional" else key
    cls = custom_objects.get(key) or custom_objects.get(key.rpartition(">")[2])
    if cls is None:
        if module is not None and not (isinstance(module, str) and module.split(".")[0] ==
                                       "keras"):
            _fail(label, f"the file names class {name!r} of module {module!r:.60}: only Keras's "
                  "own layers, or classes passed in custom_objects, are rebuilt; nothing is "
                  "imported by name")
        cls = registered().get(key)
    if cls is None:
        _fail(label, f"Keras's {name!r} (module {module!r}) has no shenjing counterpart; pass "
              f"a class as custom_objects={{{key.rpartition('>')[2]!r}: ...}}")
    if name == "Lambda":
        config = _lambda_config(config, label)
    if key == "Sequential":
        return {"class_name": key, "config": _sequential(config, custom_objects, label)}
    if key == "Model":
        return {"class_name": key, "config": _functional(config, custom_objects, label)}
    ours = {}
    for arg, value in config.items():
        if arg in _NESTED_LAYER_KEYS and isinstance(value, dict):
            ours[arg] = from_keras(value, custom_objects, label)
        elif arg == "cells" and isinstance(value, list):
            ours[arg] = [from_keras(v, custom_objects, label) for v in value]
        else:
            ours[arg] = _value(arg, value, label)
    if key == "InputLayer":
        ours = _input_layer(ours, label)
    for arg in _unknown_arguments(cls, ours):
        value = ours.pop(arg)
        if not (value in (None, False, [], {}) or _NEUTRAL.get(arg, object()) == value):
            _fail(label, f"Keras argument {arg}={value!r:.80} has no counterpart in shenjing's "
                  f"{cls.__name__}")
    return {"class_name": key, "config": ours}


def _value(arg, value, label):
    """A Keras argument's value as ours: DTypePolicy entries by name, initializers and
    regularizers as {"class_name", "config"} without their null settings."""
    if isinstance(value, dict) and "class_name" in value:
        if arg == "dtype" or "DTypePolicy" in str(value.get("class_name")):
            policy = (value.get("config") or {}).get("name")
            if value.get("class_name") != "DTypePolicy" or str(policy).startswith("mixed_"):
                _fail(label, f"Keras's dtype policy {value.get('class_name')} {policy!r:.40} "
                      "(mixed precision, quantization) has no counterpart: shenjing computes "
                      "each layer in one dtype")
            return policy
        if arg == "activation" or value.get("class_name") in ("function", "__lambda__"):
            _fail(label, f"{arg} is a Python function ({value.get('config')!r:.60}); shenjing "
                  "rebuilds only the activations it names")
        inner = value.get("config") or {}
        if not isinstance(inner, dict):
            _fail(label, f"{arg}: expected a config object, got {inner!r:.80}")
        return {"class_name": value["class_name"],
                "config": {k: v for k, v in inner.items() if v is not None}}
    return value


def _lambda_config(config, label):
    function = config.get("function")
    if isinstance(function, dict) and function.get("class_name") == "function" and isinstance(
            function.get("config"), str):
        return {**config, "function": function["config"]}
    _fail(label, "a Keras Lambda holds Python bytecode, which shenjing never executes; give the "
          "function a name and pass it in custom_objects, or rebuild the layer in code")


def _input_layer(config, label):
    shape = config.pop("batch_shape", None)
    if shape is not None:
        if not isinstance(shape, list) or not shape:
            _fail(label, f"batch_shape must be a list, got {shape!r:.80}")
        config["batch_size"], config["shape"] = shape[0], shape[1:]
    config.pop("input_tensor", None)
    return config


def _sequential(config, custom_objects, label):
    entries = config.get("layers")
    if not isinstance(entries, list):
        _fail(label, f"'layers' must be a list, got {entries!r:.80}")
    layers = [from_keras(e, custom_objects, label) for e in entries]
    shape = config.get("build_input_shape")
    if isinstance(shape, list) and shape and (not layers or
                                              layers[0]["class_name"] != "InputLayer"):
        layers.insert(0, {"class_name": "InputLayer",
                          "config": {"shape": shape[1:], "batch_size": shape[0]}})
    return {"name": config.get("name"), "layers": layers}


def _functional(config, custom_objects, label):
    """Keras's per-layer inbound_nodes as our list of nodes (in an order where every node
    comes after those it takes), mask ops dropped: shenjing carries masks itself."""
    entries = config.get("layers")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        _fail(label, f"'layers' must be a list of layer entries, got {entries!r:.80}")
    dropped, kept, layers = set(), [], []
    for entry in entries:
        if str(entry.get("module", "")).startswith("keras.src.ops") and entry.get(
                "class_name") in _OPS_FOR_MASKS:
            dropped.add(entry.get("name"))
            continue
        kept.append(entry)
        layers.append(from_keras(entry, custom_objects, label))
    _check_mask_ops(entries, dropped, label)
    nested = {e.get("name") for e in kept if e.get("class_name") == "Functional"}
    global_index, nodes = {}, []  # (layer name, Keras node index) -> our node index

    def ref(tensor, where, offset=0):
        history = (tensor.get("config") or {}).get("keras_history") if isinstance(
            tensor, dict) and tensor.get("class_name") == "__keras_tensor__" else None
        if not (isinstance(history, list) and len(history) == 3):
            _fail(label, f"{where}: expected a __keras_tensor__ reference, got {tensor!r:.100}")
        name, node, index = history
        if name in dropped:
            _fail(label, f"{where}: takes the output of Keras op {name!r}, which shenjing "
                  "does not rebuild (only as a mask)")
        # a nested functional model's own first node is counted in input_layers and
        # output_layers, not in the inbound nodes' references (Keras's get_config)
        node = node - offset if name in nested and type(node) is int else node
        if (name, node) not in global_index:
            raise _NotYet
        return [name, global_index[(name, node)], index]

    pending = [(i, e, k, node) for i, e in enumerate(kept)
               for k, node in enumerate(e.get("inbound_nodes") or [None])]
    while pending:
        left = []
        for i, entry, k, node in pending:
            try:
                spec = _node(i, node, entry, ref, dropped, label)
            except _NotYet:
                left.append((i, entry, k, node))
                continue
            global_index[(entry.get("name"), k)] = len(nodes)
            nodes.append(spec)
        if len(left) == len(pending):
            _fail(label, f"the graph has loops or nodes whose inputs never appear: "
                  f"{[e.get('name') for _, e, _, _ in left][:5]}")
        pending = left

    def ends(key):
        refs = config.get(key)
        single = isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str)
        refs = [refs] if single else refs
        if not isinstance(refs, list) or not refs:
            _fail(label, f"'{key}' must list [layer, node, index] references, got {refs!r:.80}")
        out = []
        for r in refs:
            try:
                out.append(ref({"class_name": "__keras_tensor__",
                                "config": {"keras_history": r}}, key, offset=1))
            except _NotYet:
                _fail(label, f"'{key}': {r!r:.80} names no node of the graph")
        return out, single

    inputs, single_in = ends("input_layers")
    outputs, single_out = ends("output_layers")
    return {"name": config.get("name"), "layers": layers, "nodes": nodes, "inputs": inputs,
            "outputs": outputs, "single_input": single_in, "single_output": single_out}


def _history(tensor):
    config = tensor.get("config") if isinstance(tensor, dict) else None
    history = config.get("keras_history") if isinstance(config, dict) else None
    return tuple(history) if isinstance(history, list) else None


def _check_mask_ops(entries, dropped, label):
    """A dropped NotEqual op must be the mask Keras derives from an Embedding(mask_zero=True)
    input (NotEqual(ids, 0)): shenjing computes that mask itself. Any other op is refused."""
    embedded = set()
    for entry in entries:
        if entry.get("class_name") == "Embedding" and (entry.get("config") or {}).get(
                "mask_zero"):
            for node in entry.get("inbound_nodes") or []:
                args = node.get("args") if isinstance(node, dict) else None
                if isinstance(args, list) and args:
                    embedded.add(_history(args[0]))
    for entry in entries:
        if entry.get("name") not in dropped:
            continue
        for node in entry.get("inbound_nodes") or []:
            args = node.get("args") if isinstance(node, dict) else None
            if not (isinstance(args, list) and len(args) == 2 and args[1] == 0
                    and _history(args[0]) in embedded):
                _fail(label, f"Keras op {entry.get('name')!r} ({entry.get('class_name')}) is "
                      "not the mask of an Embedding(mask_zero=True), which is the only op "
                      "node shenjing rebuilds (by computing the mask itself)")


class _NotYet(Exception):
    """A node whose inputs are not rebuilt yet: tried again in the next pass."""


def _node(index, node, entry, ref, dropped, label):
    where = f"layer {entry.get('name')!r}"
    if node is None:  # an InputLayer
        return {"layer": index, "inputs": [], "list_input": True}
    if not isinstance(node, dict) or not isinstance(node.get("args"), list) or not node["args"]:
        _fail(label, f"{where}: an inbound node must be {{'args': [...], 'kwargs': {{...}}}}, "
              f"got {node!r:.100}")
    args, kwargs = node["args"], dict(node.get("kwargs") or {})
    if entry.get("class_name") == "MultiHeadAttention" and len(args) in (2, 3):
        # Keras calls it (query, value, key=...); ours takes [query, value, key]
        key = args[2] if len(args) == 3 else kwargs.pop("key", None)
        args = [[*args[:2], args[1] if key is None else key]]
    if len(args) > 1:
        _fail(label, f"{where}: called with {len(args)} positional arguments; shenjing's "
              "layers take their inputs as one")
    first = args[0]
    if isinstance(first, list):
        spec = {"layer": index, "inputs": [ref(t, where) for t in first], "list_input": True}
    else:
        spec = {"layer": index, "inputs": ref(first, where), "list_input": False}
    ours = {}
    for key, value in kwargs.items():
        if key == "training":
            continue
        if key == "mask" and _names_only(value, dropped):
            continue
        ours[key] = _tensors(value, ref, f"{where} {key}")
    if ours:
        spec["kwargs"] = ours
    return spec


def _names_only(value, dropped):
    tensors = value if isinstance(value, list) else [value]
    return all(isinstance(t, dict) and ((t.get("config") or {}).get("keras_history") or [None])[0]
               in dropped for t in tensors if t is not None)


def _tensors(value, ref, where):
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return {"__tensor__": ref(value, where)}
    if isinstance(value, list):
        return [_tensors(v, ref, where) for v in value]
    return value


# ----- shenjing -> Keras ---------------------------------------------------------------------
# our config keys that Keras's constructor of the same class does not take
_OURS_ONLY = {"InputLayer": ("shape", "batch_size"), "SpatialDropout1D": ("trainable",),
              "SpatialDropout2D": ("trainable",), "SpatialDropout3D": ("trainable",)}
_MODULES = {"_initializer": "keras.initializers", "_regularizer": "keras.regularizers",
            "_constraint": "keras.constraints"}


def to_keras(layer):
    """The Keras 3 entry of a built shenjing layer or model."""
    from ..models import Model, Sequential

    name = type(layer).__name__
    if isinstance(layer, Model) and getattr(layer, "_subclassed", False):
        raise ArgumentError(f"save: model '{layer.name}' is a subclassed model, which a "
                            ".keras file cannot describe without its code; save it as "
                            ".shenjing, or build it with the functional API")
    if isinstance(layer, Sequential):
        config = {"name": layer.name, "trainable": layer.trainable, "dtype": "float32",
                  "layers": [to_keras(child) for child in layer._layers]}
        entry = {"module": "keras", "class_name": "Sequential", "config": config}
    elif isinstance(layer, Model):
        entry = {"module": "keras.src.models.functional", "class_name": "Functional",
                 "config": _functional_to_keras(layer)}
    else:
        entry = {"module": "keras.layers", "class_name": name,
                 "config": config_to_keras(name, layer.get_config())}
    entry["registered_name"] = None if name in registered() else name
    shape = getattr(layer, "input_shape", None)
    if shape is not None and name == "MultiHeadAttention":  # Keras builds it from 3 shapes
        entry["build_config"] = {"shapes_dict": dict(zip(
            ("query_shape", "value_shape", "key_shape"), shape))}
    elif shape is not None and name != "InputLayer":
        entry["build_config"] = {"input_shape": shape}
    return entry


def config_to_keras(name, config):
    """Our layer config as Keras's: nested layers, initializers and the like as Keras
    entries; an InputLayer's shape as batch_shape."""
    out = {}
    for key, value in config.items():
        if key in _NESTED_LAYER_KEYS + ("cells",) and value is not None:
            items = value if isinstance(value, list) else [value]
            converted = [{"module": "keras.layers", "class_name": v["class_name"],
                          "config": config_to_keras(v["class_name"], v["config"]),
                          "registered_name": None} for v in items]
            out[key] = converted if isinstance(value, list) else converted[0]
        elif isinstance(value, dict) and "class_name" in value:
            module = next((m for suffix, m in _MODULES.items() if key.endswith(suffix)),
                          "keras.initializers")
            out[key] = {"module": module, "class_name": value["class_name"],
                        "config": value.get("config", {}), "registered_name": None}
        elif key not in _OURS_ONLY.get(name, ()):
            out[key] = value
    if name == "InputLayer":
        out["batch_shape"] = [config.get("batch_size"), *config["shape"]]
    if name == "Lambda":  # functions by name, as Keras writes a named function
        for key in ("function", "output_shape", "mask"):
            if isinstance(out.get(key), str):
                out[key] = {"module": "builtins", "class_name": "function",
                            "config": out[key], "registered_name": "function"}
    padding = config.get("padding")
    if padding is not None and not isinstance(padding, str) and not name.startswith(
            ("ZeroPadding", "Cropping")):
        raise ArgumentError(f"save: {name} '{config.get('name')}' has explicit padding "
                            f"{padding!r:.60}, which Keras's {name} cannot hold; put a "
                            "ZeroPadding layer before it to save as .keras")
    return out


def _functional_to_keras(model):
    ours = model.get_config()
    counts, per_layer = {}, []  # each of our nodes' index among its layer's nodes
    for node in ours["nodes"]:
        layer = ours["layers"][node["layer"]]
        per_layer.append(counts.get(node["layer"], 0))
        counts[node["layer"]] = per_layer[-1] + 1
    nested = {entry["config"]["name"] for entry in ours["layers"]
              if entry["class_name"] == "Model"}

    def history(r, offset=0):
        return [r[0], per_layer[r[1]] + (offset if r[0] in nested else 0), r[2]]

    def tensor(value):
        if isinstance(value, dict) and "__tensor__" in value:
            r = value["__tensor__"]
            symbolic = model._nodes[r[1]].outputs[r[2]]
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(symbolic.shape), "dtype": symbolic.dtype.name,
                               "keras_history": history(r)}}
        if isinstance(value, list):
            return [tensor(v) for v in value]
        return value

    layers = []
    for index, layer in enumerate(model._graph_layers):
        entry = to_keras(layer)
        entry["name"] = layer.name
        inbound = []
        for node in ours["nodes"]:
            if node["layer"] != index or type(layer).__name__ == "InputLayer":
                continue
            refs = node["inputs"]
            args = [[tensor({"__tensor__": r}) for r in refs] if node["list_input"]
                    else tensor({"__tensor__": refs})]
            kwargs = {k: tensor(v) for k, v in node.get("kwargs", {}).items()}
            if type(layer).__name__ == "MultiHeadAttention" and node["list_input"]:
                args, kwargs["key"] = args[0][:2], args[0][2]  # Keras's (query, value, key=)
            inbound.append({"args": args, "kwargs": kwargs})
        entry["inbound_nodes"] = inbound
        layers.append(entry)
    inputs = [history(r, 1) for r in ours["inputs"]]
    outputs = [history(r, 1) for r in ours["outputs"]]
    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": inputs[0] if ours["single_input"] else inputs,
            "output_layers": outputs[0] if ours["single_output"] else outputs}


__all__ = ["config_to_keras", "from_keras", "to_keras"]
