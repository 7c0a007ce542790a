"""Encoder-decoder models with symbolic initial states, written as Keras's guides write them
("Working with RNNs" and keras.io's character-level sequence-to-sequence example), against
Keras 3 on the torch backend with the same weights."""

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers
from tests.keras_oracle import import_keras

keras = import_keras()

ENCODER_TOKENS, DECODER_TOKENS, LATENT = 5, 4, 6


def _char_seq2seq(lib):
    """The training model of keras.io's lstm_seq2seq, as written there (sizes shrunk)."""
    encoder_inputs = lib.Input(shape=(None, ENCODER_TOKENS))
    encoder = lib.layers.LSTM(LATENT, return_state=True)
    _, state_h, state_c = encoder(encoder_inputs)
    encoder_states = [state_h, state_c]
    decoder_inputs = lib.Input(shape=(None, DECODER_TOKENS))
    decoder_lstm = lib.layers.LSTM(LATENT, return_sequences=True, return_state=True)
    decoder_outputs, _, _ = decoder_lstm(decoder_inputs, initial_state=encoder_states)
    decoder_dense = lib.layers.Dense(DECODER_TOKENS, activation="softmax")
    decoder_outputs = decoder_dense(decoder_outputs)
    return lib.Model([encoder_inputs, decoder_inputs], decoder_outputs)


def _inference_models(lib, model):
    """The example's sampling models, rebuilt from the (loaded) training model's layers."""
    encoder_inputs = model.input[0]
    _, state_h_enc, state_c_enc = model.layers[2].output
    encoder_model = lib.Model(encoder_inputs, [state_h_enc, state_c_enc])
    decoder_inputs = model.input[1]
    decoder_states_inputs = [lib.Input(shape=(LATENT,)), lib.Input(shape=(LATENT,))]
    decoder_lstm = model.layers[3]
    decoder_outputs, state_h_dec, state_c_dec = decoder_lstm(
        decoder_inputs, initial_state=decoder_states_inputs)
    decoder_outputs = model.layers[4](decoder_outputs)
    decoder_model = lib.Model([decoder_inputs] + decoder_states_inputs,
                              [decoder_outputs, state_h_dec, state_c_dec])
    return encoder_model, decoder_model


def _one_hot(rng, shape, tokens):
    return np.eye(tokens, dtype=np.float32)[rng.integers(0, tokens, shape)]


@pytest.fixture
def pair(rng):
    theirs, ours = _char_seq2seq(keras), _char_seq2seq(sj)
    theirs.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
                        for w in theirs.get_weights()])  # biases not all zero
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _data(rng, batch=3):
    x_enc = _one_hot(rng, (batch, 7), ENCODER_TOKENS)
    x_dec = _one_hot(rng, (batch, 5), DECODER_TOKENS)
    y = _one_hot(rng, (batch, 5), DECODER_TOKENS)
    return x_enc, x_dec, y


