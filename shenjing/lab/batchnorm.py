"""Batch normalization, seen: Ioffe & Szegedy (2015), Figure 1, on the shipped digits.

An MLP 784 -> 3 x [Dense(100) -> sigmoid] -> Dense(10) trained by plain SGD, batch 60, with and
without BatchNormalization before each sigmoid: test accuracy over training steps, and the 15th,
50th and 85th percentiles of one last-hidden-layer sigmoid input (after BN, when present). Then
the largest learning rate each network still trains at, the small-batch caveat (batch size 2:
BN beside GroupNormalization and LayerNormalization) and one-class batches.
"""

from __future__ import annotations

import time

import numpy as np

from .. import layers, optimizers, utils
from ..datasets import mnist
from ..models import Sequential
from ..tensor import no_grad
from ..viz import layer_outputs
from . import plotting, prepare, save, say, write_json

SETTINGS = {
    False: dict(steps=3000, eval_every=100, rate=1.0, rates=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
                sweep_steps=600, tiny_steps=4000, tiny_evals=16),
    True: dict(steps=300, eval_every=30, rate=1.0, rates=(1.0, 3.0, 10.0, 30.0),
               sweep_steps=300, tiny_steps=1500, tiny_evals=10),
}
TRAINS_AT = 0.5  # "trains": test accuracy above this after sweep_steps (chance is 0.1)
TINY_BATCH = 2
MOMENTUM = 0.9  # moving statistics that keep up with short runs (Keras: 0.99)


class SigmoidProbe(layers.Activation):
    """A sigmoid that keeps a copy of its last input (the 'sigmoid input' of the paper)."""

    def __init__(self, **kwargs):
        super().__init__("sigmoid", **kwargs)
        self.seen = None

    def call(self, inputs):
        self.seen = np.array(inputs.numpy())
        return super().call(inputs)


def build_mlp(norm=None, seed=0):
    """784 -> 3 x [Dense(100) -> norm -> sigmoid] -> Dense(10, softmax); norm is None, 'bn',
    'gn' (10 groups of 10 units) or 'ln'. Dense has no bias when a norm's beta follows."""
    utils.set_seed(seed)
    stack, probes = [layers.Input((784,))], []
    for _ in range(3):
        stack.append(layers.Dense(100, use_bias=norm is None))
        if norm == "bn":
            stack.append(layers.BatchNormalization(momentum=MOMENTUM))
        elif norm == "gn":
            stack.append(layers.GroupNormalization(groups=10))
        elif norm == "ln":
            stack.append(layers.LayerNormalization())
        probes.append(SigmoidProbe())
        stack.append(probes[-1])
    stack.append(layers.Dense(10, activation="softmax"))
    model = Sequential(stack, name=f"mlp_{norm or 'plain'}")
    return model, probes


def load_flat_digits():
    (x_train, y_train), (x_test, y_test) = mnist.load_subset(n_test=1000, seed=0)
    scale = np.float32(1 / 255)
    return ((x_train.reshape(len(x_train), -1) * scale, y_train.astype(np.int64)),
            (x_test.reshape(len(x_test), -1) * scale, y_test.astype(np.int64)))


