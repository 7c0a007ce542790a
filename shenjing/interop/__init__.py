"""Conversions to and from other frameworks' weight layouts, without importing them."""

from .torch_rnn import from_torch_state_dict, to_torch_state_dict, torch_state_dict_to_weights

__all__ = ["from_torch_state_dict", "to_torch_state_dict", "torch_state_dict_to_weights"]
