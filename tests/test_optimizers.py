"""Optimizers against Keras 3 (the same formulas) and torch.optim (where the formulas coincide).

Mapping to torch.optim, checked below. SGD: Keras keeps m = momentum*m - lr*g, torch keeps
b = momentum*b + g and steps -lr*b, so m = -lr*b and the two agree while lr is constant (also
for nesterov). Adam/AdamW: Keras divides by sqrt(v) + eps with the bias corrections folded
into the step size, torch by sqrt(v)/sqrt(1 - beta_2^t) + eps: they agree for eps = 0, and torch's
eps at step t equals Keras's eps / sqrt(1 - beta_2^t). RMSprop and Adagrad: Keras takes
sqrt(v + eps), torch sqrt(v) + eps, and RMSprop's Keras momentum buffer holds lr*g/sqrt(v)
where torch's holds g/sqrt(v): they agree for eps = 0 and a constant lr (rho is torch's alpha,
whose default is 0.99, not 0.9).
"""

import json
import os

import numpy as np
import pytest

from shenjing import Variable, optimizers, schedules
from shenjing.errors import ArgumentError, ArgumentTypeError

torch = pytest.importorskip("torch")
# Keras's torch backend calls np.array on its own tensors: noise, not ours
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy")

SHAPES = [(3, 4), (5,), (2, 3, 2)]


