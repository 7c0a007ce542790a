"""Attention over a list [query, value] or [query, value, key] (Keras's Attention and
AdditiveAttention), and the helpers MultiHeadAttention shares: causal masks, symbolic calls
whose options change the outputs, masks given as arguments.

scores (batch, Tq, Tv) -> where the value mask (and causal mask) is False, scores - 1e9 ->
weights = softmax(scores) -> output = weights @ value (batch, Tq, dim), zero where the query
mask is False. Everything is made of differentiable ops, so backward comes free.
"""

import numpy as np

from .. import arguments, ops
from .base import Layer, Node, SymbolicTensor, _shape_of, format_shape

_LARGE = 1.0e9  # Keras's -1e9 for masked scores (float32 and float64 alike)


def causal_mask(tq, tv):
    """(1, Tq, Tv) boolean: query step i may look at value steps j <= i (Keras's rule)."""
    return np.tril(np.ones((tq, tv), dtype=bool))[None]


SYMBOLIC_MASK = ("masks cannot be passed to a call on symbolic tensors (they would not be "
                 "part of the model): let them flow from Embedding(mask_zero=True) or Masking.")


def as_mask(value, layer, name):
    """A mask given by the user (bool or 0/1 array or Tensor) as a bool array, or None."""
    if value is None:
        return None
    if isinstance(value, SymbolicTensor):
        raise layer._error(f"{name}: {SYMBOLIC_MASK}")
    return np.asarray(getattr(value, "data", value)) != 0


def symbolic_call(layer, inputs, options, scores_shape):
    """Record a graph node for a call on symbolic tensors whose outputs depend on the call's
    options (return_attention_scores adds a second output)."""
    if not all(isinstance(x, SymbolicTensor) for x in inputs):
        raise layer._error("in a functional model every input must come from Input(...) or a "
                           "layer, got " + ", ".join(type(x).__name__ for x in inputs) + ".")
    shapes = _shape_of(inputs)
    output_shape = layer.build_for(shapes)
    if options.get("return_attention_scores"):
        output_shape = [output_shape, scores_shape(shapes)]
    return Node(layer, inputs, options, output_shape, layer.dtype).output


def rng_for(seed):
    """The generator for attention dropout: a seeded one, or shenjing's shared one."""
    return np.random.default_rng(seed) if seed is not None else None


def _same(a, b):
    return a is None or b is None or a == b


