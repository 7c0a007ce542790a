"""MultiHeadAttention with Keras's weight layout, so ``get_weights``/``set_weights`` carry over.

Per head h: Q_h = query @ Wq_h + bq_h, K_h = key @ Wk_h + bk_h, V_h = value @ Wv_h + bv_h,
A_h = softmax(Q_h K_h^T / sqrt(key_dim)) (masked positions left out), O_h = A_h V_h;
output = sum_h O_h @ Wo_h + bo. Weights in Keras's order: query/kernel (d_q, heads, key_dim),
query/bias (heads, key_dim), key/..., value/kernel (d_v, heads, value_dim), value/bias,
attention_output/kernel (heads, value_dim, *output_shape), attention_output/bias.
Params: (d_q + d_k + 2) * heads * key_dim + (d_v + 1) * heads * value_dim
+ (heads * value_dim + 1) * prod(output_shape), without the biases if use_bias=False.
"""

import math

import numpy as np

from .. import arguments, initializers, ops, regularizers
from . import attention as helpers
from .base import Layer, SymbolicTensor, format_shape
from .core import set_kernel_options


def _output_shape(value, layer):
    if value is None:
        return None
    if arguments.is_int(value):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not value:
        raise arguments.fail(layer, f"output_shape must be an int or a tuple of ints, got "
                             f"{value!r}.", arguments.ArgumentTypeError)
    return tuple(arguments.positive_int(v, "output_shape", layer) for v in value)


def _attention_axes(value, layer):
    if value is None:
        return None
    if arguments.is_int(value):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not value:
        raise arguments.fail(layer, f"attention_axes must be an int, a tuple of ints or None, "
                             f"got {value!r}.", arguments.ArgumentTypeError)
    return tuple(arguments.integer(a, "attention_axes", layer) for a in value)


