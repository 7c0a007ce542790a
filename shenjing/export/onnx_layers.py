"""ONNX converters of the layers without a window or a recurrence: Dense, activations,
BatchNormalization, reshaping, merges, Embedding/Masking, and the identities of inference
(Dropout, noise). Each takes (builder, layer, x or [xs], input shapes), returns output names."""

import math

import numpy as np

from ..ops import activation as activations
from ..ops.activation import SELU_ALPHA, SELU_SCALE
from .onnx import refuse, weight


# ----- activations by Keras name ---------------------------------------------------------
def _silu(b, x):
    return b.op("Mul", [x, b.op("Sigmoid", [x])], "silu")


def _gelu(b, x):
    # exact: 0.5 x (1 + erf(x / sqrt 2)); ONNX's own Gelu needs opset 20
    erf = b.op("Erf", [b.op("Mul", [x, b.scalar(1 / math.sqrt(2))])])
    half = b.op("Mul", [x, b.scalar(0.5)])
    return b.op("Mul", [half, b.op("Add", [erf, b.scalar(1.0)])], "gelu")


ACTIVATION_OPS = {
    "linear": lambda b, x: x,
    "relu": lambda b, x: b.op("Relu", [x]),
    "relu6": lambda b, x: b.op("Clip", [x, b.scalar(0.0), b.scalar(6.0)], "relu6"),
    "leaky_relu": lambda b, x: b.op("LeakyRelu", [x], alpha=0.2),
    "elu": lambda b, x: b.op("Elu", [x], alpha=1.0),
    "selu": lambda b, x: b.op("Selu", [x], alpha=SELU_ALPHA, gamma=SELU_SCALE),
    "gelu": _gelu,
    "sigmoid": lambda b, x: b.op("Sigmoid", [x]),
    "hard_sigmoid": lambda b, x: b.op("HardSigmoid", [x], alpha=1 / 6, beta=0.5),
    "tanh": lambda b, x: b.op("Tanh", [x]),
    "softplus": lambda b, x: b.op("Softplus", [x]),
    "softsign": lambda b, x: b.op("Softsign", [x]),
    "silu": _silu,
    "swish": _silu,
    "exponential": lambda b, x: b.op("Exp", [x]),
    "softmax": lambda b, x: b.op("Softmax", [x], axis=-1),
    "log_softmax": lambda b, x: b.op("LogSoftmax", [x], axis=-1),
}


def apply_activation(b, layer, fn, x):
    """x through a layer's activation function, which must be one of Keras's by name."""
    if fn is None:
        return x
    name = getattr(fn, "__name__", None)
    known = activations._ACTIVATIONS.get(name)
    if known is not fn and not (name == "linear" and fn is activations.linear):
        raise refuse(layer, f"its activation {fn!r} is not one of Keras's named activations "
                            f"({', '.join(sorted(ACTIVATION_OPS))}).")
    return ACTIVATION_OPS[name](b, x)


def activation_layer(b, layer, x, shapes):
    return apply_activation(b, layer, layer.activation, x)


def relu_layer(b, layer, x, shapes):
    """Keras 3's ReLU: thresholded, clipped to max_value, minus slope * relu(threshold - x)."""
    slope, top, threshold = layer.negative_slope, layer.max_value, layer.threshold
    if threshold:
        above = b.op("Greater", [x, b.scalar(threshold)])
        y = b.op("Where", [above, x, b.scalar(0.0)])
    else:
        y = b.op("Relu", [x])
    if top is not None:
        y = b.op("Clip", [y, b.scalar(0.0), b.scalar(top)])
    if slope:
        below = b.op("Relu", [b.op("Sub", [b.scalar(threshold), x])])
        y = b.op("Sub", [y, b.op("Mul", [below, b.scalar(slope)])], layer.name)
    return y


def prelu_layer(b, layer, x, shapes):
    # relu(x) - alpha relu(-x) is x for x >= 0, alpha x below: ONNX's PRelu, alpha broadcast
    return b.op("PRelu", [x, b.const(weight(layer.alpha), f"{layer.name}/alpha")], layer.name)


