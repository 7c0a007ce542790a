"""ONNX converters of the windowed layers: Conv1D/2D, DepthwiseConv, SeparableConv,
Conv1DTranspose/Conv2DTranspose, pooling and global pooling.

ONNX's Conv and pools read channels-first (N, C, *spatial): a channels-last input is transposed
there and the output back. Pads are explicit, computed as the layer's op computes them
(ops.conv.resolve_padding: 'same' puts the odd pixel after); with an unknown spatial size,
'same' becomes auto_pad SAME_UPPER, the same rule.
"""

import numpy as np

from ..ops.conv import resolve_padding
from ..ops.conv_transpose import conv_transpose_crops
from .onnx import refuse, weight
from .onnx_layers import apply_activation


def _to_channels_first(b, layer, x, rank):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return x
    return b.transpose(x, (0, rank + 1, *range(1, rank + 1)), f"{layer.name}/to_nchw")


def _to_channels_last(b, layer, y, rank):
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return y
    return b.transpose(y, (0, *range(2, rank + 2), 1), f"{layer.name}/to_nhwc")


def _spatial(layer, shape):
    first = getattr(layer, "data_format", "channels_last") == "channels_first"
    return tuple(shape[2:] if first else shape[1:-1])


def _pads(layer, shape, window, strides, dilations, padding):
    """ONNX attributes {pads} or {auto_pad} for a window over the input of `shape`."""
    spatial = _spatial(layer, shape)
    # 'valid', explicit pads and 'same' at stride 1 (total d(k-1)) pad alike whatever the size
    strided = [s > 1 for n, s in zip(spatial, strides) if n is None]
    if padding == "same" and any(strided):
        if max(dilations) > 1:  # onnxruntime refuses auto_pad with dilations
            raise refuse(layer, f"padding 'same' with strides {tuple(strides)} and dilation "
                                f"{tuple(dilations)} needs the spatial sizes known, got input "
                                f"shape {shape}.")
        return {"auto_pad": "SAME_UPPER"}  # the same rule: the odd pixel after
    sizes = [1 if n is None else n for n in spatial]
    pairs = resolve_padding(padding, sizes, window, strides, dilations)
    return {"pads": [p[0] for p in pairs] + [p[1] for p in pairs]}


def _conv_node(b, layer, x, shape, kernel, bias, group=1):
    """ONNX Conv of channels-first x with kernel (F, C/group, *k); returns channels-first."""
    dilations = list(layer.dilation_rate)
    k = list(kernel.shape[2:])
    padding = layer.padding
    strides = list(layer.strides)
    attrs = _pads(layer, shape, k, strides, dilations, padding)
    inputs = [x, b.const(kernel, f"{layer.name}/kernel")]
    if bias is not None:
        inputs.append(b.const(bias, f"{layer.name}/bias"))
    return b.op("Conv", inputs, f"{layer.name}/conv", kernel_shape=k, strides=strides,
                dilations=dilations, group=group, **attrs)


def _bias(layer):
    return None if layer.bias is None else weight(layer.bias)


def conv(b, layer, x, shapes):
    rank = layer.rank
    # Keras (*k, C, F) -> ONNX (F, C, *k)
    kernel = np.transpose(weight(layer.kernel), (rank + 1, rank, *range(rank)))
    y = _conv_node(b, layer, _to_channels_first(b, layer, x, rank), shapes[0], kernel,
                   _bias(layer))
    y = _to_channels_last(b, layer, y, rank)
    return apply_activation(b, layer, layer.activation, y)


def _depthwise_kernel(layer):
    """Keras (*k, C, M) -> ONNX grouped (C * M, 1, *k): output channel c * M + m, as Keras."""
    k = weight(layer.depthwise)
    rank = layer.rank
    flat = k.reshape(*k.shape[:rank], -1)
    return np.transpose(flat, (rank, *range(rank)))[:, None]


