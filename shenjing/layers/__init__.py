"""Keras-named layers that build their weights lazily from the first input shape."""

from .activations import ELU, LeakyReLU, PReLU, ReLU, Softmax
from .activity_regularization import ActivityRegularization
from .attention import AdditiveAttention, Attention
from .augmentation import (
    RandomContrast, RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
)
from .base import Input, InputLayer, Layer
from .conv import Conv1D, Conv2D, ZeroPadding2D
from .conv_depthwise import DepthwiseConv1D, DepthwiseConv2D, SeparableConv1D, SeparableConv2D
from .conv_lstm import ConvLSTM2D
from .conv_transpose import Conv1DTranspose, Conv2DTranspose
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .embedding import Embedding, Masking
from .lambda_layer import Lambda
from .locally_connected import LocallyConnected2D
from .merge import (
    Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add, average,
    concatenate, dot, maximum, minimum, multiply, subtract,
)
from .multi_head_attention import MultiHeadAttention
from .noise import GaussianDropout, GaussianNoise, SpatialDropout1D, SpatialDropout2D
from .normalization import BatchNormalization, GroupNormalization, LayerNormalization
from .pooling import (
    AveragePooling1D, AveragePooling2D, GlobalAveragePooling1D, GlobalAveragePooling2D,
    GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D, MaxPooling2D,
)
from .preprocessing import Normalization, Rescaling, Resizing
from .recurrent import GRU, LSTM, SimpleRNN
from .reshaping import (
    Cropping1D, Cropping2D, Permute, RepeatVector, UpSampling1D, UpSampling2D, ZeroPadding1D,
)
from .rnn import RNN
from .rnn_cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .wrappers import Bidirectional, TimeDistributed

# every class and function imported above (Input, the functional merge forms `add`, ...);
# computed, so that adding a layer is one import line
__all__ = sorted(name for name, value in dict(globals()).items()
                 if not name.startswith("_") and callable(value))