def _batches(n, batch, seed):
    """Indices of shuffled mini-batches, epoch after epoch, forever."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch + 1, batch):
            yield order[start:start + batch]


def _accuracy(model, x, y):
    with no_grad():
        prediction = model(x, training=False).numpy()
    return float(np.mean(prediction.argmax(axis=1) == y))


def train(norm, data, steps, rate, batch=60, eval_every=None, seed=0):
    """SGD for `steps` steps; at every eval point the test accuracy, the sigmoid inputs of the
    test set (inference mode) and the last training batch's per-unit statistics (training mode).
    """
    (x_train, y_train), (x_test, y_test) = data
    model, probes = build_mlp(norm, seed)
    model.compile(optimizer=optimizers.SGD(rate), loss="sparse_categorical_crossentropy")
    log = {"step": [], "accuracy": [], "percentiles": [], "in_range": [], "batch_mean": [],
           "batch_std": []}
    batches = _batches(len(x_train), batch, seed)
    start = time.perf_counter()
    for step in range(steps + 1):
        if step:
            index = next(batches)
            model.train_on_batch(x_train[index], y_train[index])
        if eval_every and (step % eval_every == 0 or step == steps):
            seen = probes[-1].seen  # training batch (training mode), the step just taken
            log["accuracy"].append(_accuracy(model, x_test, y_test))
            inputs = [p.seen for p in probes]  # now the test set, inference mode
            log["step"].append(step)
            log["percentiles"].append(np.percentile(inputs[-1][:, 0], (15, 50, 85)))
            log["in_range"].append(float(np.mean([np.mean(np.abs(v) <= 2) for v in inputs])))
            if step:
                log["batch_mean"].append(float(np.abs(seen.mean(axis=0)).mean()))
                log["batch_std"].append(float(seen.std(axis=0).mean()))
    log["seconds"] = time.perf_counter() - start
    log["final_accuracy"] = _accuracy(model, x_test, y_test)
    return model, {k: np.array(v) if isinstance(v, list) else v for k, v in log.items()}


def learning_rate_sweep(data, rates, steps, seed=0):
    """Final test accuracy after `steps` steps for each rate, with and without BN."""
    result = {}
    for norm in (None, "bn"):
        accuracies = [train(norm, data, steps, rate, seed=seed)[1]["final_accuracy"]
                      for rate in rates]
        trains = [r for r, a in zip(rates, accuracies) if a > TRAINS_AT]
        result["bn" if norm else "plain"] = {"accuracy": np.array(accuracies),
                                             "largest_rate": max(trains) if trains else None}
    return result


def small_batch(data, steps, evals, rate, seed=0):
    """BN, GN and LN nets at batch size 2: test accuracy curves, and how BN normalizes a pair."""
    every = max(1, steps // evals)
    result = {"step": None}
    for norm in ("bn", "gn", "ln"):
        model, log = train(norm, data, steps, rate, batch=TINY_BATCH, eval_every=every, seed=seed)
        result["step"] = log["step"]
        tail = log["accuracy"][len(log["accuracy"]) // 2:]
        result[norm] = {"accuracy": log["accuracy"], "late_mean": float(tail.mean())}
        if norm == "bn":
            # NOTE: with 2 samples, (x - mean) / std is +-|x1 - x2| / sqrt((x1 - x2)^2 + 4 eps),
            # so every unit's normalized value is about +-1: only the sign survives.
            x_train = data[0][0]
            pairs = np.random.default_rng(seed).integers(0, len(x_train), (50, TINY_BATCH))
            first = model.layers[0].name
            values = [layer_outputs(model, x_train[p], [first])[first] for p in pairs]
            x_hat = [(v - v.mean(axis=0)) / np.sqrt(v.var(axis=0) + 1e-3) for v in values]
            result["pair_near_pm1"] = float(np.mean(np.abs(np.concatenate(x_hat)) > 0.9))
    return result


def one_class_batches(model, data, seed=0):
    """Per class: a batch of 60 test digits of that class alone. BN's batch statistics shift
    (|batch mean - moving mean| / moving std, first BN layer) and accuracy with the moving
    statistics (inference) vs the batch's own statistics (training mode)."""
    x_test, y_test = data[1]
    dense = model.layers[0].name
    bn = model.layers[1]
    mean, std = bn.moving_mean.numpy(), np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    saved = model.get_weights()

    def with_batch_stats(x):
        with no_grad():
            prediction = model(x, training=True).numpy()
        model.set_weights(saved)  # training mode moved the moving statistics: undo
        return prediction

    def shift(x):
        h = layer_outputs(model, x, [dense])[dense]
        return float(np.mean(np.abs(h.mean(axis=0) - mean) / std))

    rng = np.random.default_rng(seed)
    mixed = [rng.choice(len(x_test), 60, replace=False) for _ in range(10)]
    result = {"class": np.arange(10), "shift": [], "moving_accuracy": [], "batch_accuracy": [],
              "mixed_shift": float(np.mean([shift(x_test[i]) for i in mixed])),
              "mixed_batch_accuracy": float(np.mean(
                  [np.mean(with_batch_stats(x_test[i]).argmax(1) == y_test[i]) for i in mixed]))}
    for digit in range(10):
        x = x_test[y_test == digit][:60]
        result["shift"].append(shift(x))
        result["moving_accuracy"].append(_accuracy(model, x, np.full(len(x), digit)))
        result["batch_accuracy"].append(float(np.mean(with_batch_stats(x).argmax(1) == digit)))
    return {k: np.array(v) if isinstance(v, list) else v for k, v in result.items()}


