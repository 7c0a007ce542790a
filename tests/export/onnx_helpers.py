"""Export a shenjing model to ONNX, run it in onnxruntime, compare with predict."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def randomize(model, rng):
    """Random weights everywhere (positive moving variances), so that no layer is trivial."""
    for w in model.weights:
        if "variance" in w.name:
            w.data[...] = rng.uniform(0.5, 1.5, w.shape)
        else:
            w.data[...] = rng.normal(0.0, 0.5, w.shape)
    return model


def run_onnx(path, feeds):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, feeds))), session


def check_export(model, tmp_path, make_inputs, rtol=1e-5, atol=1e-5):
    """Exported file passes onnx.checker; onnxruntime agrees with predict on batches 1 and 7;
    the graph's input and output names are the model's. Returns the session."""
    path = tmp_path / f"{model.name}.onnx"
    model.export(path, format="onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == [t.node.layer.name for t in model.inputs]
    session = None
    for batch in (1, 7):
        feeds = make_inputs(batch)
        got, session = run_onnx(path, feeds)
        want = model.predict(feeds if len(feeds) > 1 else feeds[0], verbose=0)
        want = want if isinstance(want, list) else [want]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return session


def normal(rng, *shape):
    """A function of the batch size giving one float32 input of shape (batch, *shape)."""
    return lambda batch: [rng.standard_normal((batch, *shape)).astype(np.float32)]
