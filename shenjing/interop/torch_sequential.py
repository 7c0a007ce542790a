"""A built Sequential model -> an equivalent ``torch.nn.Sequential`` with our weights.

The module takes channels-last input, as our model does, and returns what the model returns:
torch's convolutions, pooling and batch norm want channels first, so a ``Permute`` module is
inserted where the layout has to change (before the first conv, and back before a Flatten,
Dense, recurrent layer or the end). Flatten therefore sees channels-last maps and the Dense
weights after it keep their meaning. Each layer maps to (tables: README "Keras and PyTorch
conventions", torch_layers):

- Conv1D/2D, DepthwiseConv1D/2D (``groups=C``), SeparableConv1D/2D (named ``depthwise`` and
  ``pointwise`` convs): 'valid' is padding 0, 'same' at stride 1 is torch's padding='same'
  (the odd pixel after, as Keras; a ``ConstantPad`` for an even kernel), strided 'same' and
  explicit uneven pads are a ``ConstantPad1d/2d`` before the conv, sized for the input shape;
  Conv1D/2DTranspose as ConvTranspose1d/2d (padding, output_padding; else a crop after it);
- Max/AveragePooling1D/2D ('same' max pooling pads with -inf; an average pool whose 'same'
  pads are not zero is refused: torch's average pool cannot leave uneven pads uncounted),
  Global pooling (``AdaptiveAvg/MaxPool`` to 1, then ``Flatten``), ZeroPadding1D/2D;
- BatchNormalization (``eps`` = epsilon, ``momentum`` = 1 - momentum), LayerNormalization
  (trailing axes), GroupNormalization; Dense, Embedding (without mask_zero), Flatten, Reshape,
  Dropout (``nn.Dropout``, no noise_shape);
- activations: the layer and the ``activation=`` of Conv/Dense (relu, sigmoid, tanh,
  softmax, log_softmax, gelu, elu, selu, softplus, softsign, silu/swish, hard_sigmoid, relu6,
  leaky_relu), ReLU, LeakyReLU, ELU, PReLU, Softmax;
- SimpleRNN/LSTM/GRU and Bidirectional(merge_mode='concat') as torch RNN/LSTM/GRU with
  ``batch_first=True``, followed by a module that keeps the whole sequence or, without
  return_sequences, the final hidden state(s) (forward then backward, as Keras concatenates).

Dropout inside a recurrent layer (dropout, recurrent_dropout) has no torch counterpart: it is
left out with a warning, so the modules agree in eval mode. Any other layer is refused with
an error naming it. torch is imported only when this is called.
"""

import warnings

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..layers import activations as act_layers
from ..layers import (
    conv,
    conv_depthwise,
    conv_transpose,
    core,
    embedding,
    normalization,
    pooling,
    reshaping,
)
from ..layers.core import activation_name
from ..layers.recurrent import GRU, LSTM, SimpleRNN
from ..layers.wrappers import Bidirectional
from . import torch_layers, torch_rnn
from .torch_modules import torch_classes
from .torch_sequential_conv import ConvModules

__all__ = ["from_torch_sequential", "to_torch_sequential"]

