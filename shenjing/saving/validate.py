"""Checks on the metadata of a model file, before anything is built from it.

Every entry (the architecture, the compile arguments, the training state) is untrusted: each
check raises FileFormatError naming the file and the entry ("<path>: compile_config: ..."), or,
inside a layer config, ArgumentError that the registry turns into a LayerConfigError naming
the layer. Sizes are checked before anything of that size is allocated.
"""

import json
import math

import numpy as np

from .. import arguments
from ..callbacks import state_fields
from ..errors import ArgumentError
from ..io import FileFormatError
from ..io.safetensors import unique_keys

MAX_JSON_DEPTH = 100  # a model nested in a model ... 30 deep; Python's parser fails near 1000
# per sample, in any layer's input or output, the bound the layers themselves keep
MAX_SAMPLE_ELEMENTS = arguments.MAX_ELEMENTS
MAX_COUNT = state_fields.MAX_COUNT  # epochs, batches, steps: as for a callback's counts
TRAINING_STATE_KEYS = ("epoch", "rng_state", "batch", "epoch_rng_state", "metrics", "callbacks")


# ----- the file's own entries --------------------------------------------------------------
def check_format_version(metadata, path, ours, required=True):
    """``format_version``: digits naming a version no newer than ours (a newer writer may mean
    something else by the same entries, so its files are refused rather than misread)."""
    version = metadata.get("format_version")
    if version is None and not required:
        return
    if not (isinstance(version, str) and version.isdigit() and version.isascii()
            and len(version) < 10):
        raise FileFormatError(path, f"expected a version number such as {ours!r}, got "
                              f"{version!r:.50}", field="format_version")
    if int(version) > int(ours):
        raise FileFormatError(path, f"the file is format version {version}, newer than the "
                              f"version {ours} this shenjing reads; load it with a newer "
                              "shenjing", field="format_version")


def check_weight_names(metadata, key, names, path):
    """The saved weight order (metadata[key]): each of the file's weight tensors once, by name;
    None where the file has no such entry."""
    if key not in metadata:
        return None
    order = parse_json(metadata, key, path)
    if not (isinstance(order, list) and all(isinstance(n, str) for n in order)):
        raise FileFormatError(path, f"must be a list of the weight tensors' names, got "
                              f"{order!r:.100}", field=key)
    if len(set(order)) != len(order) or set(order) != set(names):
        unknown = sorted(set(order) - set(names))[:3]
        missing = sorted(set(names) - set(order))[:3]
        raise FileFormatError(path, f"must list each weight tensor once (names no tensor: "
                              f"{unknown}, leaves out: {missing}, repeats: "
                              f"{len(order) - len(set(order))})", field=key)
    return order


# ----- JSON entries ------------------------------------------------------------------------
def parse_json(metadata, key, path):
    """The JSON value of metadata[key], refusing duplicate keys and deep nesting."""
    if key not in metadata:
        raise FileFormatError(path, "the entry is missing", field=key)
    try:
        value = json.loads(metadata[key], object_pairs_hook=unique_keys)
    except RecursionError:
        raise FileFormatError(path, "the JSON is nested too deeply to parse", field=key) from None
    except ValueError as error:
        raise FileFormatError(path, f"not valid JSON ({error})", field=key) from None
    depth = _depth(value)
    if depth > MAX_JSON_DEPTH:
        raise FileFormatError(path, f"the JSON is nested {depth} levels deep, more than the "
                              f"{MAX_JSON_DEPTH} a model needs", field=key)
    return value


def _depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


# ----- model configs -----------------------------------------------------------------------
def check_build_shape(metadata, key, path):
    """A subclassed model's input shape: a shape such as [null, 8] (or a list of them) whose
    samples hold at most MAX_SAMPLE_ELEMENTS values; None if the entry is absent."""
    if key not in metadata:
        return None
    shape = parse_json(metadata, key, path)
    multi = isinstance(shape, list) and bool(shape) and all(isinstance(s, list) for s in shape)
    for one in shape if multi else [shape]:
        if not (isinstance(one, list) and 0 < len(one) <= 16 and all(
                s is None or (type(s) is int and 0 < s < MAX_COUNT) for s in one)):
            raise FileFormatError(path, f"expected an input shape such as [null, 8], got "
                                  f"{shape!r:.100}", field=key)
        size = math.prod(s for s in one[1:] if s is not None)
        if size > MAX_SAMPLE_ELEMENTS:
            raise FileFormatError(path, f"the input shape {one} holds {size} values per sample, "
                                  f"more than the {MAX_SAMPLE_ELEMENTS} shenjing accepts",
                                  field=key)
    return [tuple(s) for s in shape] if multi else tuple(shape)


