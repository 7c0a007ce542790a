import os

import numpy as np
import pytest

import shenjing as sj
from shenjing.ops import recurrent as rnn
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")
# The bound, 1e-10 relative, holds in float64 up to T = 100; the atol covers entries that
# are tiny sums of cancelling terms.
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def _gru_columns(u):
    """Keras z, r, h blocks -> torch r, z, n blocks."""
    return np.concatenate([np.arange(u, 2 * u), np.arange(u), np.arange(2 * u, 3 * u)])


def _torch_module(kind, d, u, nonlinearity="tanh"):
    if kind == "simple_rnn":
        return torch.nn.RNN(d, u, batch_first=True, nonlinearity=nonlinearity).double()
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](d, u, batch_first=True).double()


def _via_module(kind, u, nonlinearity="tanh", flip=False):
    """torch_fn(x, kernel, recurrent, bias, *states) running torch.nn.RNN / LSTM / GRU with our
    weights mapped in (torch weights are (gates * u, d), GRU blocks r, z, n)."""

    def fn(x, k, rk, b, *states):
        cols = _gru_columns(u) if kind == "gru" else np.arange(k.shape[1])
        bias_ih, bias_hh = (b[0], b[1]) if kind == "gru" else (b, torch.zeros_like(b))
        params = {"weight_ih_l0": k[:, cols].T, "weight_hh_l0": rk[:, cols].T,
                  "bias_ih_l0": bias_ih[cols], "bias_hh_l0": bias_hh[cols]}
        module = _torch_module(kind, x.shape[2], u, nonlinearity)
        hx = tuple(s[None] for s in states)
        hx = hx if kind == "lstm" else hx[0]
        ys, last = torch.func.functional_call(module, params, (x.flip(1) if flip else x, hx))
        last = last if kind == "lstm" else (last,)
        return (ys,) + tuple(s[0] for s in last)

    return fn


_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
        "linear": lambda z: z,
        # F.hardsigmoid's float64 backward uses a float32 1/6, so it is written out here
        "hard_sigmoid": lambda z: torch.clamp(z / 6 + 0.5, 0, 1)}


def _reference(kind, x, k, rk, b=None, states=(), mask=None, go_backwards=False,
               activation="tanh", recurrent_activation="sigmoid", reset_after=True,
               zero_output_for_mask=False, kept=None):
    """Step-by-step torch loop with Keras 3's formulas and masking (backend.rnn): a masked step
    keeps the state; its output repeats the previous output (zeros at first), or is zero.

    kept: a list that receives each step's state h_t (retain_grad). The output then reads the
    state itself (h_t times "a real step was seen"), the same values as Keras's repeat of the
    last output, so that dL/dh_t counts the masked steps' outputs as our op does."""
    N, T, _ = x.shape
    u = rk.shape[0]
    act, sig = _ACT[activation], _ACT[recurrent_activation]
    h = states[0] if states else torch.zeros(N, u, dtype=x.dtype)
    c = states[1] if len(states) > 1 else torch.zeros(N, u, dtype=x.dtype)
    prev, outputs = torch.zeros(N, u, dtype=x.dtype), []
    seen = torch.zeros(N, 1, dtype=torch.bool)
    b_in = 0 if b is None else (b[0] if b.ndim == 2 else b)
    b_rec = 0 if b is None or b.ndim == 1 else b[1]
    for t in range(T - 1, -1, -1) if go_backwards else range(T):
        xw = x[:, t] @ k + b_in
        if kind == "simple_rnn":
            h_new, c_new = act(xw + h @ rk), c
        elif kind == "lstm":
            zi, zf, zc, zo = (xw + h @ rk).split(u, dim=1)
            c_new = sig(zf) * c + sig(zi) * act(zc)
            h_new = sig(zo) * act(c_new)
        else:
            xz, xr, xh = xw.split(u, dim=1)
            if reset_after:
                rz, rr, rh = (h @ rk + b_rec).split(u, dim=1)
                z, r = sig(xz + rz), sig(xr + rr)
                hh = act(xh + r * rh)
            else:
                z = sig(xz + h @ rk[:, :u])
                r = sig(xr + h @ rk[:, u:2 * u])
                hh = act(xh + (r * h) @ rk[:, 2 * u:])
            h_new, c_new = z * h + (1 - z) * hh, c
        out = h_new
        if mask is not None:
            m = torch.tensor(mask[:, t, None])
            h_new, c_new = torch.where(m, h_new, h), torch.where(m, c_new, c)
            out = torch.where(m, h_new, torch.zeros_like(h) if zero_output_for_mask else prev)
            seen = m if zero_output_for_mask else m | seen
            if kept is not None:
                out = h_new * seen
        h, c, prev = h_new, c_new, out
        outputs.append(out)
        if kept is not None:
            h.retain_grad()
            kept.append(h)
    ys = torch.stack(outputs, dim=1)
    return (ys, h, c) if kind == "lstm" else (ys, h)


GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _weights(rng, kind, d, u, reset_after=True, scale=0.5):
    g = GATES[kind]
    k = rng.standard_normal((d, g * u)) * scale
    rk = rng.standard_normal((u, g * u)) * scale
    b = rng.standard_normal((2, g * u) if kind == "gru" and reset_after else (g * u,)) * scale
    return k, rk, b


def _op(kind, **settings):
    fn = {"simple_rnn": rnn.simple_rnn, "lstm": rnn.lstm, "gru": rnn.gru}[kind]
    return lambda x, k, rk, b=None, *states: fn(x, k, rk, b, *states, **settings)


# ----- against torch.nn.RNN / LSTM / GRU ---------------------------------------------------------
CONFIGS = [(1, 1, 3, 2), (2, 2, 1, 3), (4, 7, 5, 6), (3, 100, 4, 5), (5, 13, 8, 16)]


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("N, T, d, u", CONFIGS)
def test_matches_torch_module(rng, kind, N, T, d, u):
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, kind, d, u)
    states = [rng.standard_normal((N, u)) for _ in range(2 if kind == "lstm" else 1)]
    check_against_torch(_op(kind), _via_module(kind, u), x, k, rk, b, *states, **TIGHT)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_zero_initial_state_and_no_bias(rng, kind):
    x = rng.standard_normal((3, 6, 4))
    k, rk, b = _weights(rng, kind, 4, 5)
    zeros = [torch.zeros(3, 5, dtype=torch.float64)] * (2 if kind == "lstm" else 1)
    ref = lambda x, k, rk: _via_module(kind, 5)(
        x, k, rk, torch.zeros(b.shape, dtype=torch.float64), *zeros)
    check_against_torch(_op(kind), ref, x, k, rk, **TIGHT)


def test_simple_rnn_relu_matches_torch(rng):
    x = rng.standard_normal((3, 9, 4))
    k, rk, b = _weights(rng, "simple_rnn", 4, 5)
    h0 = rng.standard_normal((3, 5))
    check_against_torch(_op("simple_rnn", activation="relu"),
                        _via_module("simple_rnn", 5, "relu"), x, k, rk, b, h0, **TIGHT)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_go_backwards_matches_torch_on_flipped_sequence(rng, kind):
    # Keras returns the outputs in processing order: torch on x reversed, not flipped back
    x = rng.standard_normal((3, 8, 4))
    k, rk, b = _weights(rng, kind, 4, 5)
    states = [rng.standard_normal((3, 5)) for _ in range(2 if kind == "lstm" else 1)]
    check_against_torch(_op(kind, go_backwards=True), _via_module(kind, 5, flip=True),
                        x, k, rk, b, *states, **TIGHT)


