"""Saving without pickle: the safetensors format in NumPy alone, written atomically."""

from .atomic import atomic_open
from .safetensors import (
    FileFormatError,
    read_safetensors,
    read_safetensors_metadata,
    write_safetensors,
)

__all__ = [
    "FileFormatError",
    "atomic_open",
    "read_safetensors",
    "read_safetensors_metadata",
    "write_safetensors",
]
