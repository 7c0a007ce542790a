"""load_model and load_weights: a file is untrusted until every part of it has been checked.

load_model reads the file (its size bounds every tensor), checks each metadata entry, then
rebuilds the model with the file's arrays as the weights (see weights.FileWeights), so a config
that implies other sizes than the file holds fails before anything of that size is allocated.
Every refusal is a FileFormatError (a ValueError) naming the file and the entry, layer or
weight. Nothing is imported by name and nothing is unpickled.
"""

import inspect
import json
import os

import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from .. import optimizers, utils
from ..errors import ArgumentTypeError, ShenjingError
from ..io import FileFormatError, read_safetensors
from ..io.safetensors import open_regular_file
from ..layers.base import weights_provided_by
from ..models import resume
from . import validate
from . import weights as weights_module
from .model_io import (
    _OPTIMIZER_PREFIX,
    BUILD_SHAPE,
    FORMAT,
    FORMAT_VERSION,
    PATH_KEYS,
    WEIGHT_ORDER_KEY,
)
from .naming import weight_keys
from .registry import deserialize_layer, rebuilding

_NOT_WEIGHTS = (_OPTIMIZER_PREFIX, resume.TENSOR_PREFIX)  # optimizer slots, callback arrays


def load_model(path, custom_objects=None, compile=True, check_values=True):  # noqa: A002
    """Rebuild a model saved by ``save_model``; with ``compile`` restore the optimizer too.

    Args: custom_objects ({class name: class}: your Layer and Loss subclasses, and Callback
    subclasses whose state a checkpoint holds; classes are never imported by name); compile
    (restore the compile arguments, the optimizer state, ``model.completed_epochs`` and what a
    checkpoint saved to resume fit); check_values (refuse NaN/Inf weights, negative moving
    variances and second moments, and the same in a checkpoint's callback state; False loads
    them as they are, e.g. to inspect a diverged run).
    The random generator's state saved with the model is not applied on load: it is kept on
    the model and restored when training resumes, i.e. when ``fit(initial_epoch=
    model.completed_epochs)`` starts, so the resumed run repeats the uninterrupted one.
    """
    _check_custom_objects(custom_objects)
    if _keras_file(path):  # Keras 3's .keras zip: the config and the weights only
        from .keras_archive import load_keras_model

        return load_keras_model(path, custom_objects, check_values)
    if _h5_file(path):
        raise FileFormatError(path, "it is an HDF5 file: Keras's weights files (.weights.h5) "
                              "load with model.load_weights; Keras's legacy whole-model .h5 "
                              "is not read (open it in Keras and save it as .keras)",
                              field="format")
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise FileFormatError(path, "it is a safetensors file but not a shenjing model "
                              "(no 'format': 'shenjing' metadata); use load_weights for weights",
                              field="format")
    validate.check_format_version(metadata, path, FORMAT_VERSION)
    config = validate.parse_json(metadata, "shenjing_config", path)
    spec = training = None
    if compile and "compile_config" in metadata:
        spec = validate.parse_json(metadata, "compile_config", path)
        validate.check_compile_config(spec, path)
        if "training_state" in metadata:
            training = validate.parse_json(metadata, "training_state", path)
            validate.check_training_state(training, path)
    weights = {k: v for k, v in tensors.items() if not k.startswith(_NOT_WEIGHTS)}
    if compile and training is None:  # callback tensors without a state to hold them
        resume.check_callback_tensors(tensors, set(), path)
    model = _rebuild(config, weights, path, custom_objects, check_values, metadata)
    validate.check_weight_names(metadata, WEIGHT_ORDER_KEY, weights, path)
    if spec is not None:
        _compile(model, spec, path, custom_objects)
        state = {k[len(_OPTIMIZER_PREFIX):]: v for k, v in tensors.items()
                 if k.startswith(_OPTIMIZER_PREFIX)}
        if state:
            _set_optimizer_state(model, state, path, check_values)
        if training is not None:
            resume.keep_saved_position(model, training, tensors, path, check_values,
                                       custom_objects)  # batch, metrics, callbacks
            model.completed_epochs = training["epoch"]
            model._saved_rng_state = training["rng_state"]
    return model


def _keras_file(path) -> bool:
    """A .keras name, or a zip under another name (Keras 3 writes only zips as models)."""
    from .keras_archive import is_keras_path

    if isinstance(path, (str, os.PathLike)) and is_keras_path(path):
        return True
    return _starts_with(path, b"PK\x03\x04")