# ----- against a step-by-step torch loop (settings torch.nn lacks) -------------------------------
STEP_CASES = [
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": False, "go_backwards": True}),
    ("simple_rnn", {"activation": "sigmoid"}),
    ("simple_rnn", {"activation": "linear"}),
    ("simple_rnn", {"activation": "hard_sigmoid"}),
    ("lstm", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("lstm", {"activation": "sigmoid", "recurrent_activation": "tanh"}),
    ("lstm", {"activation": "linear", "recurrent_activation": "sigmoid"}),
    ("gru", {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    ("gru", {"activation": "sigmoid", "recurrent_activation": "sigmoid"}),
    ("gru", {"activation": "sigmoid", "reset_after": False}),
]


@pytest.mark.parametrize("kind, settings", STEP_CASES)
@pytest.mark.parametrize("T", [1, 7, 40])
def test_matches_step_reference(rng, kind, settings, T):
    x = rng.standard_normal((3, T, 4))
    k, rk, b = _weights(rng, kind, 4, 5, settings.get("reset_after", True))
    states = [rng.standard_normal((3, 5)) for _ in range(2 if kind == "lstm" else 1)]
    ref = lambda x, k, rk, b, *s: _reference(kind, x, k, rk, b, s, **settings)
    check_against_torch(_op(kind, **settings), ref, x, k, rk, b, *states, **TIGHT)


def _padded_mask(rng, N, T):
    """Rows right-padded, left-padded, full, and one real step in the middle."""
    mask = np.ones((N, T), bool)
    for n in range(N):
        length = int(rng.integers(1, T + 1))
        if n % 4 == 0:
            mask[n, length:] = False
        elif n % 4 == 1:
            mask[n, : T - length] = False
        elif n % 4 == 3:
            mask[n] = False
            mask[n, T // 2] = True
    return mask


MASK_CASES = [
    ("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
    ("lstm", {"go_backwards": True}), ("gru", {"go_backwards": True}),
    ("simple_rnn", {"go_backwards": True, "zero_output_for_mask": True}),
    ("lstm", {"zero_output_for_mask": True}),
]


@pytest.mark.parametrize("kind, settings", MASK_CASES)
def test_masked_matches_step_reference(rng, kind, settings):
    N, T = 8, 9
    x = rng.standard_normal((N, T, 3))
    mask = _padded_mask(rng, N, T)
    mask[2] = False  # a fully masked row keeps its initial state
    k, rk, b = _weights(rng, kind, 3, 4, settings.get("reset_after", True))
    states = [rng.standard_normal((N, 4)) for _ in range(2 if kind == "lstm" else 1)]
    ref = lambda x, k, rk, b, *s: _reference(
        kind, x, k, rk, b, s, mask=mask, **settings)
    check_against_torch(_op(kind, mask=mask, **settings), ref, x, k, rk, b, *states, **TIGHT)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_batch_equals_each_sequence_alone(rng, kind, go_backwards):
    N, T, d, u = 8, 10, 3, 4
    x = rng.standard_normal((N, T, d))
    mask = _padded_mask(rng, N, T)
    mask[3] = True
    k, rk, b = _weights(rng, kind, d, u)
    fn = _op(kind, go_backwards=go_backwards)
    xt = sj.Tensor(x, requires_grad=True)
    ys, last, *_ = _op(kind, mask=mask, go_backwards=go_backwards)(xt, k, rk, b)
    w = rng.standard_normal((N, u))
    (last * w).sum().backward()
    for n in range(N):
        real = np.flatnonzero(mask[n])
        if not (real == np.arange(real[0], real[-1] + 1)).all():
            continue  # only contiguous sequences have an unpadded equivalent
        alone = sj.Tensor(x[n : n + 1, real], requires_grad=True)
        ys_n, last_n, *_ = fn(alone, k, rk, b)
        (last_n * w[n]).sum().backward()
        np.testing.assert_allclose(last.numpy()[n], last_n.numpy()[0], rtol=1e-12, atol=1e-14)
        # real steps give the unpadded outputs, in processing order
        seen = mask[n, ::-1] if go_backwards else mask[n]
        np.testing.assert_allclose(ys.numpy()[n, seen], ys_n.numpy()[0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(xt.grad[n, real], alone.grad[0], rtol=1e-10, atol=1e-13)
        np.testing.assert_array_equal(xt.grad[n, ~mask[n]], 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # inside keras.ops.convert_to_numpy
@pytest.mark.parametrize("kind, settings", [
    ("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_matches_keras(rng, kind, settings, go_backwards):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    N, T, d, u = 6, 7, 3, 4
    x = rng.standard_normal((N, T, d)).astype(np.float32)
    mask = _padded_mask(rng, N, T)
    mask[2] = False
    k, rk, b = (w.astype(np.float32) for w in _weights(rng, kind, d, u, **settings))
    layer = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM,
             "gru": keras.layers.GRU}[kind](u, return_sequences=True, return_state=True,
                                             go_backwards=go_backwards, **settings)
    layer.build((N, T, d))
    layer.set_weights([k, rk, b])
    theirs = [keras.ops.convert_to_numpy(a) for a in layer(x, mask=mask)]
    ours = _op(kind, mask=mask, go_backwards=go_backwards, **settings)(x, k, rk, b)
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine.numpy(), ref, rtol=1e-5, atol=1e-5)


# ----- numeric gradients (float64 central differences) -------------------------------------------
NUMERIC_CASES = [
    ("simple_rnn", {}), ("simple_rnn", {"activation": "sigmoid", "go_backwards": True}),
    ("lstm", {}), ("lstm", {"go_backwards": True, "masked": True}),
    ("gru", {}), ("gru", {"reset_after": False, "masked": True}),
    ("gru", {"go_backwards": True, "masked": True}),
]


@pytest.mark.parametrize("kind, settings", NUMERIC_CASES)
def test_numeric_grad(rng, kind, settings):
    settings = dict(settings)
    N, T, d, u = 3, 4, 2, 3
    if settings.pop("masked", False):
        settings["mask"] = np.array([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1]], bool)
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, kind, d, u, settings.get("reset_after", True))
    states = [rng.standard_normal((N, u)) for _ in range(2 if kind == "lstm" else 1)]
    check_numeric_grad(_op(kind, **settings), x, k, rk, b, *states)


# ----- dtypes, diagnostics, errors ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_float32_stays_float32(rng, kind):
    x = sj.Tensor(rng.standard_normal((2, 5, 3)).astype(np.float32), requires_grad=True)
    weights = [sj.Tensor(w.astype(np.float32), requires_grad=True)
               for w in _weights(rng, kind, 3, 4)]
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], bool)
    outputs = _op(kind, mask=mask)(x, *weights)
    total = None
    for out in outputs:
        assert out.dtype == np.float32
        total = out.sum() if total is None else total + out.sum()
    total.backward()
    for t in [x, *weights]:
        assert t.grad.dtype == np.float32


@pytest.mark.parametrize("kind, settings", [
    ("lstm", {}), ("gru", {"go_backwards": True}), ("simple_rnn", {"masked": True}),
    ("gru", {"reset_after": False, "masked": True}),
])
def test_state_grads_match_torch_retain_grad(rng, kind, settings):
    settings = dict(settings)
    N, T, d, u = 3, 6, 2, 4
    mask = None
    if settings.pop("masked", False):
        mask = _padded_mask(rng, N, T)
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, kind, d, u, settings.get("reset_after", True))
    tx = sj.Tensor(x, requires_grad=True)
    outputs = _op(kind, mask=mask, keep_state_grads=True, **settings)(tx, k, rk, b)
    weights = [rng.standard_normal(o.shape) for o in outputs]
    loss = (outputs[0] * weights[0]).sum()
    for o, w in zip(outputs[1:], weights[1:]):
        loss = loss + (o * w).sum()
    loss.backward()
    kept = []
    theirs = _reference(kind, torch.tensor(x, requires_grad=True), torch.tensor(k),
                        torch.tensor(rk), torch.tensor(b), mask=mask, kept=kept, **settings)
    sum((o * torch.tensor(w)).sum() for o, w in zip(theirs, weights)).backward()
    expected = np.stack([h.grad.numpy() for h in kept])  # dL/dh_t, processing order
    np.testing.assert_allclose(outputs[0]._op.state_grads, expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("T", [1, 4, 7])
@pytest.mark.parametrize("settings", [{}, {"masked": True, "go_backwards": True},
                                      {"activation": "relu", "recurrent_activation": "hard_sigmoid"}])
def test_lstm_inference_keeps_only_the_latest_step_and_gives_the_same_outputs(rng, T, settings):
    settings = dict(settings)
    N, d, u = 5, 3, 4
    mask = _padded_mask(rng, N, T) if settings.pop("masked", False) else None
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, "lstm", d, u)
    h0, c0 = rng.standard_normal((2, N, u))
    recorded = rnn.lstm(sj.Tensor(x, requires_grad=True), k, rk, b, h0, c0, mask=mask, **settings)
    with sj.no_grad():
        inferred = rnn.lstm(x, k, rk, b, h0, c0, mask=mask, **settings)
    # bit for bit by construction: inference runs the same products and elementwise calls per
    # step on the same shapes; it only keeps fewer of the steps' values
    for mine, full in zip(inferred, recorded):
        np.testing.assert_array_equal(mine.numpy(), full.numpy())


# ----- a large batch runs as two half-batch recurrences on two threads --------------------------
@pytest.fixture
def always_split(monkeypatch):
    """Every recurrent op on 2+ rows splits its batch, whatever its size (see _Recurrent)."""
    monkeypatch.setattr(rnn._Recurrent, "MIN_SPLIT_BLOCK", 0)
    threads = rnn.parallel.THREADS
    if threads > 2:  # the tests below count two parts: split in two whatever the machine has
        rnn.parallel.set_threads(2)
        monkeypatch.setattr(rnn.parallel, "THREADS", 2)
    real = rnn.parallel.worth_splitting
    # any size, but never inside a split (the one worker thread would wait on itself)
    monkeypatch.setattr(rnn.parallel, "worth_splitting",
                        lambda rows, elements: rows > 1 and real(rows, 1 << 30))
    yield
    if threads > 2:
        rnn.parallel.set_threads(threads)


SPLIT_CASES = [
    ("simple_rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False}),
    ("lstm", {"go_backwards": True, "masked": True}), ("gru", {"masked": True}),
    ("simple_rnn", {"masked": True, "zero_output_for_mask": True}),
]


@pytest.mark.parametrize("kind, settings", SPLIT_CASES)
def test_split_batch_matches_torch(rng, always_split, kind, settings):
    settings = dict(settings)
    N, T, d, u = 7, 9, 3, 4  # an odd batch: halves of 3 and 4 rows
    mask = _padded_mask(rng, N, T) if settings.pop("masked", False) else None
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, kind, d, u, settings.get("reset_after", True))
    states = [rng.standard_normal((N, u)) for _ in range(2 if kind == "lstm" else 1)]
    ours = _op(kind, mask=mask, **settings)
    y = ours(sj.Tensor(x, requires_grad=True), k, rk, b, *states)[0]
    if rnn.parallel.THREADS == 1:
        pytest.skip("one core: batches are never split")
    assert len(y._op.parts) == 2
    if mask is not None:
        assert [len(part.mask) for part in y._op.parts] == [3, 4]
    ref = lambda x, k, rk, b, *s: _reference(kind, x, k, rk, b, s, mask=mask, **settings)
    check_against_torch(ours, ref, x, k, rk, b, *states, **TIGHT)


def test_split_state_grads_match_unsplit(rng, monkeypatch):
    N, T, d, u = 6, 5, 2, 3
    x = rng.standard_normal((N, T, d))
    k, rk, b = _weights(rng, "lstm", d, u)
    grads = []
    monkeypatch.setattr(rnn._Recurrent, "MIN_SPLIT_BLOCK", 0)
    real = rnn.parallel.worth_splitting
    for split in (False, True):
        monkeypatch.setattr(rnn.parallel, "worth_splitting",
                            lambda rows, elements, split=split: split and real(rows, 1 << 30))
        tx = sj.Tensor(x, requires_grad=True)
        ys, h, c = rnn.lstm(tx, k, rk, b, keep_state_grads=True)
        ((ys * ys).sum() + (h * c).sum()).backward()
        assert (ys._op.parts is not None) == (split and rnn.parallel.THREADS > 1)
        grads.append((ys._op.state_grads, tx.grad))
    for mine, whole in zip(*grads):
        np.testing.assert_allclose(mine, whole, rtol=1e-12, atol=1e-15)


def test_large_batch_is_split_on_two_cores(rng):
    """A batch of 128 sequences of 50 steps into 128 units splits by itself on two cores."""
    x = rng.standard_normal((128, 50, 32), dtype=np.float32)
    k, rk, b = (w.astype(np.float32) for w in _weights(rng, "lstm", 32, 128, scale=0.1))
    tx = sj.Tensor(x, requires_grad=True)
    ys, h, _ = rnn.lstm(tx, k, rk, b)
    assert ys._op.split == (rnn.parallel.THREADS > 1)
    h.sum().backward()
    whole = _reference("lstm", torch.tensor(x, dtype=torch.float64, requires_grad=True),
                       *(torch.tensor(w, dtype=torch.float64) for w in (k, rk, b)))
    np.testing.assert_allclose(h.numpy(), whole[1].detach().numpy(), rtol=1e-4, atol=1e-5)


def _error_inputs():
    x = np.zeros((2, 3, 4))
    return x, np.zeros((4, 20)), np.zeros((5, 20))


@pytest.mark.parametrize("call, error, message", [
    (lambda x, k, rk: rnn.lstm(x[0], k, rk), ValueError,
     r"lstm: expected input of rank 3 \(batch, time, features\), got shape \(3, 4\)\."),
    (lambda x, k, rk: rnn.lstm(x[:, :0], k, rk), ValueError,
     r"lstm: expected at least one time step, got input shape \(2, 0, 4\)\."),
    (lambda x, k, rk: rnn.lstm(x, k, rk[:, :15]), ValueError,
     r"lstm: expected recurrent_kernel of shape \(units, 4 \* units\), got \(5, 15\)\."),
    (lambda x, k, rk: rnn.simple_rnn(x, k[:, :5], rk), ValueError,
     r"simple_rnn: expected recurrent_kernel of shape \(units, units\), got \(5, 20\)\."),
    (lambda x, k, rk: rnn.lstm(x, k[:3], rk), ValueError,
     r"lstm: expected kernel of shape \(4, 20\) for 4 input features and 5 units, got \(3, 20\)"),
    (lambda x, k, rk: rnn.lstm(x, k, rk, np.zeros(16)), ValueError,
     r"lstm: expected bias of shape \(20,\), got \(16,\)\."),
    (lambda x, k, rk: rnn.gru(x, k[:, :15], rk[:, :15], np.zeros(15)), ValueError,
     r"gru: expected bias of shape \(2, 15\), got \(15,\)\."),
    (lambda x, k, rk: rnn.gru(x, k[:, :15], rk[:, :15], np.zeros((2, 15)), reset_after=False),
     ValueError, r"gru: expected bias of shape \(15,\), got \(2, 15\)\."),
    (lambda x, k, rk: rnn.lstm(x, k, rk, initial_c=np.zeros((3, 5))), ValueError,
     r"lstm: expected initial_c of shape \(2, 5\) \(batch, units\), got \(3, 5\)\."),
    (lambda x, k, rk: rnn.gru(x, k[:, :15], rk[:, :15], initial_state=np.zeros(5)), ValueError,
     r"gru: expected initial_state of shape \(2, 5\) \(batch, units\), got \(5,\)\."),
    (lambda x, k, rk: rnn.lstm(x, k, rk, mask=np.ones((2, 4), bool)), ValueError,
     r"lstm: expected mask of shape \(2, 3\) \(batch, time\), got \(2, 4\)\."),
    (lambda x, k, rk: rnn.lstm(x, k, rk, mask=np.ones((2, 3))), TypeError,
     r"lstm: expected a boolean mask, got dtype float64\."),
    (lambda x, k, rk: rnn.lstm(x, k, rk, activation="swish"), ValueError,
     r"lstm: unknown activation 'swish', expected one of tanh, sigmoid, hard_sigmoid, relu, "
     + r"linear\."),
    (lambda x, k, rk: rnn.gru(x, k[:, :15], rk[:, :15], recurrent_activation="softmax"),
     ValueError, r"gru: unknown recurrent_activation 'softmax', expected one of"),
])
def test_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(*_error_inputs())


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="lstm: expected a floating-point array"):
        rnn.lstm(np.zeros((2, 3, 4), int), np.zeros((4, 20)), np.zeros((5, 20)))


@pytest.mark.parametrize("N, T, u", [(3, 6, 5), (64, 40, 32)])  # the second: blocks >= 1 MB
def test_recycled_work_arrays_never_leak_between_calls(rng, N, T, u):
    # two graphs alive at once, an inference call between them (it recycles its arrays at
    # once), then a third call of the same shapes: every value must still match torch
    x1, x2 = rng.standard_normal((2, N, T, 4))
    k, rk, b = _weights(rng, "lstm", 4, u)
    params = [sj.Tensor(w, requires_grad=True) for w in (k, rk, b)]
    ours1, ours2 = rnn.lstm(x1, *params), rnn.lstm(x2, *params)
    with sj.no_grad():
        inferred = rnn.lstm(2 * x1, k, rk, b)
    weights = [rng.standard_normal(o.shape) for o in ours1 + ours2]
    loss = (ours1[0] * weights[0]).sum()
    for o, w in zip(ours1[1:] + ours2, weights[1:]):
        loss = loss + (o * w).sum()
    loss.backward()
    again = rnn.lstm(x1, k, rk, b)
    tparams = [torch.tensor(w, requires_grad=True) for w in (k, rk, b)]
    zeros = [torch.zeros(N, u, dtype=torch.float64)] * 2
    theirs = (_via_module("lstm", u)(torch.tensor(x1), *tparams, *zeros)
              + _via_module("lstm", u)(torch.tensor(x2), *tparams, *zeros))
    sum((o * torch.tensor(w)).sum() for o, w in zip(theirs, weights)).backward()
    theirs += theirs[:3] + _via_module("lstm", u)(torch.tensor(2 * x1), *tparams, *zeros)
    for mine, ref in zip(ours1 + ours2 + again + inferred, theirs, strict=True):
        np.testing.assert_allclose(mine.numpy(), ref.detach().numpy(), **TIGHT)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TIGHT)


@pytest.mark.parametrize("shape", [(7, 5), (300, 1000)])
def test_work_arrays_are_cache_line_aligned_and_their_blocks_reused(shape):
    first = rnn._empty(shape, np.float32)
    address = first.ctypes.data
    assert address % 64 == 0
    view = first[1:]
    del first
    second = rnn._empty(shape, np.float32)  # a view still holds the first block
    assert second.ctypes.data % 64 == 0 and second.ctypes.data != address
    del view
    assert rnn._empty(shape, np.float32).ctypes.data == address  # now free again


def test_second_backward_is_refused_and_gradient_arrays_are_not_modified(rng):
    x = rng.standard_normal((3, 4, 2))
    k, rk, b = _weights(rng, "gru", 2, 5)
    kernel = sj.Tensor(k, requires_grad=True)
    _, h = rnn.gru(x, kernel, rk, b)
    upstream = np.asfortranarray(rng.standard_normal((3, 5)))
    before = upstream.copy()
    h.backward(upstream)
    np.testing.assert_array_equal(upstream, before)
    with pytest.raises(RuntimeError, match="gru: backward ran through this op a second time"):
        h.backward(upstream)


@pytest.mark.filterwarnings("error")  # no overflow in exp/tanh, no float64 promotion warnings
@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_saturated_gates_match_torch_without_warnings(rng, kind):
    x = rng.standard_normal((3, 6, 4)) * 300
    k, rk, b = _weights(rng, kind, 4, 5)
    activation = "sigmoid" if kind == "simple_rnn" else "tanh"

    def ref(x, k, rk, b):
        return _reference(kind, x, k, rk, b, activation=activation)

    check_against_torch(_op(kind, activation=activation), ref, x, k, rk, b, **TIGHT)
    ours = _op(kind, activation=activation)(*(a.astype(np.float32) for a in (x * 100, k, rk, b)))
    assert all(np.isfinite(o.numpy()).all() and o.dtype == np.float32 for o in ours)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_nested_lists_are_accepted_as_inputs(rng, kind):
    x = rng.standard_normal((2, 3, 4))
    k, rk, b = _weights(rng, kind, 4, 5)
    from_lists = _op(kind)(x.tolist(), k.tolist(), rk.tolist(), b.tolist())
    from_arrays = _op(kind)(x, k, rk, b)
    for a, c in zip(from_lists, from_arrays):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-6)