def softmax_layer(b, layer, x, shapes):
    axes = layer._resolved_axes(len(shapes[0]))
    if len(axes) == 1:
        return b.op("Softmax", [x], layer.name, axis=axes[0])
    shifted = b.op("Sub", [x, b.reduce("ReduceMax", x, axes, True)])
    exps = b.op("Exp", [shifted])
    return b.op("Div", [exps, b.reduce("ReduceSum", exps, axes, True)], layer.name)


# ----- weights ----------------------------------------------------------------------------
def dense(b, layer, x, shapes):
    y = b.op("MatMul", [x, b.const(weight(layer.kernel), f"{layer.name}/kernel")])
    if layer.bias is not None:
        y = b.op("Add", [y, b.const(weight(layer.bias), f"{layer.name}/bias")], layer.name)
    return apply_activation(b, layer, layer.activation, y)


def batch_norm(b, layer, x, shapes):
    """Inference form folded to y = x * scale + shift per channel, scale = gamma / sqrt(var +
    eps), shift = beta - mean * scale (computed in float64, stored float32)."""
    rank = len(shapes[0])
    axis = layer.axis % rank
    var = np.asarray(layer.moving_variance.data, np.float64)
    mean = np.asarray(layer.moving_mean.data, np.float64)
    scale = 1.0 / np.sqrt(var + layer.epsilon)
    if layer.gamma is not None:
        scale = scale * np.asarray(layer.gamma.data, np.float64)
    shift = -mean * scale
    if layer.beta is not None:
        shift = shift + np.asarray(layer.beta.data, np.float64)
    shape = (-1,) + (1,) * (rank - 1 - axis)
    y = b.op("Mul", [x, b.const(scale.reshape(shape), f"{layer.name}/scale", np.float32)])
    return b.op("Add", [y, b.const(shift.reshape(shape), f"{layer.name}/shift", np.float32)],
                layer.name)


def embedding(b, layer, x, shapes):
    table = b.const(weight(layer.embeddings), f"{layer.name}/embeddings")
    index = b.op("Cast", [x], to=b.onnx.TensorProto.INT64)
    return b.op("Gather", [table, index], layer.name, axis=0)


def embedding_mask(b, layer, x):
    if not layer.mask_zero:
        return None
    keep = b.op("Not", [b.op("Equal", [b.op("Cast", [x], to=b.onnx.TensorProto.INT64),
                                         b.const(np.int64(0), "zero")])])
    return b.op("Cast", [keep], f"{layer.name}/mask", to=b.onnx.TensorProto.FLOAT)


embedding.make_mask = embedding_mask


def _masking_keep(b, layer, x):
    """(batch, time, 1) float: 1 where any feature differs from mask_value."""
    differs = b.op("Not", [b.op("Equal", [x, b.scalar(layer.mask_value)])])
    return b.reduce("ReduceMax", b.op("Cast", [differs], to=b.onnx.TensorProto.FLOAT), [-1],
                    True)


def masking(b, layer, x, shapes):
    return b.op("Mul", [x, _masking_keep(b, layer, x)], layer.name)


def masking_mask(b, layer, x):
    return b.op("Squeeze", [_masking_keep(b, layer, x), b.ints([-1])], f"{layer.name}/mask")


masking.make_mask = masking_mask


def identity(b, layer, x, shapes):
    return b.op("Identity", [x], layer.name)


# ----- reshaping -------------------------------------------------------------------------
def flatten(b, layer, x, shapes):
    return b.op("Reshape", [x, b.ints([0, -1])], layer.name)


def reshape(b, layer, x, shapes):
    return b.op("Reshape", [x, b.ints([0, *layer.target_shape])], layer.name)


def permute(b, layer, x, shapes):
    return b.transpose(x, (0, *layer.dims), layer.name)


def repeat_vector(b, layer, x, shapes):
    y = b.op("Unsqueeze", [x, b.ints([1])])
    return b.op("Tile", [y, b.ints([1, layer.n, 1])], layer.name)


def _spatial_axes(layer, rank):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return list(range(2, rank))
    return list(range(1, rank - 1))