_ACTIVATIONS = {  # our activation name -> (torch.nn class name, kwargs)
    "relu": ("ReLU", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
    "gelu": ("GELU", {}), "elu": ("ELU", {}), "selu": ("SELU", {}),
    "softplus": ("Softplus", {}), "softsign": ("Softsign", {}), "silu": ("SiLU", {}),
    "hard_sigmoid": ("Hardsigmoid", {}), "relu6": ("ReLU6", {}),
    "leaky_relu": ("LeakyReLU", {"negative_slope": 0.2}),
    "softmax": ("Softmax", {}), "log_softmax": ("LogSoftmax", {}),
}


def _label(layer):
    return f"{type(layer).__name__} '{layer.name}'"


class _Builder(ConvModules):
    """Appends torch modules for our layers one by one, tracking the layout (channels last or
    first) of the tensor between them."""

    def __init__(self, torch, model):
        self.torch, self.nn, self.model = torch, torch.nn, model
        self.classes = torch_classes(torch)
        self.modules, self.first, self.rank = [], False, None
        self.weighted = []  # (our layer, its module's index, the key prefix within it)

    def refuse(self, layer, why):
        raise ArgumentError(f"to_torch_sequential: {_label(layer)} in model '{self.model.name}' "
                            f"{why}")

    def add(self, module):
        self.modules.append(module)

    def layout(self, first):
        """Permute so that channels are first (torch) or last (ours); rank 2 has no layout."""
        r = self.rank
        if r > 2 and first != self.first:
            dims = (r - 1, *range(1, r - 1)) if first else (*range(2, r), 1)
            self.add(self.classes["Permute"](dims))
        self.first = first if r > 2 else False

    def loaded(self, module, layer, prefix=""):
        """module with the layer's weights, cast to its dtype; noted for from_torch_sequential
        (prefix: where the weights sit in the module appended, e.g. 'rnn.')."""
        self.weighted.append((layer, len(self.modules), prefix))
        state = torch_layers.to_torch_state_dict(layer)
        module.load_state_dict({k: self.torch.from_numpy(np.array(v)) for k, v in state.items()})
        return module

    def dtype(self, layer):
        return getattr(self.torch, np.dtype(layer.dtype).name)

    def activation(self, layer, name):
        if name == "linear":
            return
        if name not in _ACTIVATIONS:
            self.refuse(layer, f"has activation {name!r}, which has no torch.nn module here; "
                        f"supported: {sorted(_ACTIVATIONS)} and 'linear'.")
        cls, kwargs = _ACTIVATIONS[name]
        if cls in ("Softmax", "LogSoftmax"):  # over our last axis: the channels
            kwargs = {"dim": 1 if self.first else -1}
        self.add(getattr(self.nn, cls)(**kwargs))

    # ----- layers ----------------------------------------------------------------------------
    def batch_norm(self, layer):
        if layer.axis % self.rank != self.rank - 1:
            self.refuse(layer, f"normalizes axis {layer.axis}; only the last (channel) axis "
                        "maps to torch's BatchNorm.")
        self.layout(first=True)
        cls = getattr(self.nn, "BatchNorm2d" if self.rank == 4 else "BatchNorm1d")
        if self.rank > 4:
            self.refuse(layer, f"has an input of rank {self.rank}; only ranks 2 to 4 convert.")
        module = cls(layer.moving_mean.shape[0], eps=layer.epsilon, momentum=1 - layer.momentum,
                     affine=layer.gamma is not None or layer.beta is not None,
                     dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))

    def layer_norm(self, layer):
        self.layout(first=False)
        axes = layer._axes(layer.input_shape)
        if axes != list(range(self.rank - len(axes), self.rank)) or layer.rms_scaling:
            self.refuse(layer, f"normalizes axes {layer.axis!r} (rms_scaling="
                        f"{layer.rms_scaling}); torch's LayerNorm takes trailing axes only, "
                        "without rms_scaling.")
        affine = layer.gamma is not None or layer.beta is not None
        module = self.nn.LayerNorm([layer.input_shape[a] for a in axes], eps=layer.epsilon,
                                   elementwise_affine=affine, bias=layer.beta is not None,
                                   dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))

    def group_norm(self, layer):
        if layer.axis % self.rank != self.rank - 1:
            self.refuse(layer, f"has axis {layer.axis}; only the last (channel) axis maps to "
                        "torch's GroupNorm.")
        self.layout(first=True)
        c = layer.input_shape[-1]
        module = self.nn.GroupNorm(layer.groups, c, eps=layer.epsilon,
                                   affine=layer.gamma is not None or layer.beta is not None,
                                   dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))

    def recurrent(self, layer):
        self.layout(first=False)
        cell = layer.forward_layer if isinstance(layer, Bidirectional) else layer
        if isinstance(layer, Bidirectional) and layer.merge_mode != "concat":
            self.refuse(layer, f"has merge_mode={layer.merge_mode!r}; torch's bidirectional "
                        "modules concatenate (merge_mode='concat').")
        if cell.return_state or cell.stateful:
            self.refuse(layer, "has return_state or stateful set, which a torch.nn.Sequential "
                        "cannot carry.")
        if cell.dropout or cell.recurrent_dropout:
            warnings.warn(f"to_torch_sequential: {_label(layer)}'s dropout and "
                          "recurrent_dropout have no torch counterpart and are left out; the "
                          "modules agree in eval mode.", stacklevel=3)
        torch_rnn.to_torch_state_dict(layer)  # checks activations, go_backwards, ...
        cls = {SimpleRNN: "RNN", LSTM: "LSTM", GRU: "GRU"}[type(cell)]
        extra = {"nonlinearity": cell.activation_name} if cls == "RNN" else {}
        rnn = getattr(self.nn, cls)(cell.kernel.shape[0], cell.units, bias=cell.use_bias,
                                    batch_first=True, dtype=self.dtype(layer),
                                    bidirectional=isinstance(layer, Bidirectional), **extra)
        self.loaded(rnn, layer, prefix="rnn.")
        self.add(self.classes["Recurrent"](rnn, cell.return_sequences))

    def dense(self, layer):
        self.layout(first=False)
        module = self.nn.Linear(layer.kernel.shape[0], layer.units, bias=layer.use_bias,
                                dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))
        self.activation(layer, activation_name(layer.activation))

    def relu(self, layer):
        slope, top, threshold = layer.negative_slope, layer.max_value, layer.threshold
        if threshold or (slope and top is not None):
            self.refuse(layer, "has a threshold, or both negative_slope and max_value; torch "
                        "has no such module.")
        if slope:
            self.add(self.nn.LeakyReLU(slope))
        elif top is not None:
            self.add(self.nn.Hardtanh(0.0, top))
        else:
            self.add(self.nn.ReLU())

    def prelu(self, layer):
        channels = torch_layers._prelu_channels(layer, "to_torch_sequential")
        self.layout(first=True)
        module = self.nn.PReLU(channels, dtype=self.dtype(layer))
        self.add(self.loaded(module, layer))

    def layer(self, layer):
        """Append the modules for one layer of ours."""
        self.rank = len(layer.input_shape)
        nn, kind = self.nn, type(layer)
        if isinstance(layer, conv.Conv1D | conv.Conv2D | conv_depthwise.DepthwiseConv1D |
                      conv_depthwise.DepthwiseConv2D | conv_depthwise.SeparableConv1D |
                      conv_depthwise.SeparableConv2D):
            self.conv(layer)
        elif isinstance(layer, conv_transpose.Conv1DTranspose | conv_transpose.Conv2DTranspose):
            self.conv_transpose(layer)
        elif isinstance(layer, pooling._Pooling):
            self.pool(layer)
        elif isinstance(layer, pooling._GlobalPooling):
            self.global_pool(layer)
        elif isinstance(layer, conv.ZeroPadding2D | reshaping.ZeroPadding1D):
            self.channels_last(layer)
            self.layout(first=True)
            pairs = layer.padding if kind is conv.ZeroPadding2D else (layer.padding,)
            self.add(self.zero_pad(pairs))
        elif kind is normalization.BatchNormalization:
            self.batch_norm(layer)
        elif kind is normalization.LayerNormalization:
            self.layer_norm(layer)
        elif kind is normalization.GroupNormalization:
            self.group_norm(layer)
        elif isinstance(layer, SimpleRNN | LSTM | GRU | Bidirectional):
            self.recurrent(layer)
        elif kind is core.Dense:
            self.dense(layer)
        elif kind is core.Flatten:
            self.layout(first=False)
            self.add(nn.Flatten())
        elif kind is core.Reshape:
            self.layout(first=False)
            self.add(self.classes["Reshape"](layer.output_shape[1:]))
        elif kind is core.Dropout:
            if layer.noise_shape is not None:
                self.refuse(layer, "has a noise_shape; torch's Dropout drops single values.")
            self.add(nn.Dropout(layer.rate))
        elif kind is embedding.Embedding:
            if layer.mask_zero:
                self.refuse(layer, "has mask_zero=True; torch modules carry no masks.")
            module = nn.Embedding(layer.input_dim, layer.output_dim, dtype=self.dtype(layer))
            self.add(self.loaded(module, layer))
        elif kind is core.Activation:
            self.activation(layer, activation_name(layer.activation))
        elif kind is act_layers.ReLU:
            self.relu(layer)
        elif kind is act_layers.LeakyReLU:
            self.add(nn.LeakyReLU(layer.negative_slope))
        elif kind is act_layers.ELU:
            self.add(nn.ELU(layer.alpha))
        elif kind is act_layers.Softmax:
            if layer.axis not in (-1, self.rank - 1):
                self.refuse(layer, f"has axis {layer.axis}; only the last axis converts.")
            self.activation(layer, "softmax")
        elif kind is act_layers.PReLU:
            self.prelu(layer)
        else:
            self.refuse(layer, "has no torch.nn equivalent here; supported: the layers listed "
                        "in shenjing.interop.torch_sequential's docstring.")
        self.rank = len(layer.output_shape)


