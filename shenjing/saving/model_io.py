"""save_model / load_model / save_weights / load_weights, one safetensors file each, no pickle.

A model file holds every weight under ``"<layer>/<weight>"`` and, as JSON strings in the
metadata, the architecture (``shenjing_config``), the compile arguments, and with
``include_optimizer`` the optimizer state (``optimizer/<slot>`` tensors), the epochs completed
and the random generator's state, so training can resume exactly. Loading rebuilds layers from
the allow-list in ``registry``; it never imports names from the file and never unpickles.
"""

import json

import numpy as np

from .. import losses as losses_module
from .. import optimizers, utils
from ..io import FileFormatError, read_safetensors, read_safetensors_metadata, write_safetensors
from .paths import check_save_path
from .registry import deserialize_layer, serialize_layer

FORMAT = "shenjing"
FORMAT_VERSION = "1"
_OPTIMIZER_PREFIX = "optimizer/"


def _weights_by_name(model) -> dict:
    named = {}
    for variable in model.weights:
        if variable.name in named:
            raise ValueError(f"save: two weights are named {variable.name!r}; layer names must "
                             "be unique within a model.")
        named[variable.name] = variable.data
    return named


def _metric_spec(metric):
    return metric if isinstance(metric, str) else {"class_name": type(metric).__name__,
                                                    "config": metric.get_config()}


def save_model(model, path, include_optimizer=True) -> None:
    """Write the architecture, the weights and (optionally) the training state to ``path``."""
    path = check_save_path(path, "save_model")
    if not model.built:
        raise ValueError(f"save: model '{model.name}' is not built yet; call it on data or give "
                         "it an Input first.")
    tensors = dict(_weights_by_name(model))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "shenjing_config": json.dumps(serialize_layer(model))}
    if model.compiled:
        losses = model.loss if isinstance(model.loss, (list, tuple)) else [model.loss]
        metadata["compile_config"] = json.dumps({
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": [losses_module.serialize(losses_module.get(item)) for item in losses],
            "loss_is_list": isinstance(model.loss, (list, tuple)),
            "metrics": [_metric_spec(m) for m in (model._metric_specs or [])],
            "loss_weights": model._loss_weights,
        })
        if include_optimizer:
            for key, value in model.optimizer.get_state().items():
                tensors[_OPTIMIZER_PREFIX + key] = np.asarray(value)
            metadata["training_state"] = json.dumps(
                {"epoch": model.completed_epochs, "rng_state": utils.get_rng_state()}
            )
    write_safetensors(path, tensors, metadata)


def _json(metadata, key, path):
    try:
        return json.loads(metadata[key])
    except (KeyError, json.JSONDecodeError) as error:
        raise FileFormatError(path, f"its {key!r} entry is missing or not JSON ({error})") from None


def load_model(path, custom_objects=None, compile=True):  # noqa: A002 - Keras's argument name
    """Rebuild a model saved by ``save_model``; with ``compile`` restore the optimizer too."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise FileFormatError(path, "it is a safetensors file but not a shenjing model "
                              "(no 'format': 'shenjing' metadata); use load_weights for weights")
    model = deserialize_layer(_json(metadata, "shenjing_config", path), custom_objects)
    if not model.built:
        raise FileFormatError(path, "the saved architecture has no input shape")
    weights = {k: v for k, v in tensors.items() if not k.startswith(_OPTIMIZER_PREFIX)}
    _assign(model, weights, path)
    if compile and "compile_config" in metadata:
        spec = _json(metadata, "compile_config", path)
        losses = [losses_module.get(item) for item in spec["loss"]]
        model.compile(optimizer=optimizers.deserialize(spec["optimizer"]),
                      loss=losses if spec.get("loss_is_list") else losses[0],
                      metrics=spec["metrics"] or None, loss_weights=spec.get("loss_weights"))
        state = {k[len(_OPTIMIZER_PREFIX):]: v for k, v in tensors.items()
                 if k.startswith(_OPTIMIZER_PREFIX)}
        if state:
            model.optimizer.set_state(state, model.trainable_weights)
        if "training_state" in metadata:
            training = _json(metadata, "training_state", path)
            model.completed_epochs = int(training["epoch"])
            utils.set_rng_state(training["rng_state"])
    return model


def _assign(model, tensors, path):
    """Match weights by name; if the names differ (auto-named layers of a second copy of the
    architecture), match them by position as Keras does, when count and shapes agree."""
    own = {v.name: v for v in model.weights}
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    in_order = list(tensors.values())
    if (missing or unexpected) and len(in_order) == len(own) and all(
        value.shape == variable.shape for value, variable in zip(in_order, own.values())
    ):
        tensors, missing, unexpected = dict(zip(own, in_order)), [], []
    if missing or unexpected:
        raise ValueError(
            f"{path}: the weights do not fit model '{model.name}': missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}."
        )
    for name, variable in own.items():
        value = tensors[name]
        if value.shape != variable.shape:
            raise ValueError(f"{path}: weight {name!r} has shape {value.shape} in the file, the "
                             f"model expects {variable.shape}.")
        variable.assign(value)


def save_weights(model, path) -> None:
    """Write only the weights, keyed ``"<layer>/<weight>"``."""
    path = check_save_path(path, "save_weights")
    write_safetensors(path, _weights_by_name(model), {"format": FORMAT + "-weights"})


def load_weights(model, path) -> None:
    """Load weights saved by ``save_weights`` (or ``save_model``) into a built model."""
    tensors, _ = read_safetensors(path)
    _assign(model, {k: v for k, v in tensors.items() if not k.startswith(_OPTIMIZER_PREFIX)},
            path)


__all__ = ["load_model", "load_weights", "read_safetensors_metadata", "save_model",
           "save_weights"]