def check_model_config(cls, config):
    """The structure of a Sequential or functional Model config (before from_config runs):
    lists where lists are expected, and every node reference pointing at an earlier node."""
    from ..models import Sequential

    if not isinstance(config.get("name", ""), str):
        raise ArgumentError(f"'name' must be a string, got {config['name']!r:.100}")
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise ArgumentError(f"'layers' must be a list of layer entries, got {layers!r:.100}")
    if issubclass(cls, Sequential):
        return
    nodes = config.get("nodes")
    if not isinstance(nodes, list):
        raise ArgumentError(f"'nodes' must be a list, got {nodes!r:.100}")
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or not isinstance(node.get("list_input"), bool):
            raise ArgumentError(f"nodes[{i}] must be {{'layer', 'inputs', 'list_input'}}, got "
                                f"{node!r:.100}")
        _check_index(f"nodes[{i}]['layer']", node.get("layer"), len(layers), "layers")
        refs = node.get("inputs") if node["list_input"] else [node.get("inputs")]
        if not isinstance(refs, list):
            raise ArgumentError(f"nodes[{i}]['inputs'] must be a list (list_input is true), "
                                f"got {refs!r:.100}")
        for ref in refs:  # an InputLayer's node has none
            _check_ref(f"nodes[{i}]['inputs']", ref, i, nodes, layers)
    for key in ("inputs", "outputs"):
        refs = config.get(key)
        if not isinstance(refs, list) or not refs:
            raise ArgumentError(f"'{key}' must be a non-empty list of node references, got "
                                f"{refs!r:.100}")
        for ref in refs:
            _check_ref(f"'{key}'", ref, len(nodes), nodes, layers)
    for key in ("single_input", "single_output"):
        if not isinstance(config.get(key), bool):
            raise ArgumentError(f"'{key}' must be true or false, got {config.get(key)!r:.100}")


def _check_index(field, value, size, of):
    if type(value) is not int or not 0 <= value < size:
        raise ArgumentError(f"{field} must be an index into the {size} {of}, got {value!r:.100}")


def _check_ref(field, ref, nodes_before, nodes, layers):
    """A reference [layer name, node index, output index] to one of the earlier nodes, whose
    layer has that name: so a reference can only point back in the graph (no self reference,
    no cycle), and the name cannot say one thing while the index does another."""
    if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str)):
        raise ArgumentError(f"{field}: a reference must be [layer name, node index, output "
                            f"index], got {ref!r:.100}")
    _check_index(f"{field}: node index", ref[1], nodes_before, "nodes before it")
    if type(ref[2]) is not int or not 0 <= ref[2] < MAX_COUNT:
        raise ArgumentError(f"{field}: the output index must be an int >= 0, got {ref[2]!r:.50}")
    name = _layer_name(layers[nodes[ref[1]]["layer"]])
    if ref[0] != name:
        known = any(_layer_name(layer) == ref[0] for layer in layers)
        where = ("no layer of the config has that name" if not known else
                 "that layer is not the one called at that earlier node")
        raise ArgumentError(f"{field}: {ref!r:.100} names layer {ref[0]!r:.50}, but node "
                            f"{ref[1]} is a call of layer {name!r:.50} ({where}); a node can "
                            "only take outputs of layers called before it")


def _layer_name(entry):
    config = entry.get("config") if isinstance(entry, dict) else None
    return config.get("name") if isinstance(config, dict) else None


def explain_output_index(config, layers):
    """After Model.from_config failed with an IndexError, the reference whose output index is
    past the outputs of the node it names, in words (None if that is not what failed): the
    graph is walked again on shapes alone, with the layers from_config rebuilt (``layers``)."""
    from ..layers import InputLayer

    try:
        if len(layers) != len(config["layers"]):
            return None
        outputs = []  # the number of outputs of each node

        def find(field, refs):
            for ref in refs:
                if ref[2] >= len(outputs[ref[1]]):
                    count = len(outputs[ref[1]])
                    return (f"{field}: {ref!r:.100} takes output {ref[2]} of layer {ref[0]!r}, "
                            f"which has {count} output{'s' if count > 1 else ''} "
                            f"(indices 0 to {count - 1})")
            return None

        for i, node in enumerate(config["nodes"]):
            layer = layers[node["layer"]]
            if isinstance(layer, InputLayer):
                outputs.append([layer.output.shape])
                continue
            refs = node["inputs"] if node["list_input"] else [node["inputs"]]
            problem = find(f"nodes[{i}]['inputs']", refs)
            if problem:
                return problem
            shapes = [outputs[r[1]][r[2]] for r in refs]
            shape = layer.compute_output_shape(shapes if node["list_input"] else shapes[0])
            outputs.append(shape if isinstance(shape, list) else [shape])
        return find("'inputs'", config["inputs"]) or find("'outputs'", config["outputs"])
    except Exception:  # noqa: BLE001 - only an explanation: the IndexError is reported anyway
        return None


