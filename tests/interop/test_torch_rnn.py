"""Our SimpleRNN / LSTM / GRU / Bidirectional weights <-> torch.nn.RNN / LSTM / GRU state dicts:
outputs, final states and gradients agree with torch after converting either way."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

import shenjing as sj
from shenjing.interop import (
    from_torch_state_dict,
    to_torch_state_dict,
    torch_state_dict_to_weights,
)
from shenjing.layers import GRU, LSTM, Bidirectional, MultiHeadAttention, SimpleRNN

torch = pytest.importorskip("torch")

N, D, U = 2, 3, 4  # batch, input features, units
TOL = {"rtol": 1e-10, "atol": 1e-12}
# kind -> (our class, its settings, torch class, its settings)
KINDS = {
    "lstm": (LSTM, {}, torch.nn.LSTM, {}),
    "gru": (GRU, {}, torch.nn.GRU, {}),
    "rnn_tanh": (SimpleRNN, {"activation": "tanh"}, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (SimpleRNN, {"activation": "relu"}, torch.nn.RNN, {"nonlinearity": "relu"}),
}
# kind, use_bias, bidirectional, num_layers
CASES = list(itertools.product(KINDS, [True, False], [False, True], [1, 2]))
CASE_IDS = [f"{k}-{'bias' if b else 'nobias'}-{'bi' if bi else 'uni'}-l{n}"
            for k, b, bi, n in CASES]


def make_ours(kind, use_bias=True, bidirectional=False, num_layers=1, rng=None, dtype="float64"):
    """A stack of built layers returning sequences and states; random weights when rng."""
    cls, settings = KINDS[kind][:2]
    layers, d = [], D
    for _ in range(num_layers):
        layer = cls(U, use_bias=use_bias, return_sequences=True, return_state=True, dtype=dtype,
                    **settings)
        if bidirectional:
            layer = Bidirectional(layer, dtype=dtype)
        layer.build_for((None, None, d))
        if rng is not None:
            layer.set_weights([0.5 * rng.standard_normal(w.shape) for w in layer.weights])
        layers.append(layer)
        d = 2 * U if bidirectional else U
    return layers


def make_torch(kind, use_bias=True, bidirectional=False, num_layers=1, rng=None):
    cls, settings = KINDS[kind][2:]
    module = cls(D, U, num_layers=num_layers, bias=use_bias, batch_first=True,
                 bidirectional=bidirectional, dtype=torch.float64, **settings)
    if rng is not None:  # bias_hh random too, so summing the two biases matters
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.tensor(0.5 * rng.standard_normal(tuple(p.shape))))
    return module


def run_ours(layers, x):
    """Output sequence, then final h (and c) per layer and direction in torch's h_n order."""
    y, hs, cs = x, [], []
    for layer in layers:
        y, *states = layer(y)
        per_direction = len(states) // (2 if isinstance(layer, Bidirectional) else 1)
        for j in range(0, len(states), per_direction):
            hs.append(states[j])
            cs.extend(states[j + 1:j + per_direction])
    return [y, *hs, *cs]


def run_torch(module, x):
    y, state = module(x)
    h, c = state if isinstance(state, tuple) else (state, [])
    return [y, *h, *c]


def torch_state(layers):
    state = {}
    for k, layer in enumerate(layers):
        state.update(to_torch_state_dict(layer, layer_index=k))
    return state


def load_torch(module, state):
    module.load_state_dict({k: torch.tensor(v) for k, v in state.items()})  # strict: same keys


def assert_outputs_match(ours, theirs):
    assert len(ours) == len(theirs)
    for i, (mine, ref) in enumerate(zip(ours, theirs)):
        ref = ref.detach().numpy()
        assert mine.shape == ref.shape, f"output {i}: {mine.shape} vs torch {ref.shape}"
        np.testing.assert_allclose(mine.numpy(), ref, **TOL, err_msg=f"output {i}")