def depthwise_conv(b, layer, x, shapes):
    rank = layer.rank
    y = _conv_node(b, layer, _to_channels_first(b, layer, x, rank), shapes[0],
                   _depthwise_kernel(layer), _bias(layer), group=layer.input_channels)
    y = _to_channels_last(b, layer, y, rank)
    return apply_activation(b, layer, layer.activation, y)


def separable_conv(b, layer, x, shapes):
    rank = layer.rank
    y = _conv_node(b, layer, _to_channels_first(b, layer, x, rank), shapes[0],
                   _depthwise_kernel(layer), None, group=layer.input_channels)
    pointwise = np.transpose(weight(layer.pointwise_kernel), (rank + 1, rank, *range(rank)))
    inputs = [y, b.const(pointwise, f"{layer.name}/pointwise_kernel")]
    if layer.bias is not None:
        inputs.append(b.const(_bias(layer), f"{layer.name}/bias"))
    y = b.op("Conv", inputs, f"{layer.name}/pointwise", kernel_shape=[1] * rank)
    y = _to_channels_last(b, layer, y, rank)
    return apply_activation(b, layer, layer.activation, y)


def conv_transpose(b, layer, x, shapes):
    """ONNX ConvTranspose: the full output (n-1)s + ek, cropped by Keras's (before, after);
    a negative crop after (zeros appended) is ONNX's output_padding."""
    rank = layer.rank
    begin, end, extra = [], [], []
    for axis in range(rank):
        p = None if layer.output_padding is None else layer.output_padding[axis]
        before, after, _ = conv_transpose_crops(1, layer.kernel_size[axis],
                                                layer.strides[axis], layer.padding, p,
                                                layer.dilation_rate[axis])
        begin.append(before)
        end.append(max(after, 0))
        extra.append(max(-after, 0))
    # Keras (*k, F, C) -> ONNX (C, F, *k)
    kernel = np.transpose(weight(layer.kernel), (rank + 1, rank, *range(rank)))
    inputs = [_to_channels_first(b, layer, x, rank), b.const(kernel, f"{layer.name}/kernel")]
    if layer.bias is not None:
        inputs.append(b.const(_bias(layer), f"{layer.name}/bias"))
    y = b.op("ConvTranspose", inputs, f"{layer.name}/conv_transpose",
             kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
             dilations=list(layer.dilation_rate), pads=begin + end,
             output_padding=extra if any(extra) else None)
    y = _to_channels_last(b, layer, y, rank)
    return apply_activation(b, layer, layer.activation, y)


def _pool(op_type):
    def convert(b, layer, x, shapes):
        rank = layer.rank
        window, strides = list(layer.pool_size), list(layer.strides)
        attrs = _pads(layer, shapes[0], window, strides, [1] * rank, layer.padding)
        if op_type == "AveragePool":
            attrs["count_include_pad"] = 0  # Keras averages what the window reads
        y = b.op(op_type, [_to_channels_first(b, layer, x, rank)], f"{layer.name}/pool",
                 kernel_shape=window, strides=strides, **attrs)
        return _to_channels_last(b, layer, y, rank)
    return convert


def _global_pool(op_type):
    def convert(b, layer, x, shapes):
        return b.reduce(op_type, x, layer._axes(), layer.keepdims, layer.name)
    return convert


CONVERTERS = {
    "Conv1D": conv, "Conv2D": conv,
    "DepthwiseConv1D": depthwise_conv, "DepthwiseConv2D": depthwise_conv,
    "SeparableConv1D": separable_conv, "SeparableConv2D": separable_conv,
    "Conv1DTranspose": conv_transpose, "Conv2DTranspose": conv_transpose,
    "MaxPooling1D": _pool("MaxPool"), "MaxPooling2D": _pool("MaxPool"),
    "AveragePooling1D": _pool("AveragePool"), "AveragePooling2D": _pool("AveragePool"),
    "GlobalMaxPooling1D": _global_pool("ReduceMax"),
    "GlobalMaxPooling2D": _global_pool("ReduceMax"),
    "GlobalAveragePooling1D": _global_pool("ReduceMean"),
    "GlobalAveragePooling2D": _global_pool("ReduceMean"),
}
