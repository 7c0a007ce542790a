"""Conversions to and from other frameworks' weight layouts, without importing them at import
time: PyTorch state dicts for every layer with weights (torch_layers, torch_rnn), and a whole
Sequential model as a ``torch.nn.Sequential`` (torch_sequential; needs torch installed)."""

from .torch_layers import (
    SUPPORTED_LAYERS,
    from_torch_state_dict,
    to_torch_state_dict,
    torch_state_dict_to_weights,
)
from .torch_sequential import from_torch_sequential, to_torch_sequential

__all__ = ["SUPPORTED_LAYERS", "from_torch_sequential", "from_torch_state_dict", "to_torch_sequential",
           "to_torch_state_dict", "torch_state_dict_to_weights"]
