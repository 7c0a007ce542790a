"""Weights of SimpleRNN, LSTM, GRU (and Bidirectional) <-> torch.nn.RNN / LSTM / GRU state dicts.

NumPy only: torch is never imported. Values going to torch are ndarrays (load them with
``module.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})``); values coming from
torch may be tensors (read with ``.detach().cpu()``) or arrays. G gate blocks of u units, d input
features, k the torch layer index (``num_layers > 1``), ``_reverse`` for Bidirectional's
backward layer (torch ``bidirectional=True``):

| shenjing (Keras layout)            | torch                                            |
|------------------------------------|--------------------------------------------------|
| kernel (d, G*u)                    | weight_ih_l{k} (G*u, d) = kernel.T               |
| recurrent_kernel (u, G*u)          | weight_hh_l{k} (G*u, u) = recurrent_kernel.T     |
| SimpleRNN, LSTM bias (G*u,)        | bias_ih_l{k} = bias, bias_hh_l{k} = 0; back: sum |
| GRU bias (2, 3u), reset_after=True | bias_ih_l{k} = bias[0], bias_hh_l{k} = bias[1]   |
| use_bias=False                     | bias=False (no bias_* keys)                      |

Gate blocks: LSTM i, f, c, o is torch's i, f, g, o; GRU z, r, h is torch's r, z, n reordered
(the first two blocks swap). torch fixes the activations: SimpleRNN tanh or relu (pass it as
``nonlinearity``), LSTM and GRU tanh with sigmoid gates; torch's GRU is reset_after=True.
"""

import re

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError
from ..layers.recurrent import GRU, LSTM, SimpleRNN
from ..layers.wrappers import Bidirectional
from ..tensor import Tensor

__all__ = ["from_torch_state_dict", "to_torch_state_dict", "torch_state_dict_to_weights"]

_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")
_TORCH_NAME = {SimpleRNN: "torch.nn.RNN", LSTM: "torch.nn.LSTM", GRU: "torch.nn.GRU"}


def _label(layer):
    return f"{type(layer).__name__} '{layer.name}'"


def _check_cell(layer, where):
    """A built SimpleRNN / LSTM / GRU whose computation torch can express."""
    if type(layer) not in _TORCH_NAME:
        raise ArgumentTypeError(
            f"{where}: expected a SimpleRNN, LSTM, GRU or Bidirectional layer, got "
            f"{type(layer).__name__}.")
    if not layer.built:
        raise ArgumentError(f"{where}: {_label(layer)} is not built; call it on a batch or use "
                            "layer.build_for((None, None, input_dim)) first.")
    if isinstance(layer, SimpleRNN):
        if layer.activation_name not in ("tanh", "relu"):
            raise ArgumentError(f"{where}: {_label(layer)} has activation "
                                f"{layer.activation_name!r}; torch.nn.RNN supports only 'tanh' or "
                                "'relu' (its nonlinearity).")
        return
    if layer.activation_name != "tanh" or layer.recurrent_activation_name != "sigmoid":
        raise ArgumentError(
            f"{where}: {_label(layer)} has activation {layer.activation_name!r} and "
            f"recurrent_activation {layer.recurrent_activation_name!r}; "
            f"{_TORCH_NAME[type(layer)]} computes only 'tanh' and 'sigmoid'.")
    if isinstance(layer, GRU) and not layer.reset_after:
        raise ArgumentError(f"{where}: {_label(layer)} has reset_after=False, which torch.nn.GRU "
                            "cannot express (it applies the reset gate after the recurrent "
                            "product); use GRU(reset_after=True).")


def _settings(layer):
    return (type(layer), layer.units, layer.use_bias, layer.activation_name,
            getattr(layer, "recurrent_activation_name", None), layer.kernel.shape)