class MultiHeadAttention(Layer):
    """Multi-head scaled dot-product attention (Vaswani et al.), Keras 3's layer.

    Call: mha(query (B, T, d_q), value (B, S, d_v), key=None (B, S, d_k; default value),
    query_mask, value_mask, key_mask ((B, T)/(B, S) booleans; default: the inputs' masks),
    attention_mask (B, T, S), return_attention_scores ((B, heads, T, S) too), training,
    use_causal_mask). Args: num_heads, key_dim, value_dim (default key_dim), dropout (on the
    attention weights), use_bias, output_shape (default d_q), attention_axes (default: every
    axis between batch and features), kernel/bias initializers and regularizers, seed.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = arguments.positive_int(num_heads, "num_heads", self)
        self.key_dim = arguments.positive_int(key_dim, "key_dim", self)
        self.value_dim = (self.key_dim if value_dim is None
                          else arguments.positive_int(value_dim, "value_dim", self))
        self.dropout = arguments.rate(dropout, "dropout", self)
        set_kernel_options(self, None, use_bias, kernel_initializer, bias_initializer,
                           kernel_regularizer, bias_regularizer)
        self._output_shape = _output_shape(output_shape, self)
        self.attention_axes = _attention_axes(attention_axes, self)
        self.seed = None if seed is None else arguments.non_negative_int(seed, "seed", self)
        self._rng = helpers.rng_for(self.seed)

    # ----- shapes ------------------------------------------------------------------------
    def _check(self, input_shape):
        """(query, value, key) shapes, checked; sets self._axes (the attention axes)."""
        if not isinstance(input_shape, list) or len(input_shape) not in (3, 4):
            raise self._error("expects query and value (and optionally key, attention_mask), "
                              f"got {input_shape!r:.100}.")
        q, v, k = input_shape[:3]
        shown = ", ".join(format_shape(s) for s in input_shape[:3])
        if len(q) < 3 or len(v) != len(q) or len(k) != len(q):
            raise self._error(f"query, value and key must share a rank >= 3 (batch, ..., "
                              f"features), got {shown}.")
        if any(a is not None and b is not None and a != b for a, b in zip(v[:-1], k[:-1])):
            raise self._error(f"value and key must match in every axis but the last, got "
                              f"{shown}.")
        rank = len(q)
        axes = tuple(range(1, rank - 1)) if self.attention_axes is None else tuple(
            a + rank if a < 0 else a for a in self.attention_axes)
        if any(not 1 <= a <= rank - 2 for a in axes) or len(set(axes)) != len(axes):
            raise self._error(f"attention_axes {self.attention_axes} must be distinct axes "
                              f"between the batch axis and the feature axis of inputs of rank "
                              f"{rank}.")
        batch_axes = [0] + [a for a in range(1, rank - 1) if a not in axes]
        if any(q[a] is not None and k[a] is not None and q[a] != k[a] for a in batch_axes):
            raise self._error(f"query and key must match outside the attention axes {axes}, got "
                              f"{shown}.")
        self._axes = axes
        return q, v, k

    def compute_output_shape(self, input_shape):
        q, _, _ = self._check(input_shape)
        return (*q[:-1], *(self._output_shape or q[-1:]))

    def _scores_shape(self, input_shape):
        q, _, k = self._check(input_shape)
        others = [q[a] for a in range(1, len(q) - 1) if a not in self._axes]
        return (q[0], *others, self.num_heads, *(q[a] for a in self._axes),
                *(k[a] for a in self._axes))

    def build(self, input_shape):
        q, v, k = self._check(input_shape)
        for label, d in (("query", q[-1]), ("value", v[-1]), ("key", k[-1])):
            if d is None:
                raise self._error(f"the last axis of {label} must be known to build, got "
                                  f"{format_shape(input_shape[0])}.")
        heads, out = self.num_heads, self._output_shape or (q[-1],)
        for label, d, width in (("query", q[-1], self.key_dim), ("key", k[-1], self.key_dim),
                                ("value", v[-1], self.value_dim)):
            setattr(self, f"{label}_kernel", self._weight(f"{label}/kernel", (d, heads, width)))
            setattr(self, f"{label}_bias", self._bias(f"{label}/bias", (heads, width)))
        self.output_kernel = self._weight("attention_output/kernel",
                                          (heads, self.value_dim, *out))
        self.output_bias = self._bias("attention_output/bias", out)

    def _weight(self, name, shape):
        return self.add_weight(name, shape, self.kernel_initializer,
                               regularizer=self.kernel_regularizer)

    def _bias(self, name, shape):
        if not self.use_bias:
            return None
        return self.add_weight(name, shape, self.bias_initializer,
                               regularizer=self.bias_regularizer)

    # ----- calling -----------------------------------------------------------------------
    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 training=False, use_causal_mask=False):
        if value is None and isinstance(query, (list, tuple)) and len(query) in (3, 4):
            # a functional model replays its node with the inputs packed as call() takes them
            query, value, key, *rest = query
            attention_mask = rest[0] if rest else attention_mask
        if value is None:
            raise self._error("expects query and value: mha(query, value), got no value.")
        options = {"return_attention_scores": arguments.boolean(
            return_attention_scores, "return_attention_scores", self),
            "use_causal_mask": arguments.boolean(use_causal_mask, "use_causal_mask", self)}
        inputs = [query, value, value if key is None else key]
        if attention_mask is not None:
            inputs.append(attention_mask)
        masks = {"query_mask": query_mask, "value_mask": value_mask, "key_mask": key_mask}
        if any(isinstance(x, SymbolicTensor) for x in inputs):
            if any(m is not None for m in masks.values()):
                raise self._error(helpers.SYMBOLIC_MASK)
            return helpers.symbolic_call(self, inputs, options, self._scores_shape)
        masks = {name: helpers.as_mask(m, self, name) for name, m in masks.items()}
        return super().__call__(inputs, training=training, **masks, **options)

    def _project(self, x, kernel, bias):
        # x (..., d), kernel (d, *rest), bias (*rest) -> (..., *rest)
        rest = kernel.shape[1:]
        flat_bias = None if bias is None else ops.reshape(bias, (-1,))
        y = ops.dense(x, ops.reshape(kernel, (kernel.shape[0], -1)), flat_bias)
        return ops.reshape(y, (*x.shape[:-1], *rest))

    def _keep(self, query, value, masks, attention_mask, use_causal_mask):
        """The (B, T, S) boolean of allowed positions (Keras's _compute_attention_mask), or
        None: the query mask (B, T, 1) & value and key masks (B, 1, S) & causal & explicit."""
        q_mask, v_mask, k_mask = masks
        keep = None
        for part in (None if q_mask is None else q_mask[..., :, None],
                     None if v_mask is None else v_mask[..., None, :],
                     None if k_mask is None else k_mask[..., None, :],
                     helpers.causal_mask(query.shape[1], value.shape[1]) if use_causal_mask
                     else None,
                     attention_mask):
            if part is not None:
                keep = part if keep is None else keep & part
        if keep is not None and query.ndim != 3 and attention_mask is None:
            raise self._error("masks from the inputs and use_causal_mask need inputs of rank 3 "
                              f"(batch, steps, features), got query {query.shape}; pass an "
                              "attention_mask instead.")
        return keep

    def call(self, inputs, mask=None, training=False, query_mask=None, value_mask=None,
             key_mask=None, return_attention_scores=False, use_causal_mask=False):
        query, value, key = inputs[:3]
        given = mask or [None] * len(inputs)
        masks = [own if own is not None else helpers.as_mask(carried, self, name)
                 for own, carried, name in zip((query_mask, value_mask, key_mask), given,
                                               ("query", "value", "key"))]
        explicit = (helpers.as_mask(inputs[3], self, "attention_mask") if len(inputs) == 4
                    else None)
        keep = self._keep(query, value, masks, explicit, use_causal_mask)
        q = self._project(query, self.query_kernel, self.query_bias)
        k = self._project(key, self.key_kernel, self.key_bias)
        v = self._project(value, self.value_kernel, self.value_bias)
        q = ops.mul(q, 1.0 / math.sqrt(self.key_dim))
        # (B, *other, H, *attention axes, C): the heads and the attention axes side by side
        rank, axes = query.ndim, self._axes
        others = [a for a in range(1, rank - 1) if a not in axes]
        perm = [0, *others, rank - 1, *axes, rank]
        q, k, v = (ops.transpose(t, perm) for t in (q, k, v))
        head_shape = q.shape[:len(others) + 2]
        q_steps, k_steps = q.shape[len(head_shape):-1], k.shape[len(head_shape):-1]

        def flat(t):  # -> (B * others, H, steps, C)
            return ops.reshape(t, (-1, self.num_heads, math.prod(t.shape[len(head_shape):-1]),
                                   t.shape[-1]))

        q, k, v = flat(q), flat(k), flat(v)
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2)))  # (B', H, Tq, Tk)
        keras_shape = (*head_shape, *q_steps, *k_steps)
        if keep is not None:
            keep = self._spread(keep, keras_shape, len(axes)).reshape(scores.shape)
            scores = ops.where(keep, scores, -1.0e9)  # Keras's Softmax(mask) rule
        weights = ops.softmax(scores, axis=-1)
        if keep is not None:
            weights = ops.where(keep, weights, 0.0)  # a fully masked row gives zeros
        dropped = weights
        if training and self.dropout > 0:
            dropped = ops.dropout(weights, self.dropout, training=True, rng=self._rng)
        combined = ops.reshape(ops.matmul(dropped, v), (*head_shape, *q_steps, self.value_dim))
        combined = ops.transpose(combined, list(np.argsort(perm)))  # (B, ..., H, value_dim)
        output = self._project_out(combined)
        if masks[0] is not None:
            output._keras_mask = masks[0]
        if return_attention_scores:
            return output, ops.reshape(weights, keras_shape)
        return output

    def _spread(self, keep, shape, n_axes):
        """Keras's mask broadcast: new axes before the last 2 * n_axes until ranks agree."""
        keep = np.asarray(keep, dtype=bool)
        while keep.ndim < len(shape):
            keep = np.expand_dims(keep, -2 * n_axes - 1)
        try:
            return np.broadcast_to(keep, shape)
        except ValueError:
            raise self._error(f"the attention mask (shape {keep.shape} after Keras's expansion) "
                              f"does not fit the attention scores {shape}.") from None

    def _project_out(self, x):
        # x (..., H, value_dim) -> (..., *output_shape)
        kernel, out = self.output_kernel, self.output_kernel.shape[2:]
        flat_bias = None if self.output_bias is None else ops.reshape(self.output_bias, (-1,))
        x = ops.reshape(x, (*x.shape[:-2], -1))
        y = ops.dense(x, ops.reshape(kernel, (-1, math.prod(out))), flat_bias)
        return ops.reshape(y, (*x.shape[:-1], *out))

    def compute_mask(self, inputs, mask=None):
        return None  # call puts the query's mask on the output itself

    def get_config(self):
        listed = (lambda t: None if t is None else list(t))
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": listed(self._output_shape),
                "attention_axes": listed(self.attention_axes),
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "seed": self.seed}