@pytest.mark.parametrize("steps", [1, 5, 50])
@pytest.mark.parametrize("kind,use_bias,bidirectional,num_layers", CASES, ids=CASE_IDS)
def test_ours_to_torch(kind, use_bias, bidirectional, num_layers, steps, rng):
    layers = make_ours(kind, use_bias, bidirectional, num_layers, rng)
    module = make_torch(kind, use_bias, bidirectional, num_layers)
    load_torch(module, torch_state(layers))
    x = rng.standard_normal((N, steps, D))
    assert_outputs_match(run_ours(layers, x), run_torch(module, torch.tensor(x)))


@pytest.mark.parametrize("steps", [1, 5, 50])
@pytest.mark.parametrize("kind,use_bias,bidirectional,num_layers", CASES, ids=CASE_IDS)
def test_torch_to_ours_outputs_and_gradients(kind, use_bias, bidirectional, num_layers, steps,
                                             rng):
    module = make_torch(kind, use_bias, bidirectional, num_layers, rng)
    layers = make_ours(kind, use_bias, bidirectional, num_layers)
    for k, layer in enumerate(layers):
        from_torch_state_dict(layer, module.state_dict(), layer_index=k)
    x = rng.standard_normal((N, steps, D))
    x_ours, x_torch = sj.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = run_ours(layers, x_ours), run_torch(module, x_torch)
    assert_outputs_match(ours, theirs)

    upstream = [rng.standard_normal(o.shape) for o in ours]  # one random weight per output
    sum((o * g).sum() for o, g in zip(ours, upstream)).backward()
    sum((o * torch.tensor(g)).sum() for o, g in zip(theirs, upstream)).backward()
    np.testing.assert_allclose(x_ours.grad, x_torch.grad.numpy(), **TOL, err_msg="input")
    grads = {name: p.grad.numpy().copy() for name, p in module.named_parameters()}
    if use_bias and kind != "gru":
        # bias_ih and bias_hh enter as a sum, so both get our bias's gradient; keep it once
        for name in [n for n in grads if n.startswith("bias_hh")]:
            ih = name.replace("bias_hh", "bias_ih")
            np.testing.assert_allclose(grads[name], grads[ih], rtol=1e-12, atol=1e-14)
            grads[name] = np.zeros_like(grads[name])
    for k, layer in enumerate(layers):
        expected = torch_state_dict_to_weights(layer, grads, layer_index=k)
        assert len(expected) == len(layer.weights)
        for w, e in zip(layer.weights, expected):
            np.testing.assert_allclose(w.grad, e, **TOL, err_msg=w.name)