def _h5_file(path) -> bool:
    return _starts_with(path, b"\x89HDF\r\n\x1a\n")


def _starts_with(path, magic) -> bool:
    try:
        with open_regular_file(path) as f:  # never blocks on a pipe or reads a device
            return f.read(len(magic)) == magic
    except (OSError, TypeError, ValueError):
        return False  # left to the safetensors reader, which says what is wrong


def restore_saved_rng(model, initial_epoch) -> bool:
    """When ``fit`` resumes a loaded model where it stopped (``initial_epoch`` equal to
    ``model.completed_epochs``), put the random state saved with it back; True if it did.
    Called by fit: restoring it on load would change the host process's random stream. Only
    the first fit after the load can resume: any fit forgets the saved state."""
    state = getattr(model, "_saved_rng_state", None)
    model._saved_rng_state = None
    if state is None or initial_epoch != model.completed_epochs:
        return False
    utils.set_rng_state(state)
    return True


def _check_custom_objects(custom_objects):
    """A dict of class name to class: a key that is not a string, or a value that is not a
    class (a function, an instance), would never be looked up or never work, so it is refused
    rather than ignored. Whether a class is of the right kind is checked where the file names
    it (a Layer, a Loss, a Callback)."""
    if custom_objects is None:
        return
    if not isinstance(custom_objects, dict):
        raise ArgumentTypeError(f"load_model: custom_objects must be a dict of name to class, "
                                f"got {type(custom_objects).__name__}.")
    for key, value in custom_objects.items():
        if not isinstance(key, str):
            raise ArgumentTypeError(f"load_model: custom_objects[{key!r:.50}]: the keys are "
                                    f"class names (strings), got {type(key).__name__}.")
        if not isinstance(value, type) and not inspect.isfunction(value):
            raise ArgumentTypeError(f"load_model: custom_objects[{key!r:.50}] must be a class "
                                    "(or a function a Lambda layer names), got "
                                    f"{type(value).__name__} {value!r:.80}.")


def _rebuild(config, weights, path, custom_objects, check_values, metadata):
    """The model the config describes, built with the file's weights, or FileFormatError.

    Weights keyed by their layer's name come from the file as each layer builds. A file that
    also keys weights by path (layers held by custom layers, subclassed models; see naming)
    has them assigned once the model is built: the weights the config implies may then not
    exceed the file's in size, and must match its keys and shapes one to one."""
    from ..models import Model

    by_path = PATH_KEYS in metadata
    build_shape = validate.check_build_shape(metadata, BUILD_SHAPE, path)
    source = weights_module.FileWeights(weights, path, check_values, by_path=by_path)
    with rebuilding(path, "shenjing_config"), weights_provided_by(source):
        model = deserialize_layer(config, custom_objects)
        if isinstance(model, Model) and not model.built and build_shape is not None:
            model.build(build_shape)
    if not isinstance(model, Model):
        raise FileFormatError(path, f"the architecture is a {type(model).__name__} layer, not "
                              "a model", field="shenjing_config")
    if not model.built:
        raise FileFormatError(path, "the saved architecture has no input shape" + (
            f" ({BUILD_SHAPE!r} is needed to build a subclassed model)"
            if getattr(model, "_subclassed", False) else ""), field="shenjing_config")
    validate.check_sample_sizes(model, path)
    if by_path:
        source.assign_by_key(weight_keys(model))
    source.check_all_used()
    return model


def _compile(model, spec, path, custom_objects):
    """model.compile with the saved arguments; any refusal names the file and the entry."""
    try:
        optimizer = optimizers.deserialize(spec["optimizer"])
    except (ShenjingError, ValueError, TypeError) as error:
        raise FileFormatError(path, f"optimizer: {error}", field="compile_config") from error
    losses = [_loss(item, custom_objects, path) for item in spec["loss"]]
    try:
        # a saved metric is a name or a {"class_name", "config"} entry: rebuilt here, since
        # compile reads a dict in its metrics as one list per output name
        metrics = [metric if isinstance(metric, str) else metrics_module.get(metric)
                   for metric in spec.get("metrics") or []]
        for metric in metrics:
            metrics_module.get(metric, loss=losses[0])
        model.compile(optimizer=optimizer, loss=losses if spec.get("loss_is_list") else losses[0],
                      metrics=metrics or None, loss_weights=spec.get("loss_weights"))
    except (ShenjingError, ValueError, TypeError) as error:
        raise FileFormatError(path, str(error), field="compile_config") from error
    validate.check_compiled_outputs(model, spec, path)


