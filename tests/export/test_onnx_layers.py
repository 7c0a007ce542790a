"""ONNX export of dense, activations, reshaping, merges, embedding and the inference
identities, checked in onnxruntime against predict; the refusals and the file itself."""

import os
import sys

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.errors import ArgumentError
from shenjing.ops import activation as activations
from tests.export.onnx_helpers import check_export, normal, onnx, randomize


@pytest.fixture
def rng():
    return np.random.default_rng(1)


@pytest.mark.parametrize("name", sorted(activations._ACTIVATIONS))
def test_every_named_activation(rng, tmp_path, name):
    model = randomize(sj.Sequential([L.Input((2, 5)), L.Dense(6, activation=name)],
                                    name=f"act_{name}"), rng)
    check_export(model, tmp_path, normal(rng, 2, 5))


def test_activation_layers(rng, tmp_path):
    x = sj.Input((4, 6), name="x")
    branches = [
        L.ReLU()(x), L.ReLU(max_value=1.0)(x), L.ReLU(negative_slope=0.1)(x),
        L.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.5)(x), L.LeakyReLU(0.3)(x),
        L.PReLU()(x), L.PReLU(shared_axes=[1])(x), L.ELU(0.7)(x), L.Softmax()(x),
        L.Softmax(axis=[1, 2])(x), L.Activation("gelu")(x), L.Activation("selu")(x),
    ]
    model = randomize(sj.Model(x, branches, name="activation_layers"), rng)
    check_export(model, tmp_path, normal(rng, 4, 6))


def test_dense_on_rank_3_and_identities(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((3, 4)), L.Dense(5, activation="relu"), L.Dropout(0.5), L.GaussianNoise(0.3),
        L.GaussianDropout(0.2), L.SpatialDropout1D(0.3), L.ActivityRegularization(0.1),
        L.Dense(2, use_bias=False), L.BatchNormalization(),
    ], name="dense3d"), rng)
    check_export(model, tmp_path, normal(rng, 3, 4))


def test_reshaping(rng, tmp_path):
    model = randomize(sj.Sequential([
        L.Input((5, 6, 2)),
        L.ZeroPadding2D(((1, 0), (2, 1))), L.Cropping2D(((0, 1), (1, 2))),
        L.UpSampling2D((2, 3)), L.UpSampling2D(2, interpolation="bilinear"),
        L.Permute((2, 1, 3)), L.Reshape((-1, 4)), L.ZeroPadding1D((2, 1)), L.Cropping1D((1, 3)),
        L.UpSampling1D(2), L.Flatten(), L.Dense(3), L.RepeatVector(4),
    ], name="reshaping"), rng)
    check_export(model, tmp_path, normal(rng, 5, 6, 2))


def test_multi_input_merges(rng, tmp_path):
    a, b, c = sj.Input((4, 3), name="a"), sj.Input((4, 3), name="b"), sj.Input((3,), name="c")
    outputs = [L.Add()([a, b, c]), L.Subtract()([a, b]), L.Multiply()([a, b, c]),
               L.Average()([a, b]), L.Maximum()([a, c]), L.Minimum()([a, b, c]),
               L.Concatenate(axis=1)([a, b]), L.Concatenate()([a, L.Dense(2)(b)])]
    model = randomize(sj.Model([a, b, c], outputs, name="merges"), rng)

    def inputs(batch):
        return [rng.standard_normal(s).astype(np.float32)
                for s in ((batch, 4, 3), (batch, 4, 3), (batch, 3))]

    session = check_export(model, tmp_path, inputs)
    assert [i.name for i in session.get_inputs()] == ["a", "b", "c"]
    assert len(session.get_outputs()) == 8


def test_embedding_and_nested_model(rng, tmp_path):
    inner = sj.Sequential([L.Input((5, 4)), L.Flatten(), L.Dense(3)], name="inner")
    tokens = sj.Input((5,), dtype="int32", name="tokens")
    y = inner(L.Embedding(10, 4)(tokens))
    model = randomize(sj.Model(tokens, L.Dense(2, name="head")(y), name="embedding"), rng)
    session = check_export(model, tmp_path, lambda n: [rng.integers(0, 10, (n, 5), np.int32)])
    assert [o.name for o in session.get_outputs()] == ["head"]


def test_unexportable_layers_are_named(rng, tmp_path):
    x = sj.Input((4, 3))
    model = sj.Model(x, L.Lambda(lambda t: t * 2, name="doubler")(L.Dense(3)(x)))
    with pytest.raises(ArgumentError, match=r"'doubler' \(Lambda\)"):
        model.export(tmp_path / "m.onnx")
    q = sj.Input((4, 8))
    attention = L.MultiHeadAttention(2, 4, name="mha")
    model = sj.Model(q, attention(q, q))
    with pytest.raises(ArgumentError, match=r"'mha' \(MultiHeadAttention\)"):
        model.export(tmp_path / "m.onnx")
    model = sj.Sequential([L.Input((3,)), L.Dense(2, activation=lambda t: t, name="custom")])
    with pytest.raises(ArgumentError, match=r"'custom' \(Dense\).*activation"):
        model.export(tmp_path / "m.onnx")
    assert not os.listdir(tmp_path)  # nothing written, no temporary file left


def test_arguments_and_file(rng, tmp_path):
    model = sj.Sequential([L.Input((3,)), L.Dense(2)], name="small")
    with pytest.raises(ArgumentError, match="format 'tf_saved_model'"):
        model.export(tmp_path / "m", format="tf_saved_model")
    with pytest.raises(ArgumentError, match="opset_version"):
        model.export(tmp_path / "m.onnx", opset_version=9)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    model.export(str(path), opset_version=18)  # replaces the file, atomically
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version == 18
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_without_onnx_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = sj.Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(ImportError, match=r"shenjing\[onnx\]"):
        model.export(tmp_path / "m.onnx")


def test_models_without_an_exportable_graph(tmp_path):
    class Doubler(sj.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(2)

        def call(self, inputs):
            return self.dense(inputs) * 2

    model = Doubler()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(ArgumentError, match="subclassed"):
        model.export(tmp_path / "m.onnx")
    model = sj.Sequential([L.Input((3,)), L.Dense(2, dtype="float64", name="wide")])
    with pytest.raises(ArgumentError, match=r"'wide' \(Dense\).*float64"):
        model.export(tmp_path / "m.onnx")