def _directions(layer, where):
    """[(cell layer, key suffix)]: one plain layer, or Bidirectional's forward and backward."""
    if not isinstance(layer, Bidirectional):
        _check_cell(layer, where)
        if layer.go_backwards:
            raise ArgumentError(f"{where}: {_label(layer)} has go_backwards=True; a one-way torch "
                                "module reads time forward. Wrap the layer in Bidirectional for "
                                "torch's bidirectional=True.")
        return [(layer, "")]
    forward, backward = layer.forward_layer, layer.backward_layer
    _check_cell(forward, where)
    _check_cell(backward, where)
    if forward.go_backwards or not backward.go_backwards:
        raise ArgumentError(
            f"{where}: {_label(layer)} must read time forward in its forward_layer "
            "and backward in its backward_layer, as torch's bidirectional=True "
            f"does; got go_backwards={forward.go_backwards} and "
            f"{backward.go_backwards}.")
    if _settings(forward) != _settings(backward):
        raise ArgumentError(f"{where}: {_label(layer)} needs two layers of the same type, units, "
                            "use_bias, activations and input size for torch; got "
                            f"{_label(forward)} and {_label(backward)} that differ.")
    return [(forward, ""), (backward, "_reverse")]


def _check_index(layer_index, where):
    if not isinstance(layer_index, (int, np.integer)) or layer_index < 0:
        raise ArgumentError(f"{where}: layer_index must be an integer >= 0, got {layer_index!r}.")
    return int(layer_index)


def _order(layer):
    """Row order taking our gate blocks to torch's and back (GRU z, r, h <-> r, z, n)."""
    u = layer.units
    if isinstance(layer, GRU):
        return np.r_[u:2 * u, 0:u, 2 * u:3 * u]
    return np.arange(layer.gates * u)


def to_torch_state_dict(layer, layer_index: int = 0) -> dict[str, np.ndarray]:
    """The torch state dict of a built SimpleRNN, LSTM, GRU or Bidirectional, as new arrays.

    Keys ``weight_ih_l{k}, weight_hh_l{k}[, bias_ih_l{k}, bias_hh_l{k}]`` (+ ``_reverse`` ones
    for Bidirectional), k = layer_index; merge the dicts of stacked layers for num_layers > 1.
    """
    where = "to_torch_state_dict"
    suffix = f"_l{_check_index(layer_index, where)}"
    state = {}
    for cell, direction in _directions(layer, where):
        order, tag = _order(cell), suffix + direction
        state[f"weight_ih{tag}"] = np.ascontiguousarray(cell.kernel.data.T[order])
        state[f"weight_hh{tag}"] = np.ascontiguousarray(cell.recurrent_kernel.data.T[order])
        if cell.use_bias:
            bias = cell.bias.data
            if isinstance(cell, GRU):
                state[f"bias_ih{tag}"], state[f"bias_hh{tag}"] = bias[0][order], bias[1][order]
            else:
                state[f"bias_ih{tag}"], state[f"bias_hh{tag}"] = bias.copy(), np.zeros_like(bias)
    return state


def _to_array(value, dtype):
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
    return np.asarray(value).astype(dtype, copy=True)


def _torch_keys(state_dict, where, layer_index):
    """This torch layer's keys, {(name, direction suffix): value}; other indices are skipped."""
    found = {}
    for key, value in state_dict.items():
        match = _KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise ArgumentError(
                f"{where}: unexpected key {key!r}; expected torch RNN keys such as "
                "'weight_ih_l0' or 'bias_hh_l1_reverse' (strip any module prefix).")
        if int(match[2]) == layer_index:
            found[match[1], match[3] or ""] = value
    if not found:
        raise ArgumentError(f"{where}: no keys for layer_index={layer_index} (suffix "
                            f"'_l{layer_index}'); the state dict has {sorted(state_dict)}.")
    return found


def torch_state_dict_to_weights(layer, state_dict, layer_index: int = 0) -> list[np.ndarray]:
    """Our weight arrays from a torch state dict, in ``layer.get_weights()`` order, checked
    and cast to the layer's dtype but not loaded. SimpleRNN/LSTM bias = bias_ih + bias_hh."""
    return _from_torch(layer, state_dict, layer_index, "torch_state_dict_to_weights")


