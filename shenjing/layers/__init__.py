"""Keras-named layers that build their weights lazily from the first input shape."""

from .augmentation import (
    RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
)
from .base import Input, InputLayer, Layer
from .conv import Conv1D, Conv2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .embedding import Embedding, Masking
from .locally_connected import LocallyConnected2D
from .merge import Add, Concatenate, Multiply
from .normalization import BatchNormalization, GroupNormalization, LayerNormalization
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed
from .preprocessing import Normalization, Rescaling, Resizing
from .pooling import (
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D,
)

__all__ = [
    "Activation", "Add", "AveragePooling1D", "AveragePooling2D", "BatchNormalization",
    "Bidirectional", "Concatenate", "Conv1D", "Conv2D", "Dense", "Dropout", "Embedding",
    "Flatten", "GRU", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GroupNormalization", "Input", "InputLayer", "LSTM", "Layer",
    "LayerNormalization", "LocallyConnected2D", "Masking", "MaxPooling1D",
    "MaxPooling2D", "Multiply", "Normalization", "RandomContrast", "RandomFlip",
    "RandomRotation", "RandomTranslation", "RandomZoom", "Rescaling", "Reshape", "Resizing",
    "SimpleRNN", "TimeDistributed", "ZeroPadding2D",
]
