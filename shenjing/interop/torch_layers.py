"""Every layer with weights <-> a PyTorch ``state_dict`` (the recurrent ones: see torch_rnn).

NumPy only: torch is never imported. Values going to torch are new ndarrays in the layer's
dtype (``module.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})``); values
coming from torch may be tensors or arrays and are cast to the layer's dtype. r = the number
of spatial axes, k = kernel_size, C = input channels, M = depth_multiplier:

| shenjing (Keras layout)                     | torch module and keys                          |
|---------------------------------------------|------------------------------------------------|
| Conv1D/2D kernel (*k, C, filters), bias     | Conv1d/2d weight (filters, C, *k), bias        |
| Conv1D/2DTranspose kernel (*k, filters, C)  | ConvTranspose1d/2d weight (C, filters, *k)     |
| DepthwiseConv1D/2D kernel (*k, C, M), bias  | Conv1d/2d(groups=C) weight (C*M, 1, *k), bias  |
| SeparableConv1D/2D depthwise_kernel,        | depthwise.weight (C*M, 1, *k) (groups=C, no    |
|   pointwise_kernel (*1, C*M, filters), bias |   bias), pointwise.weight (filters, C*M, *1),  |
|                                             |   pointwise.bias: two convs, named so          |
| Dense kernel (d, units), bias               | Linear weight (units, d), bias                 |
| Embedding embeddings (n, d)                 | Embedding weight (n, d)                        |
| BatchNormalization gamma, beta,             | BatchNorm1d/2d weight, bias, running_mean,     |
|   moving_mean, moving_variance              |   running_var, num_batches_tracked (0 here)    |
| LayerNormalization gamma, beta              | LayerNorm weight, bias (bias=False: no bias)   |
| GroupNormalization gamma, beta (C,)         | GroupNorm weight, bias (C,)                    |
| PReLU alpha, shared on all but the channels | PReLU weight (C,) (or (1,) if all shared)      |

Batch normalization: the moving statistics are copied as they are. torch's momentum is
1 - Keras's (0.99 -> 0.01) and its default eps 1e-5 against Keras's 1e-3: neither is part of
a state dict, so make the torch module with ``eps=layer.epsilon, momentum=1 - layer.momentum``
(to_torch_sequential does). Keras updates the moving variance with the biased batch variance,
torch its running variance with the unbiased one (m / (m - 1) times larger for m values per
channel); both use the stored value the same way at inference, so it is copied as is and only
later training updates differ slightly. num_batches_tracked is written as 0 (it matters to
torch only with momentum=None) and ignored when read.

A norm layer with center=False or scale=False: BatchNorm and GroupNorm have one affine switch
for both, so the missing one is written as ones (weight) or zeros (bias), which computes the
same; reading back, such a key must hold exactly those values (else it is an error), or be
absent. LayerNorm likewise, except that center=False drops its bias (torch's ``bias=False``).
"""

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..layers.activations import PReLU
from ..layers.conv import Conv1D, Conv2D
from ..layers.conv_depthwise import (
    DepthwiseConv1D,
    DepthwiseConv2D,
    SeparableConv1D,
    SeparableConv2D,
)
from ..layers.conv_transpose import Conv1DTranspose, Conv2DTranspose
from ..layers.core import Dense
from ..layers.embedding import Embedding
from ..layers.normalization import BatchNormalization, GroupNormalization, LayerNormalization
from ..layers.recurrent import GRU, LSTM, SimpleRNN
from ..layers.wrappers import Bidirectional
from . import torch_rnn

__all__ = [
    "SUPPORTED_LAYERS",
    "from_torch_state_dict",
    "to_torch_state_dict",
    "torch_state_dict_to_weights",
]

_RECURRENT = (SimpleRNN, LSTM, GRU, Bidirectional)


def _label(layer):
    return f"{type(layer).__name__} '{layer.name}'"


def _conv_to_torch(kernel):
    """(*k, a, b) -> (b, a, *k): a conv kernel, and a transposed one (a, b = filters, C)."""
    r = kernel.ndim - 2
    return kernel.transpose(r + 1, r, *range(r))


def _conv_from_torch(weight):
    """(b, a, *k) -> (*k, a, b), the inverse of _conv_to_torch."""
    return weight.transpose(*range(2, weight.ndim), 1, 0)


def _depthwise_to_torch(kernel):
    """(*k, C, M) -> (C*M, 1, *k): torch's groups=C conv, output channel c*M + m."""
    r = kernel.ndim - 2
    c, m = kernel.shape[-2:]
    return kernel.transpose(r, r + 1, *range(r)).reshape(c * m, 1, *kernel.shape[:r])


