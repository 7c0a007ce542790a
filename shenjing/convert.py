"""``shenjing convert IN OUT``: a model from one file format to another, chosen by the names.

In: a whole model (``.keras``, ``.safetensors``, ``.shenjing``). Out: ``.keras`` (Keras 3's
zip), ``.weights.h5`` (Keras's weights file), ``.safetensors``/``.shenjing`` (ours), ``.onnx``
(an inference graph). Loading follows ``load_model``'s rules: nothing is imported or unpickled
from a file, custom classes need ``custom_objects``.
"""

import os

from .errors import ArgumentError
from .saving.paths import EXTENSIONS, KERAS_EXTENSIONS

MODEL_INPUTS = (".keras", *EXTENSIONS)  # whole models (a .weights.h5 file holds weights only)
OUTPUTS = (*KERAS_EXTENSIONS, *EXTENSIONS, ".onnx")


def _kind(path, known, what):
    name = os.fspath(path).lower()
    for suffix in sorted(known, key=len, reverse=True):  # ".weights.h5" before ".h5"
        if name.endswith(suffix):
            return suffix
    raise ArgumentError(f"convert: cannot tell the format of {what} {os.fspath(path)!r} from "
                        f"its name; expected one of {', '.join(known)}.")


def convert(source, target, custom_objects=None) -> dict:
    """Load the model in ``source`` and write it to ``target`` in the format its name says;
    returns a summary: the formats, the model's name, layers and parameters, the bytes written."""
    from .saving import load_model

    if os.fspath(source).lower().endswith((".weights.h5", ".onnx")):
        raise ArgumentError(f"convert: {os.fspath(source)!r} holds no model architecture that "
                            "shenjing reads (a weights file or an ONNX graph); convert the model "
                            f"file instead ({', '.join(MODEL_INPUTS)}).")
    source_kind = _kind(source, MODEL_INPUTS, "the input")
    target_kind = _kind(target, OUTPUTS, "the output")
    model = load_model(source, custom_objects=custom_objects)
    if target_kind == ".onnx":
        model.export(target, format="onnx")
    elif target_kind == ".weights.h5":
        model.save_weights(target)
    else:
        model.save(target)
    return {"from": source_kind, "to": target_kind, "model": model.name,
            "layers": len(model.layers), "parameters": int(model.count_params()),
            "bytes": os.path.getsize(target)}


def describe(summary, target) -> str:
    return (f"wrote {os.fspath(target)} ({summary['to']}, {summary['bytes']:,} bytes) from a "
            f"{summary['from']} file: model '{summary['model']}', {summary['layers']} layers, "
            f"{summary['parameters']:,} parameters")