def run(out_dir, small=False, seed=0, verbose=True):
    """Train, measure, print, plot; returns the numbers behind every figure."""
    settings = SETTINGS[bool(small)]
    out, files = prepare(out_dir), []
    data = load_flat_digits()
    numbers = {"settings": settings}
    models = {}
    for norm in (None, "bn"):
        key = "bn" if norm else "plain"
        models[key], numbers[key] = train(norm, data, settings["steps"], settings["rate"],
                                          eval_every=settings["eval_every"], seed=seed)
    plain, bn = numbers["plain"], numbers["bn"]
    say(verbose, f"MLP 784-100-100-100-10, sigmoid, SGD lr {settings['rate']}, batch 60, "
                 f"{settings['steps']} steps on {len(data[0][0])} digits:",
        f"  test accuracy: without BN {plain['final_accuracy']:.1%}, with BN "
        f"{bn['final_accuracy']:.1%}",
        f"  sigmoid inputs inside [-2, 2] (all hidden layers, test set, end of training): "
        f"without BN {plain['in_range'][-1]:.1%}, with BN {bn['in_range'][-1]:.1%}",
        f"  last hidden layer, per-unit over a training batch: mean |mean| / mean std "
        f"without BN {plain['batch_mean'].mean():.2f} / {plain['batch_std'].mean():.2f}, with BN "
        f"{bn['batch_mean'].mean():.2f} / {bn['batch_std'].mean():.2f}")
    numbers["rates"] = np.array(settings["rates"])
    numbers["sweep"] = learning_rate_sweep(data, settings["rates"], settings["sweep_steps"], seed)
    say(verbose, f"Largest learning rate that still trains (test accuracy > {TRAINS_AT:.0%} "
                 f"after {settings['sweep_steps']} steps): without BN "
                 f"{numbers['sweep']['plain']['largest_rate']}, with BN "
                 f"{numbers['sweep']['bn']['largest_rate']}")
    tiny_rate = settings["rate"] * TINY_BATCH / 60  # the learning rate scaled with the batch
    numbers["small_batch"] = tiny = small_batch(data, settings["tiny_steps"],
                                                settings["tiny_evals"], tiny_rate, seed)
    say(verbose, f"Batch size 2 (lr {tiny_rate:.3f}, {settings['tiny_steps']} steps), mean test "
                 f"accuracy over the second half: BatchNormalization {tiny['bn']['late_mean']:.1%}"
                 f", GroupNormalization {tiny['gn']['late_mean']:.1%}, LayerNormalization "
                 f"{tiny['ln']['late_mean']:.1%}; BN maps {tiny['pair_near_pm1']:.0%} of a "
                 "pair's normalized values to about +-1")
    numbers["one_class"] = skew = one_class_batches(models["bn"], data, seed)
    say(verbose, f"One-class batches of 60 (BN net): batch-mean shift {skew['shift'].mean():.2f}"
                 f" moving std (mixed batches {skew['mixed_shift']:.2f}); accuracy with moving "
                 f"statistics {skew['moving_accuracy'].mean():.1%}, with the batch's own "
                 f"statistics {skew['batch_accuracy'].mean():.1%} (mixed batches "
                 f"{skew['mixed_batch_accuracy']:.1%})")
    if plotting(verbose):
        for name, draw in (("batchnorm_figure1.png", _plot_figure1),
                           ("batchnorm_learning_rates.png", _plot_rates),
                           ("batchnorm_small_batch.png", _plot_small_batch),
                           ("batchnorm_one_class.png", _plot_one_class)):
            save(draw(numbers), out / name, files)
    write_json(numbers, out / "batchnorm.json", files)
    numbers["files"] = files
    say(verbose, *(f"wrote {f}" for f in files))
    return numbers


