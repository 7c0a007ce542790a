"""Embedding (integer ids -> vectors) and Masking: the two ways a sequence gets a mask."""

import numpy as np

from .. import arguments, initializers, ops, regularizers
from .base import Layer, format_shape


class Embedding(Layer):
    """Looks up row ids of a (input_dim, output_dim) table: (N, T) ints -> (N, T, output_dim).

    mask_zero: id 0 is padding, and the output carries a mask (ids != 0) to the layers after.
    Params: input_dim * output_dim.
    """

    single_input = True

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = arguments.positive_int(input_dim, "input_dim", self)
        self.output_dim = arguments.positive_int(output_dim, "output_dim", self)
        arguments.check_elements(self.input_dim * self.output_dim, "the embeddings table", self,
                                 f"input_dim {self.input_dim} and output_dim {self.output_dim}")
        self.mask_zero = arguments.boolean(mask_zero, "mask_zero", self)
        if embeddings_initializer == "uniform":  # Keras's name for RandomUniform(-0.05, 0.05)
            embeddings_initializer = "random_uniform"
        self.embeddings_initializer = arguments.lookup(
            initializers.get, embeddings_initializer, "embeddings_initializer", self)
        self.embeddings_regularizer = arguments.lookup(
            regularizers.get, embeddings_regularizer, "embeddings_regularizer", self)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer,
                                          regularizer=self.embeddings_regularizer)

    def _to_tensor(self, x):
        """Ids stay integers; floats must hold whole numbers (Keras casts them to int)."""
        values = arguments.as_array(x, "the input", self)
        if values.dtype.kind == "f" and not np.all(values == np.round(values)):
            raise arguments.fail(self, f"ids must be whole numbers, got an input of dtype "
                                 f"{values.dtype} with fractions.", arguments.ArgumentTypeError)
        return values.astype(np.int64) if values.dtype.kind != "i" else values

    def call(self, inputs):
        if inputs.size and (inputs.min() < 0 or inputs.max() >= self.input_dim):
            bad = inputs.min() if inputs.min() < 0 else inputs.max()
            raise self._error(f"ids must be in [0, {self.input_dim}), got {bad} in an input of "
                              f"shape {format_shape(inputs.shape)}.")
        return ops.getitem(self.embeddings, inputs)

    def compute_mask(self, inputs, mask=None):
        return np.asarray(inputs) != 0 if self.mask_zero else None

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim, "mask_zero": self.mask_zero,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer)}


class Masking(Layer):
    """Marks time steps whose features all equal mask_value as padding (mask False) and zeroes
    them; the mask then flows to the recurrent layers after it."""

    single_input = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = arguments.number(mask_value, "mask_value", self)

    def compute_mask(self, inputs, mask=None):
        return np.any(inputs.data != self.mask_value, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape  # elementwise

    def call(self, inputs):
        keep = np.any(inputs.data != self.mask_value, axis=-1, keepdims=True)
        return inputs * keep.astype(inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
