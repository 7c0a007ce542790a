"""Keras-named layers that build their weights lazily from the first input shape."""

from .activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import Input, InputLayer, Layer
from .conv import Conv1D, Conv2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .embedding import Embedding, Masking
from .locally_connected import LocallyConnected2D
from .merge import Add, Concatenate, Multiply
from .noise import GaussianDropout, GaussianNoise, SpatialDropout1D, SpatialDropout2D
from .normalization import BatchNormalization, GroupNormalization, LayerNormalization
from .reshaping import (
    Cropping1D, Cropping2D, Permute, RepeatVector, UpSampling1D, UpSampling2D, ZeroPadding1D,
)
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed
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
    "MaxPooling2D", "Multiply", "Reshape", "SimpleRNN", "TimeDistributed", "ZeroPadding2D",
    # issue 13, reshaping / activation / noise layers
    "Cropping1D", "Cropping2D", "ELU", "GaussianDropout", "GaussianNoise", "LeakyReLU", "PReLU",
    "Permute", "ReLU", "RepeatVector", "Softmax", "SpatialDropout1D", "SpatialDropout2D",
    "UpSampling1D", "UpSampling2D", "ZeroPadding1D",
]