# ----- figures ---------------------------------------------------------------------------
def _plot_figure1(numbers):
    from ..viz import new_figure

    figure = new_figure(14, 3.6)
    plain, bn = numbers["plain"], numbers["bn"]
    axis = figure.add_subplot(1, 4, 1)
    axis.plot(plain["step"], plain["accuracy"], "--", label="without BN")
    axis.plot(bn["step"], bn["accuracy"], label="with BN")
    axis.set(xlabel="training step", ylabel="test accuracy", title="(a) test accuracy")
    axis.legend()
    axis.grid(alpha=0.3)
    low = min(plain["percentiles"].min(), bn["percentiles"].min(), -2.2)
    high = max(plain["percentiles"].max(), bn["percentiles"].max(), 2.2)
    for index, (log, title) in enumerate(((plain, "(b) without BN"), (bn, "(c) with BN"))):
        axis = figure.add_subplot(1, 4, index + 2)
        axis.set_ylim(low - 0.2, high + 0.2)
        for column, q in enumerate((15, 50, 85)):
            axis.plot(log["step"], log["percentiles"][:, column], label=f"{q}th percentile")
        axis.axhspan(-2, 2, color="gray", alpha=0.1)
        axis.set(xlabel="training step", ylabel="sigmoid input (last hidden layer, unit 0)",
                 title=title)
        axis.legend(fontsize=7, framealpha=0.6)
    axis = figure.add_subplot(1, 4, 4)
    axis.plot(plain["step"], plain["in_range"], "--", label="without BN")
    axis.plot(bn["step"], bn["in_range"], label="with BN")
    axis.set(xlabel="training step", ylabel="fraction in [-2, 2]",
             title="(d) sigmoid inputs in [-2, 2]")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.suptitle("Ioffe & Szegedy (2015) Figure 1 on 4,000 digits: MLP with 3 x 100 "
                    "sigmoid units, batch 60", fontsize=10)
    return figure


def _plot_rates(numbers):
    from ..viz import new_figure

    figure = new_figure(6, 4)
    axis = figure.add_subplot(1, 1, 1)
    for key, label, style in (("plain", "without BN", "--o"), ("bn", "with BN", "-o")):
        sweep = numbers["sweep"][key]
        axis.plot(numbers["rates"], sweep["accuracy"], style,
                  label=f"{label} (largest: {sweep['largest_rate']})")
    axis.axhline(TRAINS_AT, color="gray", lw=0.8, ls=":")
    axis.set_xscale("log")
    axis.set_xticks(numbers["rates"], [f"{r:g}" for r in numbers["rates"]])
    axis.set(xlabel="SGD learning rate", ylabel="test accuracy",
             title=f"After {numbers['settings']['sweep_steps']} steps of batch 60")
    axis.legend()
    axis.grid(alpha=0.3)
    return figure


def _plot_small_batch(numbers):
    from ..viz import new_figure

    tiny = numbers["small_batch"]
    figure = new_figure(6, 4)
    axis = figure.add_subplot(1, 1, 1)
    for key, label in (("bn", "BatchNormalization"), ("gn", "GroupNormalization(10)"),
                       ("ln", "LayerNormalization")):
        axis.plot(tiny["step"], tiny[key]["accuracy"], "-o", ms=3,
                  label=f"{label}: {tiny[key]['late_mean']:.1%}")
    axis.set(xlabel="training step (2 images each)", ylabel="test accuracy (inference mode)",
             title="Batch size 2: statistics of two samples")
    axis.legend(title="mean over the second half", fontsize=8)
    axis.grid(alpha=0.3)
    return figure


def _plot_one_class(numbers):
    from ..viz import new_figure

    skew = numbers["one_class"]
    figure = new_figure(11, 3.8)
    axis = figure.add_subplot(1, 2, 1)
    digits = skew["class"]
    axis.bar(digits - 0.2, skew["moving_accuracy"], 0.4, label="moving statistics (inference)")
    axis.bar(digits + 0.2, skew["batch_accuracy"], 0.4, label="the batch's own statistics")
    axis.axhline(skew["mixed_batch_accuracy"], color="gray", ls=":",
                 label="own statistics, mixed batches")
    axis.set_xticks(digits)
    axis.set(xlabel="the one class in the batch", ylabel="accuracy",
             title="Batches of 60 digits of one class")
    axis.legend(fontsize=7)
    axis = figure.add_subplot(1, 2, 2)
    axis.bar(digits, skew["shift"], color="tab:red")
    axis.axhline(skew["mixed_shift"], color="gray", ls=":", label="mixed batches")
    axis.set_xticks(digits)
    axis.set(xlabel="the one class in the batch",
             ylabel="mean |batch mean - moving mean| / moving std",
             title="First BN layer: how far the batch mean moves")
    axis.legend(fontsize=8)
    return figure
