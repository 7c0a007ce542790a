"""Plans for a model graph: layers that run together, with the results of running them apart.

Conv blocks: a chain Conv2D -> [BatchNormalization] -> [ReLU] -> [MaxPooling2D], in which each
layer's output feeds only the next layer, runs through ops.conv_block: a chunk of images at a
time, with the batch norm folded into the conv's kernel and bias. The results equal calling the
layers one by one to float rounding (see ops/conv_block.py for where they are bit for bit).
Only in inference without autograd (Model.call with training=False under no_grad): training and
gradients need every map.

ReLU then max pool: one op, the pool with the ReLU applied to its (4x smaller) output in the
same passes (ops.pool's relu), in training too. max and ReLU commute, so the values are the
same; so are the gradients: where a window's max is positive, both route it to the same first
maximum; elsewhere both give zero.
"""

from __future__ import annotations

from ..layers.base import SymbolicTensor
from ..layers.conv import Conv2D
from ..layers.core import Activation
from ..layers.normalization import BatchNormalization
from ..layers.pooling import MaxPooling1D, MaxPooling2D
from ..ops import activation as activations
from ..ops.conv import window_geometry, winograd_applies
from ..ops.conv_block import conv2d_block
from ..ops.norm import inference_affine
from ..tensor import Tensor

ORDER = ("batch_norm", "relu", "max_pool")  # after the conv: each at most once, in this order


def _sole_readers(nodes, outputs) -> dict:
    """{id(symbolic tensor): the node that reads it} for tensors read by exactly one node, that
    node called without extra arguments, and not model outputs (those must stay computed)."""
    uses: dict[int, int] = {id(t): 1 for t in outputs}
    reader = {}
    for node in nodes:
        for parent in node.parents:
            uses[id(parent)] = uses.get(id(parent), 0) + 1
            reader[id(parent)] = node
    return {key: node for key, node in reader.items() if uses[key] == 1 and not node.kwargs}


def relu_pool_swaps(nodes, outputs) -> dict:
    """{id(ReLU node): max-pool node} where a ReLU's output feeds a max pool and nothing else."""
    readers = _sole_readers(nodes, outputs)
    swaps = {}
    for node in nodes:
        following = readers.get(id(node.outputs[0]))
        if (isinstance(node.inputs, SymbolicTensor) and not node.kwargs
                and following is not None and swappable(node, following)):
            swaps[id(node)] = following
    return swaps


def relu_then_pool(relu_node, pool_node, x, training):
    """The pool node's output for the ReLU node's input x: one op where the two layers share a
    dtype and x has no mask, else the pool then the ReLU layer."""
    relu, pool = relu_node.layer, pool_node.layer
    if relu.dtype == pool.dtype and getattr(x, "_keras_mask", None) is None:
        return pool(x, training=training, relu=True)
    return relu(pool(x, training=training), training=training)


def swappable(relu_node, pool_node) -> bool:
    """Whether these layers are (still: a plan outlives changes to a layer) a ReLU and a max
    pool."""
    return (_kind(relu_node.layer) == "relu"
            and type(pool_node.layer) in (MaxPooling1D, MaxPooling2D))


def _kind(layer):
    """The step of a chain that layer would be, or None."""
    if type(layer) is BatchNormalization and layer.axis in (-1, 3):
        return "batch_norm"
    if type(layer) is Activation and layer.activation is activations.relu:
        return "relu"
    if (type(layer) is MaxPooling2D and layer.padding == "valid"
            and layer.data_format == "channels_last"):
        return "max_pool"
    return None


def _starts(layer) -> bool:
    return (type(layer) is Conv2D and layer.data_format == "channels_last"
            and layer.activation in (None, activations.linear, activations.relu))


def conv_chains(nodes, outputs) -> dict[int, list]:
    """{id(conv node): [conv node, node, ...]} for the fusable chains among a model's nodes;
    outputs: the model's output SymbolicTensors (a model output is never fused away)."""
    readers = _sole_readers(nodes, outputs)
    chains = {}
    for node in nodes:
        if not _starts(node.layer) or node.kwargs or not isinstance(node.inputs, SymbolicTensor):
            continue
        chain, last = [node], -1
        while True:
            following = readers.get(id(chain[-1].outputs[0]))
            if following is None:
                break
            kind = _kind(following.layer)
            if kind is None or ORDER.index(kind) <= last:
                break
            chain.append(following)
            last = ORDER.index(kind)
        if len(chain) > 1:
            chains[id(node)] = chain
    return chains


def run_chain(chain, x):
    """The last node's output (a Tensor) for input x, or None where this input is not fused (a
    mask, another dtype, or a conv that takes the Winograd path, faster alone)."""
    conv = chain[0].layer
    if not isinstance(x, Tensor) or getattr(x, "_keras_mask", None) is not None:
        return None
    layers = [node.layer for node in chain]
    if not _starts(conv) or any(_kind(layer) is None for layer in layers[1:]):
        return None  # a layer changed since the plan was made
    if x.dtype != conv.dtype or any(layer.dtype != conv.dtype for layer in layers):
        return None
    kernel = conv.kernel.data
    if x.ndim != 4:
        return None
    _, out_size = window_geometry("conv2d", x.shape[1:3], kernel.shape[:2], conv.strides,
                                  conv.padding, conv.dilation_rate)
    if winograd_applies(kernel.shape, conv.strides, conv.dilation_rate, out_size):
        return None
    steps = [("relu",)] if conv.activation is activations.relu else []
    for layer in layers[1:]:
        kind = _kind(layer)
        if kind == "batch_norm":
            gamma = None if layer.gamma is None else layer.gamma.data
            beta = None if layer.beta is None else layer.beta.data
            steps.append(("affine", *inference_affine(
                layer.moving_mean.data, layer.moving_variance.data, gamma, beta,
                layer.epsilon, x.dtype)))
        elif kind == "max_pool":
            steps.append(("max_pool", layer.pool_size, layer.strides))
        else:
            steps.append(("relu",))
    bias = None if conv.bias is None else conv.bias.data
    return Tensor(conv2d_block(x.data, kernel, bias, conv.strides, conv.padding,
                               conv.dilation_rate, steps))