def check_sample_sizes(model, path):
    """Refuse a model whose inputs or outputs (per sample) hold more than MAX_SAMPLE_ELEMENTS:
    such shapes imply no weights, so no file tensor bounds them, and the first batch would try
    to allocate them."""
    for layer in model._layers:
        for kind, shape in (("input", layer.input_shape), ("output", layer.output_shape)):
            shapes = shape if isinstance(shape, list) else [shape]
            for one in shapes:
                if one is None:
                    continue
                size = math.prod(s for s in one[1:] if s is not None)
                if size > MAX_SAMPLE_ELEMENTS:
                    raise FileFormatError(
                        path, f"layer '{layer.name}' ({type(layer).__name__}) has an {kind} "
                        f"shape {tuple(one)} of {size} values per sample, more than the "
                        f"{MAX_SAMPLE_ELEMENTS} shenjing accepts", field="shenjing_config")


# ----- compile config and training state ---------------------------------------------------
def check_compile_config(spec, path):
    """The compile entry: an optimizer entry, a non-empty list of losses, optional metrics."""

    def fail(problem):
        raise FileFormatError(path, problem, field="compile_config")

    if not isinstance(spec, dict):
        fail(f"expected an object, got {spec!r:.100}")
    optimizer = spec.get("optimizer")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("class_name"), str)
            and isinstance(optimizer.get("config", {}), dict)):
        fail(f"'optimizer' must be {{'class_name': str, 'config': {{...}}}}, got "
             f"{optimizer!r:.100}")
    losses = spec.get("loss")
    if not isinstance(losses, list) or not losses:
        fail(f"'loss' must be a non-empty list of losses, got {losses!r:.100}")
    for item in losses:
        if not (isinstance(item, str) or isinstance(item, dict)
                and isinstance(item.get("class_name"), str)):
            fail(f"each loss must be a name or {{'class_name', 'config'}}, got {item!r:.100}")
    if not isinstance(spec.get("loss_is_list", False), bool):
        fail(f"'loss_is_list' must be true or false, got {spec['loss_is_list']!r:.50}")
    metrics = spec.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, (str, dict)) for m in metrics):
        fail(f"'metrics' must be a list of names or entries, got {metrics!r:.100}")
    weights = spec.get("loss_weights")
    if weights is not None and not (isinstance(weights, list)
                                    and all(arguments.is_finite_number(w) for w in weights)):
        fail(f"'loss_weights' must be null or a list of finite numbers, got {weights!r:.100}")


def check_compiled_outputs(model, spec, path):
    """The compile entry against the rebuilt model: one loss (or one per output) and one loss
    weight per output; an extra entry would otherwise be dropped without a word."""
    outputs = len(model.outputs)
    losses, weights = spec["loss"], spec.get("loss_weights")
    if spec.get("loss_is_list") and len(losses) != outputs:
        raise FileFormatError(path, f"'loss' lists {len(losses)} losses for the model's "
                              f"{outputs} output(s)", field="compile_config")
    if weights is not None and len(weights) != outputs:
        raise FileFormatError(path, f"'loss_weights' lists {len(weights)} weights for the "
                              f"model's {outputs} output(s)", field="compile_config")


def check_training_state(state, path):
    """{"epoch": int >= 0, "rng_state": a state NumPy's default generator accepts}."""
    from .. import utils

    def fail(problem):
        raise FileFormatError(path, problem, field="training_state")

    if not isinstance(state, dict):
        fail(f"expected an object, got {state!r:.100}")
    unknown = sorted(set(state) - set(TRAINING_STATE_KEYS))
    if unknown:
        fail(f"unknown entries {unknown[:5]!r:.200}; a training state holds "
             f"{', '.join(TRAINING_STATE_KEYS)}")
    epoch = state.get("epoch")
    if type(epoch) is not int or not 0 <= epoch < MAX_COUNT:
        fail(f"'epoch' must be an int from 0 to {MAX_COUNT - 1}, got {epoch!r:.100}")
    rng_state = state.get("rng_state")
    generator = type(utils.get_rng().bit_generator)()  # a scratch one: the global stays as is
    try:
        if not isinstance(rng_state, dict):
            raise TypeError(f"expected an object, got {rng_state!r:.100}")
        generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as error:
        fail(f"'rng_state' is not a state of {type(generator).__name__} ({error})")


def check_iterations(value, path):
    """The optimizer's step count: one integer >= 0."""
    value = np.asarray(value)
    if value.shape != () or value.dtype.kind not in "iu" or value < 0:
        raise FileFormatError(path, f"expected one integer >= 0, got dtype {value.dtype} shape "
                              f"{value.shape}", field="tensor 'optimizer/iterations'")