@pytest.fixture(scope="module")
def keras():
    """Keras 3 on the torch backend, computing in float64 (learning rates included)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    yield keras
    keras.config.set_floatx(previous)


def _problem(rng, steps=5, dtype=np.float64):
    inits = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return inits, grads


def _variables(inits):
    return [Variable(x.copy(), name=f"dense/w{i}") for i, x in enumerate(inits)]


def _run_ours(opt, inits, grads):
    variables = _variables(inits)
    for gs in grads:
        opt.apply(variables, gs)
    return [v.data for v in variables]


def _run_keras(keras, opt, inits, grads, names=None):
    names = names or [f"w{i}" for i in range(len(inits))]
    variables = [keras.Variable(x.copy(), dtype="float64", name=n) for x, n in zip(inits, names)]
    for gs in grads:
        tensors = [keras.ops.convert_to_tensor(g, dtype="float64") for g in gs]
        opt.apply_gradients(zip(tensors, variables))
    return [keras.ops.convert_to_numpy(v.value) for v in variables]


def _run_torch(make_opt, inits, grads):
    params = [torch.nn.Parameter(torch.tensor(x)) for x in inits]
    opt = make_opt(params)
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def _assert_all_close(ours, theirs, rtol=1e-10, atol=1e-12):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


KERAS_CASES = [
    ("SGD", {}), ("SGD", {"momentum": 0.9}), ("SGD", {"momentum": 0.9, "nesterov": True}),
    ("SGD", {"momentum": 0.5, "weight_decay": 0.1}), ("SGD", {"clipvalue": 0.5}),
    ("Adam", {}), ("Adam", {"amsgrad": True}), ("Adam", {"beta_1": 0.5, "epsilon": 1e-3}),
    ("Adam", {"weight_decay": 0.05}), ("AdamW", {}), ("AdamW", {"weight_decay": 0.3}),
    ("AdamW", {"amsgrad": True, "clipvalue": 1.0}),
    ("RMSprop", {}), ("RMSprop", {"momentum": 0.5}), ("RMSprop", {"centered": True}),
    ("RMSprop", {"rho": 0.5, "momentum": 0.9, "centered": True, "epsilon": 1e-3}),
    ("RMSprop", {"weight_decay": 0.2}),
    ("Adagrad", {}), ("Adagrad", {"initial_accumulator_value": 0.5, "epsilon": 1e-3}),
    ("Adagrad", {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("name, kwargs", KERAS_CASES, ids=str)
def test_like_keras(name, kwargs, keras, rng):
    inits, grads = _problem(rng)
    kwargs = {"learning_rate": 0.05, **kwargs}
    ours = _run_ours(getattr(optimizers, name)(**kwargs), inits, grads)
    theirs = _run_keras(keras, getattr(keras.optimizers, name)(**kwargs), inits, grads)
    _assert_all_close(ours, theirs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_like_keras(name, keras):
    ours = getattr(optimizers, name)().get_config()
    theirs = getattr(keras.optimizers, name)().get_config()
    assert ours.pop("name") == name.lower()
    assert ours == {k: theirs[k] for k in ours}


@pytest.mark.parametrize("clip", [{"clipnorm": 1.5}, {"global_clipnorm": 2.0}], ids=str)
def test_norm_clipping_like_keras(clip, keras, rng):
    # NOTE: Keras rounds the norm to float32 here (on the torch backend, ops.maximum/minimum of a
    # float64 tensor and a Python float computes in float32), hence rtol=1e-6;
    # test_clipping_formulas checks the exact formula at full precision.
    inits, grads = _problem(rng)
    grads[2][1] *= 1e-3  # one small gradient, under clipnorm
    ours = _run_ours(optimizers.Adam(0.05, **clip), inits, grads)
    theirs = _run_keras(keras, keras.optimizers.Adam(0.05, **clip), inits, grads)
    _assert_all_close(ours, theirs, rtol=1e-6, atol=1e-9)


def test_clipping_formulas(rng):
    # SGD with lr=1 from zeros: the variables become minus the clipped gradients
    zeros = [np.zeros(s) for s in SHAPES]
    grads = [rng.standard_normal(s) for s in SHAPES]
    grads[1] *= 1e-2
    norms = [np.linalg.norm(g) for g in grads]
    total = np.sqrt(sum(n * n for n in norms))
    expected = {
        "clipnorm": [g * (1.0 / max(n, 1.0)) for g, n in zip(grads, norms)],
        "global_clipnorm": [g * (2.0 / total) for g in grads],
        "clipvalue": [np.minimum(np.maximum(g, -0.3), 0.3) for g in grads],
    }
    for arg, value in [("clipnorm", 1.0), ("global_clipnorm", 2.0), ("clipvalue", 0.3)]:
        ours = _run_ours(optimizers.SGD(1.0, **{arg: value}), zeros, [grads])
        _assert_all_close(ours, [-e for e in expected[arg]], rtol=1e-14, atol=0)
    np.testing.assert_array_equal(expected["clipnorm"][1], grads[1])  # under the norm: as is


def test_global_clipnorm_of_infinite_gradient_is_nan(keras, rng):
    inits, grads = _problem(rng, steps=1)
    grads[0][0][0, 0] = np.inf
    ours = _run_ours(optimizers.SGD(0.1, global_clipnorm=1.0), inits, grads)
    theirs = _run_keras(keras, keras.optimizers.SGD(0.1, global_clipnorm=1.0), inits, grads)
    assert all(np.isnan(a).all() and np.isnan(b).all() for a, b in zip(ours, theirs))


def test_schedules_and_lr_changes_like_keras(keras, rng):
    inits, grads = _problem(rng, steps=8)
    ks = keras.optimizers.schedules
    cases = [
        (optimizers.Adam(schedules.ExponentialDecay(0.1, 3, 0.5), weight_decay=0.1),
         keras.optimizers.Adam(ks.ExponentialDecay(0.1, 3, 0.5), weight_decay=0.1)),
        (optimizers.SGD(schedules.CosineDecay(0.0, 5, 0.1, warmup_target=0.2, warmup_steps=3),
                        momentum=0.9, nesterov=True),
         keras.optimizers.SGD(ks.CosineDecay(0.0, 5, 0.1, warmup_target=0.2, warmup_steps=3),
                              momentum=0.9, nesterov=True)),
    ]
    for ours_opt, keras_opt in cases:
        ours = _run_ours(ours_opt, inits, grads)
        _assert_all_close(ours, _run_keras(keras, keras_opt, inits, grads))
        assert ours_opt.iterations == int(keras_opt.iterations) == 8
        assert ours_opt.learning_rate == pytest.approx(float(keras_opt.learning_rate), rel=1e-12)
    # a float learning rate set between steps (what ReduceLROnPlateau does)
    variables = _variables(inits)
    kvars = [keras.Variable(x.copy(), dtype="float64") for x in inits]
    ours_opt, keras_opt = optimizers.RMSprop(0.05, momentum=0.5), keras.optimizers.RMSprop(
        0.05, momentum=0.5
    )
    for step, gs in enumerate(grads):
        if step == 4:
            ours_opt.learning_rate = keras_opt.learning_rate = 0.01
        ours_opt.apply(variables, gs)
        keras_opt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in gs], kvars))
    assert ours_opt.learning_rate == 0.01
    _assert_all_close([v.data for v in variables], [keras.ops.convert_to_numpy(v) for v in kvars])


def test_none_gradients_skipped_like_keras(keras, rng):
    inits, grads = _problem(rng, steps=3)
    opt, variables = optimizers.Adam(0.05, weight_decay=0.1), _variables(inits)
    untouched = variables[1].data.copy()
    for gs in grads:
        for v, g in zip(variables, gs):
            v.grad = g
        variables[1].grad = None
        opt.apply(variables)  # gradients taken from .grad
    np.testing.assert_array_equal(variables[1].data, untouched)
    assert not any(key.startswith("dense/w1/") for key in opt.get_state())
    others = [[gs[0], gs[2]] for gs in grads]
    theirs = _run_keras(keras, keras.optimizers.Adam(0.05, weight_decay=0.1),
                        [inits[0], inits[2]], others)
    _assert_all_close([variables[0].data, variables[2].data], theirs)


def test_exclude_from_weight_decay_like_keras(keras, rng):
    inits, grads = _problem(rng)
    opt = optimizers.AdamW(0.05, weight_decay=0.2)
    opt.exclude_from_weight_decay(var_names=["bias"])
    variables = [Variable(x.copy(), name=n) for x, n in zip(inits, ["d/kernel", "d/bias", "e/k"])]
    for gs in grads:
        opt.apply(variables, gs)
    keras_opt = keras.optimizers.AdamW(0.05, weight_decay=0.2)
    keras_opt.exclude_from_weight_decay(var_names=["bias"])
    theirs = _run_keras(keras, keras_opt, inits, grads, names=["kernel", "bias", "k"])
    _assert_all_close([v.data for v in variables], theirs)


TORCH_CASES = {  # id: (ours, torch.optim) as factories
    "sgd-momentum": (lambda: optimizers.SGD(0.1, momentum=0.9),
                     lambda p: torch.optim.SGD(p, 0.1, momentum=0.9)),
    "sgd-nesterov": (lambda: optimizers.SGD(0.1, momentum=0.8, nesterov=True),
                     lambda p: torch.optim.SGD(p, 0.1, momentum=0.8, nesterov=True)),
    "adam": (lambda: optimizers.Adam(0.05, epsilon=0.0),
             lambda p: torch.optim.Adam(p, 0.05, eps=0.0)),
    "adam-amsgrad": (lambda: optimizers.Adam(0.05, beta_1=0.5, epsilon=0.0, amsgrad=True),
                     lambda p: torch.optim.Adam(p, 0.05, (0.5, 0.999), eps=0.0, amsgrad=True)),
    "adamw": (lambda: optimizers.AdamW(0.05, weight_decay=0.1, epsilon=0.0),
              lambda p: torch.optim.AdamW(p, 0.05, weight_decay=0.1, eps=0.0)),
    # torch's default alpha is 0.99, Keras's rho 0.9
    "rmsprop": (lambda: optimizers.RMSprop(0.01, epsilon=0.0),
                lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.9, eps=0.0)),
    "rmsprop-centered-momentum": (
        lambda: optimizers.RMSprop(0.01, rho=0.8, momentum=0.5, centered=True, epsilon=0.0),
        lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.8, eps=0.0, momentum=0.5, centered=True),
    ),
    "adagrad": (lambda: optimizers.Adagrad(0.1, epsilon=0.0),
                lambda p: torch.optim.Adagrad(p, 0.1, initial_accumulator_value=0.1, eps=0.0)),
}


@pytest.mark.parametrize("case", TORCH_CASES)
def test_like_torch(case, rng):
    make_ours, make_torch = TORCH_CASES[case]
    inits, grads = _problem(rng)
    _assert_all_close(_run_ours(make_ours(), inits, grads), _run_torch(make_torch, inits, grads))


def test_adam_first_step_epsilon_mapping_to_torch(rng):
    # one step: torch's eps = Keras's eps / sqrt(1 - beta_2)
    inits, grads = _problem(rng, steps=1)
    grads[0][0] *= 1e-4  # so that eps matters
    ours = _run_ours(optimizers.Adam(0.05, epsilon=1e-3), inits, grads)
    theirs = _run_torch(lambda p: torch.optim.Adam(p, 0.05, eps=1e-3 / np.sqrt(1 - 0.999)),
                        inits, grads)
    _assert_all_close(ours, theirs)


def test_callable_learning_rate(rng):
    inits, grads = _problem(rng)
    ours = _run_ours(optimizers.SGD(lambda step: 0.1 / (1 + step)), inits, grads)
    expected = [x - sum(0.1 / (1 + t) * gs[i] for t, gs in enumerate(grads))
                for i, x in enumerate(inits)]
    _assert_all_close(ours, expected, rtol=1e-13)


STATE_CASES = [  # (optimizer factory, its slot names)
    (lambda: optimizers.SGD(0.1), []),
    (lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), ["momentum"]),
    (lambda: optimizers.Adam(schedules.InverseTimeDecay(0.05, 2, 0.5), amsgrad=True),
     ["momentum", "velocity", "velocity_hat"]),
    (lambda: optimizers.AdamW(0.05, weight_decay=0.1, global_clipnorm=1.0),
     ["momentum", "velocity"]),
    (lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True, clipnorm=1.0),
     ["velocity", "momentum", "average_gradient"]),
    (lambda: optimizers.Adagrad(schedules.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01])),
     ["accumulator"]),
]


@pytest.mark.parametrize("make, slots", STATE_CASES)
def test_state_round_trip_resumes_bit_for_bit(make, slots, rng):
    inits, grads = _problem(rng, steps=7)
    opt, variables = make(), _variables(inits)
    for gs in grads[:3]:
        opt.apply(variables, gs)
    state = opt.get_state()
    checkpoint = [v.data.copy() for v in variables]
    for gs in grads[3:]:
        opt.apply(variables, gs)
    assert set(state) == {"iterations"} | {f"dense/w{i}/{s}" for i in range(3) for s in slots}
    assert state["iterations"] == 3 and state["iterations"].dtype == np.int64

    resumed = type(opt).from_config(json.loads(json.dumps(opt.get_config())))
    restored = [Variable(x, name=v.name) for x, v in zip(checkpoint, variables)]
    resumed.set_state(state, restored)
    for value in state.values():  # set_state copied: later edits of the dict do not leak in
        value[...] = 0
    for gs in grads[3:]:
        resumed.apply(restored, gs)
    assert resumed.iterations == opt.iterations == 7
    for a, b in zip(restored, variables):
        np.testing.assert_array_equal(a.data, b.data)
    final = resumed.get_state()
    for key, value in opt.get_state().items():
        np.testing.assert_array_equal(final[key], value)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_stays_float32_in_place(name, rng):
    inits, grads = _problem(rng, dtype=np.float32)
    kwargs = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    opt = getattr(optimizers, name)(
        schedules.ExponentialDecay(0.05, 2, 0.9), weight_decay=0.01, clipnorm=2.0, **kwargs
    )
    variables = _variables(inits)
    arrays = [v.data for v in variables]
    for step, gs in enumerate(grads):
        # float64 gradients on float32 variables are cast, not promoted
        opt.apply(variables, [g.astype(np.float64) for g in gs] if step % 2 else gs)
    assert all(v.data is a and a.dtype == np.float32 for v, a in zip(variables, arrays))
    assert all(s.dtype == np.float32 for k, s in opt.get_state().items() if k != "iterations")
    reference = getattr(optimizers, name)(
        schedules.ExponentialDecay(0.05, 2, 0.9), weight_decay=0.01, clipnorm=2.0, **kwargs
    )
    expected = _run_ours(reference, [x.astype(np.float64) for x in inits],
                         [[g.astype(np.float64) for g in gs] for gs in grads])
    for a, b in zip(arrays, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_keras_configs(keras):
    opt = optimizers.RMSprop(schedules.CosineDecay(0.1, 100, alpha=0.1), rho=0.8, clipvalue=2.0)
    config = json.loads(json.dumps(optimizers.serialize(opt)))
    assert config["config"]["learning_rate"]["class_name"] == "CosineDecay"
    again = optimizers.deserialize(config)
    assert type(again) is optimizers.RMSprop and again.get_config() == opt.get_config()
    assert again.learning_rate == opt.learning_rate == 0.1
    keras_opt = keras.optimizers.Adam(0.01, beta_2=0.99, amsgrad=True, clipnorm=1.0)
    ours = optimizers.Adam.from_config(keras_opt.get_config())
    assert (ours.learning_rate, ours.beta_2, ours.amsgrad, ours.clipnorm) == (0.01, 0.99, True, 1)


def test_get():
    adam = optimizers.get("ADAM")
    assert type(adam) is optimizers.Adam and (adam.learning_rate, adam.epsilon) == (0.001, 1e-7)
    assert optimizers.get(adam) is adam
    assert type(optimizers.get("RMSprop")) is optimizers.RMSprop
    sgd = optimizers.get({"class_name": "SGD", "config": {"learning_rate": 0.2, "momentum": 0.5}})
    assert (type(sgd), sgd.learning_rate, sgd.momentum) == (optimizers.SGD, 0.2, 0.5)
    with pytest.raises(ValueError, match=r"unknown optimizer 'adafactor'; known: sgd, adam, adamw"):
        optimizers.get("adafactor")
    with pytest.raises(ValueError, match="unknown optimizer 'Ftrl'"):
        optimizers.get({"class_name": "Ftrl", "config": {}})


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: optimizers.SGD(-0.1), r"SGD: expected learning_rate to be a number >= 0, got -0"),
        (lambda: optimizers.Adam(float("inf")), r"Adam: expected learning_rate .* finite"),
        (lambda: optimizers.SGD("fast"), r"SGD: expected learning_rate .* got 'fast'"),
        (lambda: optimizers.Adam(float("nan")), r"Adam: expected learning_rate .* got nan"),
        (lambda: optimizers.SGD(momentum=1.5), r"SGD: expected momentum .* in \[0, 1\], got 1.5"),
        (lambda: optimizers.Adam(beta_1=1.0), r"Adam: expected beta_1 .* in \[0, 1\), got 1.0"),
        (lambda: optimizers.AdamW(beta_2=-0.1), r"AdamW: expected beta_2 .* \[0, 1\), got -0.1"),
        (lambda: optimizers.Adam(epsilon=-1e-8), r"Adam: expected epsilon .* >= 0, got -1e-08"),
        (lambda: optimizers.RMSprop(rho=1.5), r"RMSprop: expected rho .* \[0, 1\), got 1.5"),
        (lambda: optimizers.Adagrad(initial_accumulator_value=-1),
         r"Adagrad: expected initial_accumulator_value .* >= 0, got -1"),
        (lambda: optimizers.Adam(clipnorm=0.0), r"Adam: expected clipnorm to be a number > 0"),
        (lambda: optimizers.SGD(clipvalue=-1), r"SGD: expected clipvalue .* > 0, got -1"),
        (lambda: optimizers.Adam(clipnorm=1.0, global_clipnorm=1.0),
         (r"Adam: expected at most one of clipnorm, clipvalue and global_clipnorm, got "
          r"clipnorm=1.0, global_clipnorm=1.0")),
        (lambda: optimizers.AdamW(weight_decay=None), r"AdamW: expected weight_decay .* None"),
        (lambda: optimizers.SGD(weight_decay=-0.1), r"SGD: expected weight_decay .* got -0.1"),
        (lambda: optimizers.Adam.from_config({"use_ema": True}), r"Adam: use_ema is not supp"),
    ],
)
def test_constructor_errors(make, match):
    # ours: ArgumentTypeError for a value of the wrong type ('fast', None), else ArgumentError
    with pytest.raises((ArgumentError, ArgumentTypeError), match=match):
        make()


def test_usage_errors(rng):
    inits, grads = _problem(rng, steps=1)
    variables = _variables(inits)
    opt = optimizers.Adam()
    with pytest.raises(ValueError, match=r"Adam: expected one gradient per variable, got 2 grad"):
        opt.apply(variables, grads[0][:2])
    with pytest.raises(ValueError, match=r"Adam: gradient for 'dense/w1' has shape \(4,\), expe"):
        opt.apply(variables, [grads[0][0], np.zeros(4), grads[0][2]])
    with pytest.raises(ValueError, match=r"Adam: no gradient for any of the 3 variables"):
        opt.apply(variables)
    assert opt.iterations == 0
    with pytest.raises(TypeError, match=r"Adam: the learning rate is a schedule"):
        optimizers.Adam(schedules.ExponentialDecay(0.1, 10, 0.5)).learning_rate = 0.01
    with pytest.raises(TypeError, match=r"SGD: cannot serialize the learning rate"):
        optimizers.SGD(lambda step: 0.1).get_config()
    opt.apply(variables, grads[0])
    state = opt.get_state()
    with pytest.raises(ValueError, match=r"Adam: the state has no 'iterations' entry"):
        opt.set_state({k: v for k, v in state.items() if k != "iterations"}, variables)
    partial = {k: v for k, v in state.items() if k != "dense/w0/velocity"}
    with pytest.raises(ValueError, match=r"'dense/w0/velocity' of shape \(3, 4\), got nothing"):
        opt.set_state(partial, variables)
    with pytest.raises(ValueError, match=r"match no given variable: \['dense/w2/mom"):
        opt.set_state(state, variables[:2])
    with pytest.raises(ValueError, match=r"'dense/w0/momentum' of shape \(3, 4\), got shape \(2"):
        opt.set_state({**state, "dense/w0/momentum": np.zeros(2)}, variables)
    twins = [Variable(np.zeros(2), name="same"), Variable(np.zeros(2), name="same")]
    opt.apply(twins, [np.ones(2), np.ones(2)])
    with pytest.raises(ValueError, match=r"need distinct names, got 'same' unnamed or twice"):
        opt.get_state()


@pytest.mark.parametrize("make", [
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.Adam(amsgrad=True), lambda: optimizers.AdamW(),
    lambda: optimizers.RMSprop(momentum=0.5, centered=True), lambda: optimizers.Adagrad(),
])
def test_large_variables_updated_in_two_halves_equal_the_whole_update(make, monkeypatch):
    """A large variable's rows go to two threads (updates are elementwise): bit-identical."""
    from shenjing.ops import parallel

    rng = np.random.default_rng(0)
    start = rng.standard_normal((1024, 300)).astype(np.float32)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]
    real_split, real_over_batch, halves = parallel.worth_splitting, parallel.over_batch, []

    def counted(work, rows, elements):
        halves.append(rows)
        return real_over_batch(work, rows, elements)

    monkeypatch.setattr(parallel, "over_batch", counted)
    results = []
    for split in (True, False):
        monkeypatch.setattr(parallel, "worth_splitting", lambda rows, elements, split=split:
                            split and real_split(rows, elements))
        variable, opt = Variable(start.copy(), name="w"), make()
        for g in grads:
            opt.apply([variable], [g])
        results.append(variable.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    assert len(halves) == (3 if parallel.THREADS > 1 else 0)  # only the first run split


@pytest.mark.parametrize("make, error, argument", [
    (lambda: optimizers.Adam(learning_rate=-1), ArgumentError, "learning_rate"),
    (lambda: optimizers.SGD(learning_rate=[0.1]), ArgumentTypeError, "learning_rate"),
    (lambda: optimizers.SGD(momentum=5), ArgumentError, "momentum"),
    (lambda: optimizers.RMSprop(momentum=-0.1), ArgumentError, "momentum"),
    (lambda: optimizers.RMSprop(rho=1.0), ArgumentError, "rho"),
    (lambda: optimizers.Adagrad(epsilon=float("inf")), ArgumentError, "epsilon"),
    (lambda: optimizers.Adam(beta_2=True), ArgumentTypeError, "beta_2"),
    (lambda: optimizers.SGD(nesterov="yes"), ArgumentTypeError, "nesterov"),
    (lambda: optimizers.Adam(amsgrad=1), ArgumentTypeError, "amsgrad"),
    (lambda: optimizers.RMSprop(centered=None), ArgumentTypeError, "centered"),
    (lambda: optimizers.Adam(name=3), ArgumentTypeError, "name"),
    (lambda: optimizers.Adam(lr=0.1), ArgumentError, "Argument(s) not recognized: {'lr'"),
    (lambda: optimizers.get("foo"), ArgumentError, "'foo'"),
    (lambda: optimizers.get(5), ArgumentTypeError, "unknown optimizer 5"),
    (lambda: optimizers.Adam({"class_name": "Nope"}), ArgumentError, "learning_rate"),
])
def test_hyperparameters_are_refused_with_our_errors_naming_them(make, error, argument):
    with pytest.raises(error) as caught:
        make()
    assert argument in str(caught.value)


def test_a_zero_rate_is_taken_as_keras_takes_it():
    opt = optimizers.SGD(0.0)  # a frozen run that only logs losses (tests/models/test_training)
    opt.learning_rate = 0.0  # a warm-up from 0 set by LearningRateScheduler
    assert opt.learning_rate == 0.0