@pytest.mark.parametrize("kind,use_bias,bidirectional", [c[:3] for c in CASES if c[3] == 1])
def test_round_trip_through_torch_is_exact(kind, use_bias, bidirectional, rng):
    (layer,) = make_ours(kind, use_bias, bidirectional, rng=rng)
    state = to_torch_state_dict(layer)
    for value, weight in itertools.product(state.values(), layer.weights):
        assert not np.shares_memory(value, weight.data)  # new arrays, not views of weights
    module = make_torch(kind, use_bias, bidirectional)
    load_torch(module, state)
    (back,) = make_ours(kind, use_bias, bidirectional)
    from_torch_state_dict(back, module.state_dict())
    for ours, theirs in zip(layer.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_gru_torch_round_trip_is_exact_and_gates_reorder(rng):
    module = make_torch("gru", rng=rng)
    (layer,) = make_ours("gru")
    from_torch_state_dict(layer, module.state_dict())
    torch_w = module.weight_ih_l0.detach().numpy()
    # torch rows r, z, n -> our columns z, r, h
    np.testing.assert_array_equal(layer.kernel.data[:, :U], torch_w[U:2 * U].T)
    np.testing.assert_array_equal(layer.kernel.data[:, U:2 * U], torch_w[:U].T)
    np.testing.assert_array_equal(layer.bias.data[1, 2 * U:], module.bias_hh_l0.detach().numpy()[2 * U:])
    for name, value in to_torch_state_dict(layer).items():
        np.testing.assert_array_equal(value, module.state_dict()[name].numpy(), err_msg=name)


def test_lstm_biases_are_summed_and_split(rng):
    module = make_torch("lstm", rng=rng)
    (layer,) = make_ours("lstm")
    from_torch_state_dict(layer, module.state_dict())
    expected = (module.bias_ih_l0 + module.bias_hh_l0).detach().numpy()
    np.testing.assert_allclose(layer.bias.data, expected, rtol=1e-15)
    state = to_torch_state_dict(layer)
    np.testing.assert_array_equal(state["bias_ih_l0"], expected)
    np.testing.assert_array_equal(state["bias_hh_l0"], np.zeros(4 * U))


def test_dtypes_and_array_values(rng):
    (layer32,) = make_ours("lstm", rng=rng, dtype="float32")
    state = to_torch_state_dict(layer32)
    assert {v.dtype for v in state.values()} == {np.dtype("float32")}
    module = make_torch("lstm", rng=rng).float()
    (layer64,) = make_ours("lstm")
    from_torch_state_dict(layer64, module.state_dict())  # float32 tensors into float64
    np.testing.assert_array_equal(layer64.kernel.data, module.weight_ih_l0.detach().numpy().T)
    assert layer64.kernel.dtype == np.float64
    arrays = {k: v.detach().numpy().astype(np.float64) for k, v in module.state_dict().items()}
    (from_arrays,) = make_ours("lstm")
    from_torch_state_dict(from_arrays, arrays)  # plain ndarrays work the same
    for a, b in zip(layer64.get_weights(), from_arrays.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_core_does_not_import_torch():
    code = ("import sys, shenjing.interop.torch_rnn; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----- errors ------------------------------------------------------------------------------
def lstm_state(**settings):
    return make_torch("lstm", **settings).state_dict()


def test_error_unbuilt_and_not_recurrent():
    with pytest.raises(ValueError, match=r"LSTM 'my_lstm' is not built"):
        to_torch_state_dict(LSTM(U, name="my_lstm"))
    with pytest.raises(ValueError, match=r"LSTM 'my_lstm_2' is not built"):
        from_torch_state_dict(LSTM(U, name="my_lstm_2"), lstm_state())
    # Dense converts now (tests/interop/test_torch_layers.py); a layer without a torch
    # counterpart is still refused by type
    attention = MultiHeadAttention(2, U, name="mha")
    with pytest.raises(TypeError, match=r"MultiHeadAttention 'mha' has no PyTorch state dict "
                                        r"conversion"):
        to_torch_state_dict(attention)


def test_error_keys():
    (layer,) = make_ours("lstm")
    state = lstm_state()
    with pytest.raises(ValueError, match=r"missing key 'weight_hh_l0' for LSTM '.*'"):
        from_torch_state_dict(layer, {k: v for k, v in state.items() if k != "weight_hh_l0"})
    prefixed = {f"rnn.{k}": v for k, v in state.items()}
    with pytest.raises(ValueError, match=r"unexpected key 'rnn.weight_ih_l0'.*strip any module"):
        from_torch_state_dict(layer, prefixed)
    with pytest.raises(ValueError, match=r"no keys for layer_index=1 \(suffix '_l1'\)"):
        from_torch_state_dict(layer, state, layer_index=1)
    with pytest.raises(ValueError, match=r"layer_index must be an integer >= 0, got -1"):
        to_torch_state_dict(layer, layer_index=-1)
    with pytest.raises(TypeError, match=r"expected a state dict \(module.state_dict\(\)\), "
                                        r"got LSTM"):
        torch_state_dict_to_weights(layer, torch.nn.LSTM(D, U))
    with pytest.raises(ValueError, match=r"proj_size > 0"):
        from_torch_state_dict(layer, torch.nn.LSTM(D, U, proj_size=2).state_dict())


def test_error_shapes():
    (layer,) = make_ours("lstm")
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(20, 3\), expected \(16, 3\) "
                                         r"for LSTM '.*' \(4 gate blocks of units=4"):
        from_torch_state_dict(layer, torch.nn.LSTM(D, U + 1).state_dict())
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(12, 3\), expected \(16, 3\)"):
        from_torch_state_dict(layer, torch.nn.GRU(D, U).state_dict())
    with pytest.raises(ValueError, match=r"weight_ih_l0 has shape \(16, 5\), expected \(16, 3\)"):
        from_torch_state_dict(layer, torch.nn.LSTM(D + 2, U).state_dict())


def test_error_bias_mismatch():
    (with_bias,) = make_ours("rnn_tanh")
    (without,) = make_ours("rnn_tanh", use_bias=False)
    with pytest.raises(ValueError, match=r"missing key 'bias_ih_l0'; SimpleRNN '.*' has "
                                         r"use_bias=True, so the torch module needs bias=True"):
        from_torch_state_dict(with_bias, make_torch("rnn_tanh", use_bias=False).state_dict())
    with pytest.raises(ValueError, match=r"SimpleRNN '.*' has use_bias=False but the state dict "
                                         r"has bias_ih_l0"):
        from_torch_state_dict(without, make_torch("rnn_tanh").state_dict())


def test_error_direction_mismatch():
    (plain,) = make_ours("gru")
    (both,) = make_ours("gru", bidirectional=True)
    with pytest.raises(ValueError, match=r"bidirectional.*load it into a Bidirectional layer"):
        from_torch_state_dict(plain, make_torch("gru", bidirectional=True).state_dict())
    with pytest.raises(ValueError, match=r"Bidirectional '.*' needs the keys of a torch module "
                                         r"with bidirectional=True \('weight_ih_l0_reverse'"):
        from_torch_state_dict(both, make_torch("gru").state_dict())
    state = make_torch("gru", bidirectional=True).state_dict()
    del state["weight_hh_l0_reverse"]
    with pytest.raises(ValueError, match=r"missing key 'weight_hh_l0_reverse' for GRU 'backward_"):
        from_torch_state_dict(both, state)
    backwards = GRU(U, go_backwards=True)
    backwards.build_for((None, None, D))
    with pytest.raises(ValueError, match=r"go_backwards=True; a one-way torch module"):
        to_torch_state_dict(backwards)
    odd = Bidirectional(GRU(U), backward_layer=GRU(U + 1, go_backwards=True))
    odd.build_for((None, None, D))
    with pytest.raises(ValueError, match=r"same type, units, use_bias"):
        to_torch_state_dict(odd)


def test_error_reset_before_gru():
    layer = GRU(U, reset_after=False, name="gru_before")
    layer.build_for((None, None, D))
    message = r"GRU 'gru_before' has reset_after=False, which torch.nn.GRU cannot express"
    with pytest.raises(ValueError, match=message):
        to_torch_state_dict(layer)
    with pytest.raises(ValueError, match=message):
        from_torch_state_dict(layer, torch.nn.GRU(D, U).state_dict())
    with pytest.raises(ValueError, match=message):
        to_torch_state_dict(Bidirectional(layer))


@pytest.mark.parametrize("layer,message", [
    (SimpleRNN(U, activation="sigmoid"),
     r"SimpleRNN '.*' has activation 'sigmoid'; torch.nn.RNN supports only 'tanh' or 'relu'"),
    (SimpleRNN(U, activation=None), r"has activation 'linear'"),
    (LSTM(U, recurrent_activation="hard_sigmoid"),
     (r"LSTM '.*' has activation 'tanh' and recurrent_activation 'hard_sigmoid'; "
      r"torch.nn.LSTM computes only 'tanh' and 'sigmoid'")),
    (GRU(U, activation="relu"), r"GRU '.*' has activation 'relu'.*torch.nn.GRU computes only"),
])
def test_error_unsupported_activation(layer, message):
    layer.build_for((None, None, D))
    with pytest.raises(ValueError, match=message):
        to_torch_state_dict(layer)
    with pytest.raises(ValueError, match=message):
        from_torch_state_dict(layer, {})