def _loss(item, custom_objects, path):
    """One saved loss; a class named in custom_objects must be a Loss subclass."""
    name = item.get("class_name") if isinstance(item, dict) else None
    custom = (custom_objects or {}).get(name)
    if custom is not None and not (isinstance(custom, type)
                                   and issubclass(custom, losses_module.Loss)):
        raise ArgumentTypeError(f"load_model: custom_objects[{name!r}] must be a Loss subclass "
                                f"(the file names it as a loss), got {custom!r:.80}.")
    try:
        return losses_module.get(item, custom_objects=custom_objects)
    except (ShenjingError, ValueError, TypeError) as error:
        raise FileFormatError(path, f"loss {json.dumps(item)[:100]}: {error}",
                              field="compile_config") from error


# Slots that are sums or averages of squares (or of other values >= 0): a negative one makes
# the next step's square root NaN. Adam/AdamW's velocity (and AMSGrad's maximum of it),
# RMSprop's average of squares (its "velocity"), Adagrad's accumulator.
# slots that hold squares or norms (Adam, RMSprop, Adagrad, Adamax, Adadelta)
_NON_NEGATIVE_SLOTS = ("velocity", "velocity_hat", "accumulator", "norm", "accumulated_grad",
                       "accumulated_delta_var")


def _set_optimizer_state(model, state, path, check_values):
    """The optimizer's step count and slots, checked as the weights are."""
    if "iterations" in state:
        validate.check_iterations(state["iterations"], path)
    for key, value in state.items():
        if key != "iterations":
            field = _OPTIMIZER_PREFIX + key
            floating = value.dtype if value.dtype.kind == "f" else np.dtype(np.float32)
            state[key] = weights_module.check_value(path, field, value, floating, check_values)
            if (check_values and key.rpartition("/")[2] in _NON_NEGATIVE_SLOTS and value.size
                    and value.min() < 0):
                raise FileFormatError(path, f"holds negative values (down to {value.min():.3g}) "
                                      f"in a slot of {type(model.optimizer).__name__} that is "
                                      "an average of squares; pass check_values=False to load "
                                      "them as they are", field=f"weight {field!r}")
    try:
        model.optimizer.set_state(state, model.trainable_weights)
    except (ShenjingError, ValueError, TypeError) as error:
        raise FileFormatError(path, str(error), field="optimizer state") from error


def load_weights(model, path, skip_mismatch=False, by_name=True, check_values=True) -> None:
    """Load weights saved by ``save_weights`` (or ``save_model``) into a built model.

    Weights are matched by name; a copy of the same architecture whose layers were named
    automatically (dense_1 for dense) matches by its layers' order, as Keras 3 matches by
    topology. Args: skip_mismatch (skip, with a warning each, the weights whose shapes or
    names do not fit, instead of refusing the file); by_name (False: pair the file's weights
    with the model's in the saved order, shapes still checked); check_values (as load_model).
    Everything is checked before anything is assigned: a refused file leaves the model as is.
    """
    if not getattr(model, "built", False):
        raise FileFormatError(path, f"model '{model.name}' is not built yet; call it on data "
                              "or give it an Input first", field="load_weights")
    if _keras_file(path) or _h5_file(path):
        from .keras_archive import load_keras_weights

        return load_keras_weights(model, path, skip_mismatch, check_values)
    tensors, metadata = read_safetensors(path)
    validate.check_format_version(metadata, path, FORMAT_VERSION, required=False)
    tensors = {k: v for k, v in tensors.items() if not k.startswith(_NOT_WEIGHTS)}
    order = validate.check_weight_names(metadata, WEIGHT_ORDER_KEY, tensors, path)
    order = weights_module.file_order(tensors, order)
    pairs = weights_module.match(model, tensors, order, path, by_name, skip_mismatch)
    values = [weights_module.check_value(path, name, tensors[name], variable.dtype, check_values)
              for variable, name in pairs]
    for (variable, _), value in zip(pairs, values):
        variable.assign(value)
