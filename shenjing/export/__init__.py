"""Exporting a model for inference outside shenjing: ``model.export(path, format="onnx")``."""

from ..errors import ArgumentError

FORMATS = ("onnx",)


def export_model(model, filepath, format="onnx", verbose=None, input_signature=None,
                 **kwargs):
    """Write `model` to `filepath` in `format` (Keras 3's Model.export arguments); only "onnx"
    is supported (Keras's "tf_saved_model", "openvino", "litert" and "torch" need their
    runtimes). Returns None."""
    if format != "onnx":
        raise ArgumentError(f"export: format {format!r} is not supported; shenjing exports "
                            f"format='onnx' only (Keras's 'tf_saved_model', 'openvino', "
                            f"'litert' and 'torch' need those runtimes). Received: "
                            f"format={format!r}")
    from .onnx import export_onnx

    export_onnx(model, filepath, verbose=verbose, input_signature=input_signature, **kwargs)


__all__ = ["export_model"]
