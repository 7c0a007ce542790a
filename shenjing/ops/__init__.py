"""Differentiable operations, channels-last, like ``torch.nn.functional``.

Each takes Tensors or ndarrays and returns a Tensor. Activation and loss lookups by Keras name
live in ``ops.activation.get`` and ``ops.loss.get``.
"""

from .activation import (
    elu, gelu, hard_sigmoid, leaky_relu, log_softmax, relu, relu6, selu, sigmoid, silu, softmax,
    softplus, softsign, swish, tanh,
)
from .conv import conv1d, conv2d
from .conv_transpose import conv_transpose1d, conv_transpose2d
from .depthwise import depthwise_conv1d, depthwise_conv2d
from .dropout import dropout
from .elementwise import abs, add, cast, clip, div, exp, log, mul, neg, pow, sqrt, sub, where
from .loss import (
    binary_crossentropy, categorical_crossentropy, huber, mean_absolute_error,
    mean_squared_error, sparse_categorical_crossentropy,
)
from .group_norm import group_norm, layer_norm
from .local import local_conv2d
from .matmul import dense, matmul
from .norm import batch_norm
from .pool import (
    avg_pool1d, avg_pool2d, global_avg_pool1d, global_avg_pool2d, global_max_pool1d,
    global_max_pool2d, max_pool1d, max_pool2d,
)
from .resize import axis_linear_map, resize
from .recurrent import gru, lstm, simple_rnn
from .reduce import max, mean, min, sum, var
from .shape import concatenate, getitem, pad, reshape, stack, transpose

__all__ = [
    "abs", "add", "avg_pool1d", "avg_pool2d", "batch_norm", "binary_crossentropy", "cast",
    "categorical_crossentropy", "clip", "concatenate", "conv1d", "conv2d", "conv_transpose1d",
    "conv_transpose2d", "dense", "depthwise_conv1d", "depthwise_conv2d", "div", "dropout", "elu",
    "exp", "gelu", "getitem", "global_avg_pool1d", "global_avg_pool2d",
    "global_max_pool1d", "global_max_pool2d", "group_norm", "gru", "hard_sigmoid", "huber",
    "layer_norm", "leaky_relu", "local_conv2d", "log", "log_softmax", "lstm", "matmul", "max",
    "max_pool1d", "max_pool2d", "mean", "mean_absolute_error",
    "mean_squared_error", "min", "mul", "neg", "pad", "pow", "relu", "relu6", "reshape", "selu",
    "sigmoid", "silu", "simple_rnn", "softmax", "softplus", "softsign", "sparse_categorical_crossentropy",
    "sqrt", "stack", "sub", "sum", "swish", "tanh", "transpose", "var", "where",
    "axis_linear_map", "resize",
]