def test_training_model_has_the_encoder_and_matches_keras(pair, rng):
    ours, theirs = pair
    assert [type(layer).__name__ for layer in ours.layers] == [
        "InputLayer", "InputLayer", "LSTM", "LSTM", "Dense"]
    assert ours.count_params() == theirs.count_params() == 4 * (5 + 6 + 1) * 6 * 1 + 4 * (
        4 + 6 + 1) * 6 + (6 + 1) * 4
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    x_enc, x_dec, _ = _data(rng)
    expected = theirs.predict([x_enc, x_dec], verbose=0)
    got = ours.predict([x_enc, x_dec], verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the encoder's states matter: other encoder inputs give other predictions
    other = ours.predict([x_enc[::-1], x_dec], verbose=0)
    assert np.abs(other - got).max() > 1e-3


def test_one_sgd_step_trains_encoder_and_decoder_as_keras(pair, rng):
    ours, theirs = pair
    x_enc, x_dec, y = _data(rng)
    before = ours.get_weights()
    theirs.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    ours.compile(optimizer=sj.optimizers.SGD(0.5), loss="categorical_crossentropy")
    loss_theirs = float(theirs.train_on_batch([x_enc, x_dec], y))
    loss_ours = float(np.asarray(ours.train_on_batch([x_enc, x_dec], y)).ravel()[0])
    np.testing.assert_allclose(loss_ours, loss_theirs, rtol=1e-5)
    for got, expected, old in zip(ours.get_weights(), theirs.get_weights(), before):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    encoder_kernel = ours.layers[2].get_weights()[0]
    assert np.abs(encoder_kernel - before[0]).max() > 1e-4  # gradients reached the encoder


def test_inference_models_from_a_loaded_model_match_keras(pair, rng, tmp_path):
    ours, theirs = pair
    ours.save(tmp_path / "s2s.shenjing")
    loaded = sj.load_model(tmp_path / "s2s.shenjing")
    encoder_ours, decoder_ours = _inference_models(sj, loaded)
    encoder_theirs, decoder_theirs = _inference_models(keras, theirs)
    assert encoder_ours.count_params() == encoder_theirs.count_params()
    assert decoder_ours.count_params() == decoder_theirs.count_params()
    x_enc, _, _ = _data(rng)
    states_ours = encoder_ours.predict(x_enc, verbose=0)
    states_theirs = encoder_theirs.predict(x_enc, verbose=0)
    for got, expected in zip(states_ours, states_theirs):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # three steps of the example's greedy decoding loop, fed from each library's own outputs
    target = np.zeros((len(x_enc), 1, DECODER_TOKENS), np.float32)
    target[:, 0, 0] = 1.0
    for _ in range(3):
        out_ours = decoder_ours.predict([target] + list(states_ours), verbose=0)
        out_theirs = decoder_theirs.predict([target] + list(states_theirs), verbose=0)
        for got, expected in zip(out_ours, out_theirs):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        states_ours, states_theirs = out_ours[1:], out_theirs[1:]
        target = np.eye(DECODER_TOKENS, dtype=np.float32)[out_theirs[0].argmax(-1)]


def _guide_encoder_decoder(lib, rng_seed=None):
    """"Working with RNNs": Embedding encoder, its [h, c] as the decoder's initial_state."""
    encoder_input = lib.layers.Input(shape=(None,))
    encoder_embedded = lib.layers.Embedding(input_dim=30, output_dim=8)(encoder_input)
    output, state_h, state_c = lib.layers.LSTM(8, return_state=True, name="encoder")(
        encoder_embedded)
    decoder_input = lib.layers.Input(shape=(None,))
    decoder_embedded = lib.layers.Embedding(input_dim=40, output_dim=8)(decoder_input)
    decoder_output = lib.layers.LSTM(8, name="decoder")(decoder_embedded,
                                                        initial_state=[state_h, state_c])
    output = lib.layers.Dense(10)(decoder_output)
    return lib.Model([encoder_input, decoder_input], output)


def test_working_with_rnns_guide_encoder_decoder(rng, tmp_path):
    theirs, ours = _guide_encoder_decoder(keras), _guide_encoder_decoder(sj)
    assert ours.count_params() == theirs.count_params() == 30 * 8 + 40 * 8 + 2 * 4 * 17 * 8 + 90
    ours.set_weights(theirs.get_weights())
    tokens = [rng.integers(0, 30, (4, 6)), rng.integers(0, 40, (4, 3))]
    expected = theirs.predict(tokens, verbose=0)
    np.testing.assert_allclose(ours.predict(tokens, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ours.summary(print_fn=lambda line: None)
    ours.save(tmp_path / "m.shenjing")
    loaded = sj.load_model(tmp_path / "m.shenjing")
    assert loaded.count_params() == ours.count_params()
    np.testing.assert_allclose(loaded.predict(tokens, verbose=0), expected, rtol=1e-5,
                               atol=1e-6)


def test_list_form_of_initial_state_is_the_keyword_form(rng):
    """tf.keras's LSTM([x, h, c]) (Keras 3 refuses the list) means initial_state=[h, c]."""
    x, h, c = layers.Input((None, 3)), layers.Input((4,)), layers.Input((4,))
    lstm = layers.LSTM(4)
    model_list = sj.Model([x, h, c], lstm([x, h, c]))
    model_kw = sj.Model([x, h, c], lstm(x, initial_state=[h, c]))
    data = [rng.standard_normal(s).astype(np.float32) for s in ((2, 5, 3), (2, 4), (2, 4))]
    np.testing.assert_array_equal(model_list.predict(data, verbose=0),  # same ops, same order
                                  model_kw.predict(data, verbose=0))
    eager = lstm(data).numpy()
    np.testing.assert_array_equal(eager, lstm(data[0], initial_state=data[1:]).numpy())