def _depthwise_from_torch(weight, c, m):
    r = weight.ndim - 2
    return weight.reshape(c, m, *weight.shape[2:]).transpose(*range(2, r + 2), 0, 1)


def _prelu_channels(layer, where):
    """alpha's size if only its last axis (the channels) is not shared, else an error."""
    shape = layer.alpha.shape
    if any(s != 1 for s in shape[:-1]):
        raise ArgumentError(
            f"{where}: {_label(layer)} has alpha of shape {shape}, one value per position; "
            "torch.nn.PReLU holds one per channel (or one in all). Make the layer with "
            f"shared_axes={list(range(1, len(shape)))} (every axis but the channels).")
    return shape[-1]


def _entries(layer, where):
    """[(torch key, our variable or None, expected torch shape, to torch, from torch)].

    A None variable is a weight the layer lacks (center/scale False): written as its neutral
    value (the 'neutral' entry), checked to be neutral when read.
    """
    same = (lambda a: a, lambda a: a)
    if isinstance(layer, (Conv1D, Conv2D, Conv1DTranspose, Conv2DTranspose)):
        shape = _conv_to_torch(np.empty(layer.kernel.shape, bool)).shape
        entries = [("weight", layer.kernel, shape, _conv_to_torch, _conv_from_torch)]
        return entries + ([("bias", layer.bias, layer.bias.shape, *same)] if layer.use_bias
                          else [])
    if isinstance(layer, (SeparableConv1D, SeparableConv2D, DepthwiseConv1D, DepthwiseConv2D)):
        c, m = layer.input_channels, layer.depth_multiplier
        depthwise = (layer.depthwise, (c * m, 1, *layer.kernel_size), _depthwise_to_torch,
                     lambda w: _depthwise_from_torch(w, c, m))
        if isinstance(layer, (DepthwiseConv1D, DepthwiseConv2D)):
            return [("weight", *depthwise)] + (
                [("bias", layer.bias, layer.bias.shape, *same)] if layer.use_bias else [])
        point = layer.pointwise_kernel
        entries = [("depthwise.weight", *depthwise),
                   ("pointwise.weight", point, (layer.filters, c * m, *point.shape[:-2]),
                    _conv_to_torch, _conv_from_torch)]
        return entries + ([("pointwise.bias", layer.bias, layer.bias.shape, *same)]
                          if layer.use_bias else [])
    if isinstance(layer, Dense):
        entries = [("weight", layer.kernel, layer.kernel.shape[::-1], np.transpose,
                    np.transpose)]
        return entries + ([("bias", layer.bias, layer.bias.shape, *same)] if layer.use_bias
                          else [])
    if isinstance(layer, Embedding):
        return [("weight", layer.embeddings, layer.embeddings.shape, *same)]
    if isinstance(layer, PReLU):
        channels = _prelu_channels(layer, where)
        shape = layer.alpha.shape
        return [("weight", layer.alpha, (channels,), lambda a: a.reshape(-1),
                 lambda w: w.reshape(shape))]
    if isinstance(layer, (BatchNormalization, GroupNormalization, LayerNormalization)):
        size = layer.moving_mean.shape if isinstance(layer, BatchNormalization) else (
            (layer.gamma if layer.gamma is not None else layer.beta).shape
            if (layer.gamma is not None or layer.beta is not None) else None)
        entries = []
        affine = layer.gamma is not None or layer.beta is not None
        for key, variable in (("weight", layer.gamma), ("bias", layer.beta)):
            # torch's LayerNorm may drop its bias alone (bias=False), not its weight
            alone = isinstance(layer, LayerNormalization) and key == "bias"
            if variable is not None or (affine and not alone):
                entries.append((key, variable, size, *same))
        if isinstance(layer, BatchNormalization):
            entries += [("running_mean", layer.moving_mean, size, *same),
                        ("running_var", layer.moving_variance, size, *same)]
        return entries
    raise AssertionError(f"{where}: {_label(layer)} passed _check but has no entries")


def _check(layer, where, layer_index):
    if type(layer).__name__ not in SUPPORTED_LAYERS or not isinstance(layer, _CLASSES):
        names = ", ".join(sorted(SUPPORTED_LAYERS))
        raise ArgumentTypeError(f"{where}: {_label(layer)} has no PyTorch state dict "
                                f"conversion; supported: {names}.")
    if not layer.built:
        raise ArgumentError(f"{where}: {_label(layer)} is not built; call it on a batch or use "
                            "layer.build_for(input_shape) first.")
    if layer_index != 0:
        raise ArgumentError(f"{where}: layer_index applies to the recurrent layers only (the "
                            f"_l{{k}} keys of a stacked torch RNN); {_label(layer)} takes 0, "
                            f"got {layer_index!r}.")
    return _entries(layer, where)