def upsampling(b, layer, x, shapes):
    rank = len(shapes[0])
    sizes = layer.size if isinstance(layer.size, tuple) else (layer.size,)
    scales = [1.0] * rank
    for axis, s in zip(_spatial_axes(layer, rank), sizes):
        scales[axis] = float(s)
    mode = getattr(layer, "interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        raise refuse(layer, f"interpolation {mode!r} is not exported (nearest and bilinear "
                            "are).")
    scales = b.const(np.asarray(scales, np.float32), "scales")
    if mode == "nearest":  # out[i] = in[floor(i / s)]: each entry repeated s times
        return b.op("Resize", [x, "", scales], layer.name, mode="nearest",
                    coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return b.op("Resize", [x, "", scales], layer.name, mode="linear",
                coordinate_transformation_mode="half_pixel")


def _pairs(layer, rank, value):
    """Per spatial axis (before, after) for ZeroPadding/Cropping's 1-D or 2-D forms."""
    pairs = [value] if rank == 3 else list(value)
    return dict(zip(_spatial_axes(layer, rank), [tuple(p) for p in pairs]))


def zero_padding(b, layer, x, shapes):
    rank = len(shapes[0])
    pads = _pairs(layer, rank, layer.padding)
    begin = [pads.get(a, (0, 0))[0] for a in range(rank)]
    end = [pads.get(a, (0, 0))[1] for a in range(rank)]
    return b.op("Pad", [x, b.ints(begin + end)], layer.name, mode="constant")


def cropping(b, layer, x, shapes):
    rank = len(shapes[0])
    crops = _pairs(layer, rank, layer.cropping)
    axes = sorted(crops)
    starts = [crops[a][0] for a in axes]
    ends = [-crops[a][1] if crops[a][1] else np.iinfo(np.int64).max for a in axes]
    return b.op("Slice", [x, b.ints(starts), b.ints(ends), b.ints(axes)], layer.name)


# ----- merges ----------------------------------------------------------------------------
def _aligned(b, xs, shapes):
    """Keras's rule for inputs of lower rank: new axes of size 1 right after the batch."""
    rank = max(len(s) for s in shapes)
    return [x if len(s) == rank else
            b.op("Unsqueeze", [x, b.ints(list(range(1, 1 + rank - len(s))))])
            for x, s in zip(xs, shapes)]


def _merge(op_type):
    def convert(b, layer, xs, shapes):
        xs = _aligned(b, xs, shapes)
        if op_type == "Sub":
            return b.op("Sub", xs, layer.name)
        if op_type == "Mul":  # pairwise, in order, as the layer multiplies
            y = xs[0]
            for x in xs[1:]:
                y = b.op("Mul", [y, x])
            return b.op("Identity", [y], layer.name)
        return b.op(op_type, xs, layer.name)
    return convert


def concatenate(b, layer, xs, shapes):
    return b.op("Concat", xs, layer.name, axis=layer.axis)


CONVERTERS = {
    "Dense": dense, "Activation": activation_layer, "ReLU": relu_layer,
    "LeakyReLU": lambda b, layer, x, s: b.op("LeakyRelu", [x], layer.name,
                                             alpha=float(layer.negative_slope)),
    "ELU": lambda b, layer, x, s: b.op("Elu", [x], layer.name, alpha=float(layer.alpha)),
    "PReLU": prelu_layer, "Softmax": softmax_layer, "BatchNormalization": batch_norm,
    "Embedding": embedding, "Masking": masking,
    "Dropout": identity, "SpatialDropout1D": identity, "SpatialDropout2D": identity,
    "GaussianNoise": identity, "GaussianDropout": identity, "ActivityRegularization": identity,
    "Flatten": flatten, "Reshape": reshape, "Permute": permute, "RepeatVector": repeat_vector,
    "UpSampling1D": upsampling, "UpSampling2D": upsampling,
    "ZeroPadding1D": zero_padding, "ZeroPadding2D": zero_padding,
    "Cropping1D": cropping, "Cropping2D": cropping,
    "Add": _merge("Sum"), "Subtract": _merge("Sub"), "Multiply": _merge("Mul"),
    "Average": _merge("Mean"), "Maximum": _merge("Max"), "Minimum": _merge("Min"),
    "Concatenate": concatenate,
}