class Attention(Layer):
    """Dot-product attention (Luong): scores = query @ key^T (times scale if use_scale);
    score_mode='concat': scores = concat_score_weight * sum(tanh(scale * (q + k))).

    Call on [query (B, Tq, dim), value (B, Tv, dim_v)] or [query, value, key (B, Tv, dim)],
    with mask=[query_mask, value_mask], return_attention_scores, use_causal_mask.
    Params: 1 if use_scale, +1 with score_mode='concat'.
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = arguments.boolean(use_scale, "use_scale", self)
        self.score_mode = arguments.choice(score_mode, ("dot", "concat"), "score_mode", self)
        self.dropout = arguments.rate(dropout, "dropout", self)
        self.seed = None if seed is None else arguments.non_negative_int(seed, "seed", self)
        self._rng = rng_for(self.seed)

    def _check(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) not in (2, 3):
            raise self._error("expects a list [query, value] or [query, value, key], got "
                              f"{input_shape!r:.100}.")
        q, v = input_shape[:2]
        k = input_shape[2] if len(input_shape) == 3 else v
        shown = ", ".join(format_shape(s) for s in input_shape)
        if len(q) < 3 or len(v) != len(q) or len(k) != len(q):
            raise self._error(f"query, value and key must share a rank >= 3 (batch, steps, "
                              f"features), got {shown}.")
        if not all(_same(a, b) for a, b in zip(k[:-1], v[:-1])):
            raise self._error(f"key and value must match except in their last axis, got {shown}.")
        if not all(_same(a, b) for a, b in zip(q[:-2], k[:-2])) or not _same(q[-1], k[-1]):
            raise self._error(f"query and key must share their batch axes and last axis, got "
                              f"{shown}.")
        return q, v, k

    def build(self, input_shape):
        self._check(input_shape)
        self.scale = self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight("scale", (), "ones")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight("concat_score_weight", (), "ones")

    def compute_output_shape(self, input_shape):
        q, v, _ = self._check(input_shape)
        return (*q[:-1], v[-1])

    def _scores_shape(self, input_shape):
        q, _, k = self._check(input_shape)
        return (*q[:-1], k[-2])

    def __call__(self, inputs, mask=None, training=False, return_attention_scores=False,
                 use_causal_mask=False):
        options = {"return_attention_scores": arguments.boolean(
            return_attention_scores, "return_attention_scores", self),
            "use_causal_mask": arguments.boolean(use_causal_mask, "use_causal_mask", self)}
        if isinstance(inputs, (list, tuple)) and any(
                isinstance(x, SymbolicTensor) for x in inputs):
            if mask is not None:
                raise self._error(SYMBOLIC_MASK)
            return symbolic_call(self, list(inputs), options, self._scores_shape)
        if isinstance(inputs, tuple):
            inputs = list(inputs)
        return super().__call__(inputs, mask=mask, training=training, **options)

    def _scores(self, query, key):
        if self.score_mode == "dot":
            perm = list(range(key.ndim))
            perm[-2:] = perm[-1], perm[-2]
            scores = ops.matmul(query, ops.transpose(key, perm))
            return scores if self.scale is None else ops.mul(scores, self.scale)
        total = ops.add(ops.reshape(query, (*query.shape[:-1], 1, query.shape[-1])),
                        ops.reshape(key, (*key.shape[:-2], 1, *key.shape[-2:])))
        if self.scale is not None:
            total = ops.mul(self.scale, total)
        return ops.mul(self.concat_score_weight, ops.sum(ops.tanh(total), axis=-1))

    def call(self, inputs, mask=None, training=False, return_attention_scores=False,
             use_causal_mask=False):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if len(inputs) == 3 else value
        if mask is not None and (not isinstance(mask, (list, tuple)) or len(mask) not in (2, 3)):
            raise self._error(f"mask must be a list [query_mask, value_mask], got {mask!r:.80}.")
        q_mask, v_mask = (None, None) if mask is None else (
            as_mask(mask[0], self, "mask[0]"), as_mask(mask[1], self, "mask[1]"))
        scores = self._scores(query, key)
        keep = None if v_mask is None else np.expand_dims(v_mask, -2)  # (B, 1, Tv)
        if use_causal_mask:
            causal = causal_mask(*scores.shape[-2:])
            keep = causal if keep is None else keep & causal
        if keep is not None:
            scores = ops.where(keep, scores, ops.sub(scores, _LARGE))
        weights = ops.softmax(scores, axis=-1)
        dropped = weights
        if training and self.dropout > 0:
            dropped = ops.dropout(weights, self.dropout, training=True, rng=self._rng)
        output = ops.matmul(dropped, value)
        if q_mask is not None:
            output = ops.where(np.expand_dims(q_mask, -1), output, 0.0)
            output._keras_mask = q_mask
        return (output, weights) if return_attention_scores else output

    def compute_mask(self, inputs, mask=None):
        return None  # call puts the query's mask on the output itself

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: scores = sum(scale * tanh(query + key)) over features.

    Called like Attention. Params: dim (the scale vector) if use_scale, else 0.
    """

    def __init__(self, use_scale=True, dropout=0.0, seed=None, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, seed=seed, **kwargs)

    def build(self, input_shape):
        q, _, _ = self._check(input_shape)
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight("scale", (q[-1],), "glorot_uniform")

    def _scores(self, query, key):
        total = ops.add(ops.reshape(query, (*query.shape[:-1], 1, query.shape[-1])),
                        ops.reshape(key, (*key.shape[:-2], 1, *key.shape[-2:])))
        values = ops.tanh(total)
        if self.scale is not None:
            values = ops.mul(self.scale, values)
        return ops.sum(values, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config

