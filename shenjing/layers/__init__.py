"""Keras-named layers that build their weights lazily from the first input shape."""

from .activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .base import Input, InputLayer, Layer
from .conv import Conv1D, Conv2D, ZeroPadding2D
from .conv_depthwise import DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D
from .conv_transpose import Conv1DTranspose, Conv2DTranspose
from .conv_lstm import ConvLSTM2D
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
from .rnn import RNN
from .rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .wrappers import Bidirectional, TimeDistributed
from .pooling import (
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D,
)

# every class (and Input) imported above; computed, so that adding a layer is one import line
__all__ = sorted(name for name in dict(globals()) if name[:1].isupper())