def _neutral(key):
    return 1.0 if key == "weight" else 0.0


def to_torch_state_dict(layer, layer_index: int = 0) -> dict[str, np.ndarray]:
    """The PyTorch state dict of a built layer with weights, as new arrays (module docstring).

    Recurrent layers (SimpleRNN, LSTM, GRU, Bidirectional): torch_rnn's keys, with
    ``layer_index`` for a stacked torch module; every other layer takes layer_index=0.
    """
    if isinstance(layer, _RECURRENT):
        return torch_rnn.to_torch_state_dict(layer, layer_index)
    state = {}
    for key, variable, shape, to_torch, _ in _check(layer, "to_torch_state_dict", layer_index):
        if variable is None:
            state[key] = np.full(shape, _neutral(key), layer.dtype)
        else:
            state[key] = np.ascontiguousarray(to_torch(variable.data))
    if isinstance(layer, BatchNormalization):
        state["num_batches_tracked"] = np.array(0, np.int64)
    return state


def _array(value, dtype):
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
    elif hasattr(value, "data") and isinstance(value.data, np.ndarray):
        value = value.data  # our Tensor / Variable
    return np.asarray(value).astype(dtype, copy=True)


def torch_state_dict_to_weights(layer, state_dict, layer_index: int = 0) -> list[np.ndarray]:
    """Our weight arrays from a torch state dict, in ``layer.get_weights()`` order, checked
    (keys, shapes) and cast to the layer's dtype, but not loaded."""
    return _from_torch(layer, state_dict, layer_index, "torch_state_dict_to_weights")


def _from_torch(layer, state_dict, layer_index, where):
    if isinstance(layer, _RECURRENT):
        return torch_rnn._from_torch(layer, state_dict, layer_index, where)
    if not hasattr(state_dict, "items"):
        raise ArgumentTypeError(f"{where}: expected a state dict (module.state_dict()), got "
                                f"{type(state_dict).__name__}.")
    entries = _check(layer, where, layer_index)
    known = {key for key, *_ in entries}
    extra = {"num_batches_tracked"} if isinstance(layer, BatchNormalization) else set()
    unexpected = sorted(str(k) for k in state_dict if k not in known | extra)
    if unexpected:
        raise ArgumentError(f"{where}: unexpected key(s) {unexpected} for {_label(layer)}, "
                            f"which takes {sorted(known)} (strip any module prefix).")
    values = {}
    for key, variable, shape, _, from_torch in entries:
        if key not in state_dict:
            if variable is None:
                continue
            raise ArgumentError(f"{where}: missing key {key!r} for {_label(layer)}; the state "
                                f"dict has {sorted(map(str, state_dict))}.")
        array = _array(state_dict[key], layer.dtype)
        if array.shape != tuple(shape):
            raise ArgumentError(f"{where}: {key!r} has shape {array.shape}, expected "
                                f"{tuple(shape)} for {_label(layer)}.")
        if variable is None:
            if not np.all(array == _neutral(key)):
                raise ArgumentError(
                    f"{where}: {key!r} holds values other than {_neutral(key)}, but "
                    f"{_label(layer)} has no such weight (center/scale=False); make the layer "
                    "with center=True and scale=True to keep them.")
            continue
        values[id(variable)] = from_torch(array)
    return [np.ascontiguousarray(values[id(w)]) for w in layer.weights]


def from_torch_state_dict(layer, state_dict, layer_index: int = 0) -> None:
    """Load a PyTorch state dict (tensors or arrays) into a built layer, checked first: a
    missing or unexpected key, or a shape that does not fit, is an error naming both."""
    layer.set_weights(_from_torch(layer, state_dict, layer_index, "from_torch_state_dict"))


_CLASSES = (Conv1D, Conv2D, Conv1DTranspose, Conv2DTranspose, DepthwiseConv1D, DepthwiseConv2D,
            SeparableConv1D, SeparableConv2D, Dense, Embedding, PReLU, BatchNormalization,
            GroupNormalization, LayerNormalization, *_RECURRENT)
SUPPORTED_LAYERS = frozenset(cls.__name__ for cls in _CLASSES)
