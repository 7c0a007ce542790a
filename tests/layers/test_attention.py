"""Attention, AdditiveAttention and MultiHeadAttention against Keras 3 with Keras's weights
copied over: values with and without masks, causal masks, attention scores, weight layout,
a training step in a functional model, configs and saving."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from shenjing.errors import ArgumentError, ArgumentTypeError
from tests.keras_oracle import import_keras
from tests.layers.keras_models import compare_sgd_step, copy_weights

keras = import_keras()

Q_MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
V_MASK = np.array([[1, 1, 0, 0, 1, 1], [1, 1, 1, 1, 1, 0]], bool)


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _random_weights(theirs, ours, rng):
    """Random values (not the initial ones, e.g. a scale of exactly 1) in both layers."""
    weights = [_f32(rng, *w.shape) * 0.5 for w in theirs.get_weights()]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    assert ours.count_params() == theirs.count_params()


def _compare(expected, got, rtol=1e-5, atol=1e-5):
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        a = a.detach().cpu().numpy()
        assert b.shape == a.shape
        np.testing.assert_allclose(b.numpy(), a, rtol=rtol, atol=atol)


ATTENTION_CASES = [("Attention", {}), ("Attention", {"use_scale": True}),
                   ("Attention", {"score_mode": "concat"}),
                   ("Attention", {"score_mode": "concat", "use_scale": True}),
                   ("AdditiveAttention", {}), ("AdditiveAttention", {"use_scale": False})]


@pytest.mark.parametrize("with_key", [False, True])
@pytest.mark.parametrize("name, config", ATTENTION_CASES, ids=range(len(ATTENTION_CASES)))
def test_attention_matches_keras(name, config, with_key, rng):
    q, v, k = _f32(rng, 2, 4, 3), _f32(rng, 2, 6, 5), _f32(rng, 2, 6, 3)
    inputs = [q, v, k] if with_key else [q, k]
    theirs, ours = getattr(keras.layers, name)(**config), getattr(layers, name)(**config)
    theirs(inputs), ours(inputs)
    _random_weights(theirs, ours, rng)
    for mask in (None, [Q_MASK, V_MASK]):
        for causal in (False, True):
            options = {"mask": mask, "use_causal_mask": causal}
            _compare(theirs(inputs, **options), ours(inputs, **options))
            _compare(theirs(inputs, return_attention_scores=True, **options),
                     ours(inputs, return_attention_scores=True, **options))
    out = ours(inputs, mask=[Q_MASK, V_MASK])
    np.testing.assert_array_equal(out._keras_mask, Q_MASK)  # the query's mask carries on


MHA_CASES = [
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 6, 7), None, {}),
    ({"num_heads": 2, "key_dim": 3, "value_dim": 4, "use_bias": False, "output_shape": (2, 3)},
     (2, 4, 5), (2, 6, 7), (2, 6, 3), {}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 6, 7), None,
     {"return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 4, 7), None, {"use_causal_mask": True}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 4, 7), None,
     {"use_causal_mask": True, "return_attention_scores": True}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 6, 7), None,
     {"value_mask": V_MASK, "attention_mask": "random"}),
    ({"num_heads": 2, "key_dim": 3}, (2, 4, 5), (2, 6, 7), (2, 6, 4),
     {"value_mask": V_MASK, "key_mask": V_MASK[::-1], "return_attention_scores": True}),
    ({"num_heads": 3, "key_dim": 2}, (2, 3, 4, 5), (2, 3, 2, 5), None,
     {"return_attention_scores": True}),
    ({"num_heads": 3, "key_dim": 2, "attention_axes": -2}, (2, 3, 4, 5), (2, 3, 2, 5), None,
     {"return_attention_scores": True}),
    ({"num_heads": 3, "key_dim": 2, "attention_axes": (1, 3)}, (2, 3, 4, 2, 5), (2, 2, 4, 3, 5),
     None, {"return_attention_scores": True}),
]


@pytest.mark.parametrize("config, q_shape, v_shape, k_shape, options", MHA_CASES,
                         ids=range(len(MHA_CASES)))
def test_multi_head_attention_matches_keras(config, q_shape, v_shape, k_shape, options, rng):
    q, v = _f32(rng, *q_shape), _f32(rng, *v_shape)
    k = None if k_shape is None else _f32(rng, *k_shape)
    if options.get("attention_mask") == "random":
        options = {**options, "attention_mask": rng.random((2, q_shape[1], v_shape[1])) > 0.3}
        options["attention_mask"][..., 0] = True  # no fully masked row (see the next test)
    theirs = keras.layers.MultiHeadAttention(**config)
    ours = layers.MultiHeadAttention(**config)
    theirs(q, v, k), ours(q, v, k)
    _random_weights(theirs, ours, rng)
    _compare(theirs(q, v, k, **options), ours(q, v, k, **options))


def test_multi_head_attention_weight_layout():
    theirs = keras.layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=6, name="mha")
    ours = layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=6, name="mha")
    q, v = np.zeros((1, 2, 5), np.float32), np.zeros((1, 3, 7), np.float32)
    theirs(q, v), ours(q, v)
    assert [(w.name, w.shape) for w in ours.weights] == [
        (w.path, tuple(w.shape)) for w in theirs.weights]
    assert ours.count_params() == theirs.count_params() == (5 + 7 + 2) * 6 + 8 * 8 + 8 * 6 + 6


def test_padding_masks_flow_from_embedding_as_in_keras(rng):
    def build(lib):
        tokens = lib.layers.Input((5,), name="tokens")
        x = lib.layers.Embedding(9, 4, mask_zero=True, name="emb")(tokens)
        out, scores = lib.layers.MultiHeadAttention(2, 3, name="mha")(
            x, x, return_attention_scores=True)
        return lib.Model(tokens, [out, scores])

    ours, theirs = build(sj), build(keras)
    copy_weights(ours, theirs)
    tokens = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 0]])
    for a, b in zip(ours.predict(tokens, verbose=0), theirs.predict(tokens, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    scores = ours.predict(tokens, verbose=0)[1]
    assert np.all(scores[0, :, :, 3:] == 0) and np.all(scores[0, :, 3:] == 0)  # padding


def test_explicit_query_mask_is_honoured(rng):
    """Keras 3 ignores query_mask= in favour of the query's own mask; we use the argument,
    so it must equal carrying the mask on the query (the Keras way)."""
    keras_mha = keras.layers.MultiHeadAttention(2, 3)
    ours = layers.MultiHeadAttention(2, 3)
    q, v = _f32(rng, 2, 4, 5), _f32(rng, 2, 6, 5)
    keras_mha(q, v), ours(q, v)
    _random_weights(keras_mha, ours, rng)
    torch = pytest.importorskip("torch")
    tq = torch.tensor(q)
    keras.src.backend.set_keras_mask(tq, torch.tensor(Q_MASK))
    expected = keras_mha(tq, v, return_attention_scores=True)
    _compare(expected, ours(q, v, query_mask=Q_MASK, return_attention_scores=True))
    carried = sj.Tensor(q)
    carried._keras_mask = Q_MASK  # as a masking layer leaves it
    out = ours(carried, v)
    np.testing.assert_array_equal(out._keras_mask, Q_MASK)  # the query's mask carries on
    np.testing.assert_array_equal(out.numpy(), ours(q, v, query_mask=Q_MASK).numpy())


def _self_attention_model(lib, causal):
    x_in = lib.layers.Input((5, 4), name="x")
    h = lib.layers.MultiHeadAttention(2, 3, name="mha")(x_in, x_in, use_causal_mask=causal)
    h = lib.layers.GlobalAveragePooling1D(name="pool")(h)
    return lib.Model(x_in, lib.layers.Dense(2, name="out")(h))


@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_attention_trains_as_in_keras(causal, rng):
    ours, theirs = _self_attention_model(sj, causal), _self_attention_model(keras, causal)
    copy_weights(ours, theirs)
    compare_sgd_step(ours, theirs, keras, _f32(rng, 3, 5, 4), _f32(rng, 3, 2))


@pytest.mark.parametrize("name, config", [("Attention", {"use_scale": True}),
                                          ("Attention", {"score_mode": "concat"}),
                                          ("AdditiveAttention", {})])
def test_attention_trains_as_in_keras(name, config, rng):
    def build(lib):
        q_in, v_in = lib.layers.Input((4, 3), name="q"), lib.layers.Input((5, 3), name="v")
        h = getattr(lib.layers, name)(name="att", **config)([q_in, v_in])
        h = lib.layers.Flatten(name="flat")(h)
        return lib.Model([q_in, v_in], lib.layers.Dense(2, name="out")(h))

    ours, theirs = build(sj), build(keras)
    copy_weights(ours, theirs)
    weights = [w + 0.3 for w in ours.get_layer("att").get_weights()]  # scale away from 1
    ours.get_layer("att").set_weights(weights)
    theirs.get_layer("att").set_weights(weights)
    compare_sgd_step(ours, theirs, keras, [_f32(rng, 3, 4, 3), _f32(rng, 3, 5, 3)],
                     _f32(rng, 3, 2))


def test_dropout_only_in_training(rng):
    q, v = _f32(rng, 2, 4, 5), _f32(rng, 2, 6, 5)
    for layer in (layers.MultiHeadAttention(2, 3, dropout=0.5, seed=1),
                  layers.Attention(dropout=0.5, seed=1)):
        call = (lambda t, layer=layer: layer(q, v, training=t)) if isinstance(
            layer, layers.MultiHeadAttention) else (lambda t, layer=layer: layer([q, v],
                                                                                 training=t))
        inference = call(False).numpy()
        np.testing.assert_array_equal(call(False).numpy(), inference)  # no randomness
        assert not np.allclose(call(True).numpy(), inference)


@pytest.mark.parametrize("layer", [
    layers.Attention(use_scale=True, score_mode="concat", dropout=0.1, seed=3),
    layers.AdditiveAttention(use_scale=False),
    layers.MultiHeadAttention(2, 3, value_dim=4, output_shape=(2, 3), attention_axes=(1,),
                              use_bias=False, kernel_initializer="he_normal"),
])
def test_config_round_trip(layer):
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config


def test_models_with_attention_save_and_load(tmp_path, rng):
    q_in, v_in = layers.Input((4, 3)), layers.Input((5, 3))
    h = layers.MultiHeadAttention(2, 3)(q_in, v_in)
    h = layers.Attention(use_scale=True)([h, v_in])
    h = layers.AdditiveAttention()([h, v_in, v_in])
    model = sj.Model([q_in, v_in], h)
    x = [_f32(rng, 2, 4, 3), _f32(rng, 2, 5, 3)]
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    # the same weights and the same sequence of operations: the same floats
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("causal", [True, False])
def test_call_options_are_saved_with_the_graph(tmp_path, rng, causal):
    """use_causal_mask and return_attention_scores given in a graph call are kept by the
    saved config (models/node_config.py): the loaded model computes the same."""
    model = _self_attention_model(sj, causal=causal)
    x = _f32(rng, 2, *model.inputs[0].shape[1:])
    model.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    q = layers.Input((4, 3))
    out, scores = layers.Attention()([q, q], use_causal_mask=causal, return_attention_scores=True)
    both = sj.Model(q, [out, scores])
    both.save(tmp_path / "b.shenjing")
    again = sj.load_model(tmp_path / "b.shenjing")
    y = _f32(rng, 2, 4, 3)
    for got, expected in zip(again.predict(y, verbose=0), both.predict(y, verbose=0)):
        np.testing.assert_array_equal(got, expected)
    if causal:  # above the diagonal the scores are zero
        assert np.all(np.triu(again.predict(y, verbose=0)[1][0], 1) == 0)


def test_errors_name_the_layer(rng):
    with pytest.raises(ArgumentError, match=r"MultiHeadAttention 'm': num_heads"):
        layers.MultiHeadAttention(0, 3, name="m")
    with pytest.raises(ArgumentTypeError, match=r"Attention 'a': score_mode must be one of"):
        layers.Attention(score_mode=3, name="a")
    with pytest.raises(ArgumentError, match=r"Attention 'a2': expects a list \[query, value\]"):
        layers.Attention(name="a2")([_f32(rng, 2, 3, 4)])
    mha = layers.MultiHeadAttention(2, 3, name="m2")
    with pytest.raises(ArgumentError, match=r"'m2': value and key must match"):
        mha(_f32(rng, 2, 4, 5), _f32(rng, 2, 6, 5), _f32(rng, 2, 5, 5))
    with pytest.raises(ArgumentError, match=r"'m3': attention_axes \(3,\) must be distinct"):
        layers.MultiHeadAttention(2, 3, attention_axes=3, name="m3")(_f32(rng, 2, 4, 5),
                                                                      _f32(rng, 2, 4, 5))
    with pytest.raises(ArgumentError, match=r"'m4': masks from the inputs and use_causal_mask "
                                            r"need inputs of rank 3"):
        layers.MultiHeadAttention(2, 3, name="m4")(_f32(rng, 2, 3, 4, 5), _f32(rng, 2, 3, 4, 5),
                                                   use_causal_mask=True)
    x = layers.Input((4, 5))
    with pytest.raises(ArgumentError, match=r"'m5': masks cannot be passed to a call on "
                                            r"symbolic tensors"):
        layers.MultiHeadAttention(2, 3, name="m5")(x, x, query_mask=Q_MASK)
