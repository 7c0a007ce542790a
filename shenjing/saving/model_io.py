"""save_model / load_model / save_weights / load_weights, one safetensors file each, no pickle.

A model file holds every weight under ``"<layer>/<weight>"`` and, as JSON strings in the
metadata, the architecture (``shenjing_config``), the compile arguments, and with
``include_optimizer`` the optimizer state (``optimizer/<slot>`` tensors), the epochs completed
and the random generator's state, so training can resume exactly. Loading rebuilds layers from
the allow-list in ``registry``; it never imports names from the file and never unpickles.
"""

import json
import warnings

import numpy as np

from .. import losses as losses_module
from .. import optimizers, utils
from ..errors import ArgumentError
from ..io import read_safetensors_metadata, write_safetensors
from ..models import resume
from .naming import has_path_keys, weight_keys
from .paths import check_save_path
from .registry import serialize_layer

FORMAT = "shenjing"
FORMAT_VERSION = "1"
_OPTIMIZER_PREFIX = "optimizer/"
WEIGHT_ORDER_KEY = "weight_names"  # the weights in the model's order: the writer sorts by size


PATH_KEYS = "weight_paths"  # present: some weights are keyed by their path (see naming)
BUILD_SHAPE = "build_input_shape"  # a subclassed model's input shape, to build it on load


def _weights_by_name(model) -> dict:
    named = {}
    for key, variable, _ in weight_keys(model):
        if key in named:
            raise ArgumentError(f"save: two weights are named {key!r}; layer names must "
                                "be unique within a model.")
        named[key] = variable.data
    return named


def _layout_metadata(model) -> dict:
    """The entries load_model needs to find path-keyed weights and build a subclassed model."""
    metadata = {}
    if has_path_keys(model):
        metadata[PATH_KEYS] = "1"
    if getattr(model, "_subclassed", False):
        metadata[BUILD_SHAPE] = json.dumps(model.input_shape)
    return metadata


def _metric_spec(metric):
    return metric if isinstance(metric, str) else {"class_name": type(metric).__name__,
                                                    "config": metric.get_config()}


def save_model(model, path, include_optimizer=True) -> None:
    """Write the architecture, the weights and (optionally) the training state to ``path``."""
    path = check_save_path(path, "save_model")
    if path.lower().endswith(".keras"):
        from .keras_archive import save_keras_model

        return save_keras_model(model, path)
    if not model.built:
        raise ArgumentError(
            f"save: model '{model.name}' is not built yet; call it on data or give "
            "it an Input first.")
    tensors = dict(_weights_by_name(model))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "shenjing_config": json.dumps(serialize_layer(model)),
                WEIGHT_ORDER_KEY: json.dumps(list(tensors)), **_layout_metadata(model)}
    if model.compiled:
        if getattr(model, "_compile_metrics", None) is not None and (
                model._metric_specs is None or getattr(model, "_weighted_metric_specs", None)):
            warnings.warn(f"save: model '{model.name}' was compiled with metrics per output "
                          "(a dict or nested lists) or weighted_metrics, which the file does not "
                          "keep yet; after load_model, compile again to have them.",
                          stacklevel=3)
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
            # during fit: the batch within the epoch, the callbacks' states (models/resume.py)
            position, callback_tensors = resume.checkpoint_state(model)
            tensors.update(callback_tensors)
            metadata["training_state"] = json.dumps(
                {"epoch": model.completed_epochs, "rng_state": utils.get_rng_state(), **position}
            )
    write_safetensors(path, tensors, metadata)


def save_weights(model, path) -> None:
    """Write only the weights, keyed ``"<layer>/<weight>"``."""
    path = check_save_path(path, "save_weights")
    if path.lower().endswith(".weights.h5"):
        from .keras_archive import save_keras_weights

        return save_keras_weights(model, path)
    tensors = _weights_by_name(model)
    write_safetensors(path, tensors, {"format": FORMAT + "-weights",
                                      WEIGHT_ORDER_KEY: json.dumps(list(tensors))})


from .loading import load_model, load_weights

__all__ = ["load_model", "load_weights", "read_safetensors_metadata", "save_model",
           "save_weights"]