def to_torch_sequential(model):
    """An equivalent ``torch.nn.Sequential`` of a built Sequential model, with its weights.

    It takes channels-last input and gives our model's output (module docstring); put it in
    eval mode (``.eval()``) to predict as ``model.predict`` does. Raises an error naming the
    first layer that has no torch counterpart. from_torch_sequential loads its weights back.
    """
    import torch

    return torch.nn.Sequential(*_build(model, "to_torch_sequential").modules)


def _build(model, where):
    from ..models.functional import Sequential

    if not isinstance(model, Sequential):
        raise ArgumentTypeError(f"{where}: expected a Sequential model, got "
                                f"{type(model).__name__}.")
    if not model.built or not model.layers:
        raise ArgumentError(f"{where}: Sequential '{model.name}' is not built; give it an "
                            "Input(shape) or call it on a batch first.")
    import torch

    builder = _Builder(torch, model)
    for layer in model.layers:
        builder.layer(layer)
    builder.layout(first=False)
    return builder


def from_torch_sequential(model, module) -> None:
    """Load the weights of a ``torch.nn.Sequential`` made by to_torch_sequential(model) (and
    trained in torch, say) back into model's layers, every layer checked before any is set.

    The module must have the structure to_torch_sequential gives this model: the same module
    types in the same places, else an error says where they differ.
    """
    where = "from_torch_sequential"
    builder = _build(model, where)
    expected = [type(m).__name__ for m in builder.modules]
    got = [type(m).__name__ for m in module] if hasattr(module, "__iter__") else None
    if got != expected:
        raise ArgumentError(f"{where}: the module is not what to_torch_sequential makes of "
                            f"Sequential '{model.name}': expected modules {expected}, got "
                            f"{got if got is not None else type(module).__name__}.")
    state = module.state_dict()
    loads = []
    for layer, index, prefix in builder.weighted:
        start = f"{index}.{prefix}"
        part = {k[len(start):]: v for k, v in state.items() if k.startswith(start)}
        loads.append((layer, torch_layers.torch_state_dict_to_weights(layer, part)))
    for layer, weights in loads:
        layer.set_weights(weights)