def _from_torch(layer, state_dict, layer_index, where):
    layer_index = _check_index(layer_index, where)
    if not hasattr(state_dict, "items"):
        raise ArgumentTypeError(f"{where}: expected a state dict (module.state_dict()), got "
                                f"{type(state_dict).__name__}.")
    directions = _directions(layer, where)
    found = _torch_keys(state_dict, where, layer_index)
    tag = f"_l{layer_index}"
    if ("weight_hr", "") in found or ("weight_hr", "_reverse") in found:
        raise ArgumentError(f"{where}: weight_hr{tag} is there: a torch LSTM with proj_size > 0 "
                            f"has no counterpart in {_label(layer)}.")
    if len(directions) == 1 and any(direction for _, direction in found):
        raise ArgumentError(f"{where}: the state dict is bidirectional (keys ending in "
                            f"'{tag}_reverse'); load it into a Bidirectional layer, not "
                            f"{_label(layer)}.")
    if len(directions) == 2 and not any(direction for _, direction in found):
        raise ArgumentError(
            f"{where}: {_label(layer)} needs the keys of a torch module with "
            f"bidirectional=True ('weight_ih{tag}_reverse', ...); the state dict has "
            f"{sorted(state_dict)}.")
    weights = []
    for cell, direction in directions:
        u, d, gates = cell.units, cell.kernel.shape[0], cell.gates
        names = ["weight_ih", "weight_hh"]
        for name in names:
            if (name, direction) not in found:
                raise ArgumentError(f"{where}: missing key '{name}{tag}{direction}' for "
                                    f"{_label(cell)}; the state dict has {sorted(state_dict)}.")
        has_bias = [(name, direction) in found for name in ("bias_ih", "bias_hh")]
        if cell.use_bias:
            if not all(has_bias):
                missing = "bias_ih" if not has_bias[0] else "bias_hh"
                raise ArgumentError(f"{where}: missing key '{missing}{tag}{direction}'; "
                                    f"{_label(cell)} has use_bias=True, so the torch module needs "
                                    "bias=True.")
            names += ["bias_ih", "bias_hh"]
        elif any(has_bias):
            raise ArgumentError(
                f"{where}: {_label(cell)} has use_bias=False but the state dict has "
                f"bias_ih{tag}{direction}; make the torch module with bias=False or "
                "the layer with use_bias=True.")
        expected = {"weight_ih": (gates * u, d), "weight_hh": (gates * u, u),
                    "bias_ih": (gates * u,), "bias_hh": (gates * u,)}
        arrays = {}
        for name in names:
            key = f"{name}{tag}{direction}"
            arrays[name] = _to_array(found[name, direction], cell.dtype)
            if arrays[name].shape != expected[name]:
                raise ArgumentError(
                    f"{where}: {key} has shape {arrays[name].shape}, expected {expected[name]} "
                    f"for {_label(cell)} ({gates} gate blocks of units={u}, input_dim={d}).")
        order = _order(cell)
        weights += [arrays["weight_ih"][order].T, arrays["weight_hh"][order].T]
        if cell.use_bias:
            bias_ih, bias_hh = arrays["bias_ih"][order], arrays["bias_hh"][order]
            weights.append(np.stack([bias_ih, bias_hh]) if isinstance(cell, GRU)
                           else bias_ih + bias_hh)
    return weights


def from_torch_state_dict(layer, state_dict, layer_index: int = 0) -> None:
    """Load a torch RNN/LSTM/GRU state dict (tensors or arrays) into a built layer.

    layer_index k picks the ``_l{k}`` keys of a stacked torch module (num_layers > 1), so its
    layers load one by one into a stack of ours; keys of other indices are ignored.
    """
    layer.set_weights(_from_torch(layer, state_dict, layer_index, "from_torch_state_dict"))
