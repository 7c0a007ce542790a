"""Training programs that tests/distribution runs under ``mpiexec -n 2`` and alone.

    python programs.py CASE OUT_DIR [ARGS]

Each is an ordinary shenjing script with the two DataParallel lines at the top; a rank writes
what it ended with to OUT_DIR/CASE-<processes>-r<rank>.npz (weights as w0, w1, ..., the
history's lists, predictions), which the tests compare with the run of one process.
"""

import itertools
import json
import os
import sys

import numpy as np

import shenjing as sj
from shenjing import layers as L

dp = sj.distribution.DataParallel()
sj.distribution.set_distribution(dp)


def save(out, case, model, history=None, **arrays):
    named = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    for key, values in (history or {}).items():
        named[f"h_{key}"] = np.asarray(values, np.float64)
    np.savez(os.path.join(out, f"{case}-{dp.size}-r{dp.rank}.npz"), **named, **arrays)


def data(n, shape, classes, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)), rng.integers(0, classes, n)


# ----- models ----------------------------------------------------------------------------------
def cnn(dtype="float64", synchronized=True):
    sj.utils.set_random_seed(0)
    model = sj.Sequential([
        L.Input((8, 8, 3), dtype=dtype), L.Conv2D(6, 3, use_bias=False, dtype=dtype),
        L.BatchNormalization(synchronized=synchronized, dtype=dtype),
        L.Activation("relu", dtype=dtype), L.MaxPooling2D(dtype=dtype),
        L.Flatten(dtype=dtype), L.Dense(4, dtype=dtype)])
    model.compile(optimizer=sj.optimizers.Adam(0.01),
                  loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def lstm(dtype="float64"):
    sj.utils.set_random_seed(0)
    model = sj.Sequential([L.Input((5, 3), dtype=dtype), L.LSTM(8, dtype=dtype),
                           L.Dense(1, dtype=dtype)])
    model.compile(optimizer=sj.optimizers.SGD(0.05, momentum=0.9), loss="mse",
                  metrics=["mae"])
    return model


def masked_lstm(dtype="float64"):
    sj.utils.set_random_seed(0)
    model = sj.Sequential([L.Input((7,), dtype="int32"),
                           L.Embedding(12, 4, mask_zero=True, dtype=dtype),
                           L.LSTM(6, return_sequences=True, dtype=dtype),
                           L.Dense(12, dtype=dtype)])
    loss = sj.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    model.compile(optimizer=sj.optimizers.Adam(0.02), loss=loss, metrics=["accuracy"])
    return model


def padded_sequences(n, steps=7, seed=3):
    """Token ids 1..11 with a padded (0) tail of random length per sequence; the targets are
    the next token, 0 (ignored by the loss) in the padding."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, 12, (n, steps))
    tokens[np.arange(steps) >= rng.integers(1, steps + 1, n)[:, None]] = 0
    return tokens, np.where(tokens > 0, tokens % 11 + 1, 0)


def fit_and_save(out, case, model, x, y, batch_size, epochs=2, shuffle=True, **kwargs):
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=shuffle, verbose=0,
                        **kwargs)
    after_fit = np.concatenate([w.ravel() for w in model.get_weights()]).astype(np.float64)
    logs = model.train_on_batch(x[:12], y[:12], return_dict=True)  # one more step, batch 12
    predictions = model.predict(x, batch_size=7, verbose=0)
    evaluated = model.evaluate(x, y, batch_size=9, verbose=0, return_dict=True)
    save(out, case, model, history.history, predictions=predictions, after_fit=after_fit,
         evaluated=np.array(list(evaluated.values())), last=np.array(list(logs.values())))


# ----- cases -----------------------------------------------------------------------------------
def equivalence(out):
    """k steps of one global batch: the same weights, logs and outputs as one process."""
    x, y = data(40, (8, 8, 3), 4)
    fit_and_save(out, "cnn_sync", cnn(), x, y, 16, validation_split=0.2)
    fit_and_save(out, "cnn_sync_uneven", cnn(), x[:37], y[:37], 10)  # slices 5/5 ... 4/3
    fit_and_save(out, "cnn_sync_stand_in", cnn(), x[:21], y[:21], 10)  # a last batch of 1
    fit_and_save(out, "one_sample", cnn(), x[:1], y[:1], 4)  # rank 1 never holds a sample
    fit_and_save(out, "cnn_float32", cnn("float32"), x.astype(np.float32), y, 16)
    fit_and_save(out, "cnn_local", cnn(synchronized=False), x, y, 16, shuffle=False)
    xs, _ = data(30, (5, 3), 2, seed=2)
    fit_and_save(out, "lstm", lstm(), xs, xs.sum(axis=(1, 2))[:, None] / 5, 8)
    # a masked loss (ignore_class): the mean over the global batch's counted steps
    fit_and_save(out, "masked_lstm", masked_lstm(), *padded_sequences(29), 8)
    if dp.size == 1:
        local_statistics_reference(out, x, y, 16, ranks=2)
    model = cnn()  # a generator yielding the same batches on every rank, each rank a slice
    history = model.fit(batches(x[:37], y[:37], 10), epochs=2, verbose=0)
    save(out, "generator", model, history.history)
    model = cnn()  # no dropout: rank 0's stream goes as one process's; rank 1's is its own
    model.fit(x[:16], y[:16], batch_size=8, epochs=1, verbose=0)
    save(out, "streams", model, draws=sj.utils.get_rng().random(4))


def batches(x, y, size):
    for start in range(0, len(x), size):
        yield x[start:start + size], y[start:start + size]


def local_statistics_reference(out, x, y, batch_size, ranks, epochs=2):
    """What R ranks with unsynchronized batch norm compute, in one process, without
    shenjing.distribution: each part of a batch normalized with its own statistics, the loss
    sum_r (b_r / B) loss_r, the moving statistics averaged over the parts (weighted b_r / B)."""
    model = cnn(synchronized=False)
    bn = model.layers[1]  # Conv2D, BatchNormalization, ...
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            model.zero_grad()
            before = [bn.moving_mean.data.copy(), bn.moving_variance.data.copy()]
            after = [np.zeros_like(a) for a in before]
            for lo, hi in _parts(len(xb), ranks):
                share = (hi - lo) / len(xb)
                bn.moving_mean.data[...], bn.moving_variance.data[...] = before
                loss = model.compute_loss(y=yb[lo:hi], y_pred=model(xb[lo:hi], training=True))
                (loss * share).backward()
                after[0] += share * bn.moving_mean.data
                after[1] += share * bn.moving_variance.data
            bn.moving_mean.data[...], bn.moving_variance.data[...] = after
            model.optimizer.apply([v.grad for v in model.trainable_weights],
                                  model.trainable_weights)
    save(out, "cnn_local_reference", model, after_fit=np.concatenate(
        [w.ravel() for w in model.get_weights()]))


def _parts(n, ranks):
    base, extra = divmod(n, ranks)
    bounds = np.cumsum([0] + [base + (r < extra) for r in range(ranks)])
    return list(itertools.pairwise(bounds))


def files(out):
    """Only rank 0 prints and writes: each rank is given a folder of its own."""
    folder = os.path.join(out, f"r{dp.rank}")
    os.makedirs(folder, exist_ok=True)  # CSVLogger, as Keras's, writes into a folder that exists
    x, y = data(32, (8, 8, 3), 4)
    model = cnn()
    callbacks = [sj.callbacks.ModelCheckpoint(os.path.join(folder, "ckpt-{epoch}.shenjing")),
                 sj.callbacks.CSVLogger(os.path.join(folder, "log.csv")),
                 sj.callbacks.TensorBoard(os.path.join(folder, "tb"))]
    model.fit(x, y, batch_size=8, epochs=2, verbose=2, callbacks=callbacks,
              validation_data=(x[:8], y[:8]))
    model.save(os.path.join(folder, "final.shenjing"))
    model.save_weights(os.path.join(folder, "final.weights.h5"))


class StopOnOneRank(sj.callbacks.Callback):
    """Asks to stop at the end of epoch `epoch`, on one rank only."""

    def __init__(self, rank, epoch):
        super().__init__()
        self.rank, self.epoch = rank, epoch

    def on_epoch_end(self, epoch, logs=None):
        if dp.rank == self.rank and epoch == self.epoch:
            self.model.stop_training = True


def early_stopping(out):
    """EarlyStopping decides on the global val_loss: every rank stops in the same epoch, the
    one a single process stops in; a stop asked on one rank stops every rank."""
    x, y = data(40, (8, 8, 3), 4)
    model = cnn()
    model.optimizer.learning_rate = 0.3  # the validation loss soon rises
    stop = sj.callbacks.EarlyStopping(monitor="val_loss", patience=1)
    history = model.fit(x[:24], y[:24], batch_size=8, epochs=12, verbose=0, callbacks=[stop],
                        validation_data=(x[24:], y[24:]))
    one_rank = cnn().fit(x, y, batch_size=8, epochs=6, verbose=0,
                         callbacks=[StopOnOneRank(rank=dp.size - 1, epoch=2)])
    save(out, "early_stopping", model, history.history,
         epochs=np.array([len(history.history["loss"]), len(one_rank.history["loss"])]))


def resume(out, phase):
    """A checkpoint written in the middle of an epoch under one number of processes, resumed
    under another: `train` stops after the checkpoint at batch 9 (epoch 2, batch 3), `resume`
    goes on to epoch 4; `reference` trains the 4 epochs in one go."""
    x, y = data(48, (8, 8, 3), 4)
    path = os.path.join(out, "mid.shenjing")
    if phase == "train":
        model = cnn()
        stop = sj.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: setattr(
            model, "stop_training", model.optimizer.iterations == 9))
        model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
            stop, sj.callbacks.ModelCheckpoint(path, save_freq=9)])
    elif phase == "resume":
        model = sj.load_model(path)
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0,
                            initial_epoch=model.completed_epochs,
                            callbacks=[sj.callbacks.ModelCheckpoint(path, save_freq=9)])
        save(out, "resumed", model, history.history)
    else:
        model = cnn()
        history = model.fit(x, y, batch_size=8, epochs=4, verbose=0)
        save(out, "reference", model, history.history)


def backup(out, phase):
    """BackupAndRestore across a failure: `crash` fails on rank 1 in the middle of epoch 3
    (the job ends; the backup of epoch 2 stays), `restart` runs the same fit again, which goes
    on from the backup; the result is resume()'s `reference`, 4 epochs in one go."""
    x, y = data(48, (8, 8, 3), 4)
    model = cnn()

    def fail(batch, logs):
        if phase == "crash" and dp.rank == 1 and model.optimizer.iterations == 15:
            raise RuntimeError("rank 1 lost its data (simulated)")

    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[
        sj.callbacks.LambdaCallback(on_train_batch_end=fail),
        sj.callbacks.BackupAndRestore(os.path.join(out, "backup"))])
    save(out, "restarted", model, history.history)


def fails(out, how):
    """One rank fails: the job must end, with that rank's error printed."""
    x, y = data(32, (8, 8, 3), 4)
    model = cnn()
    if how == "model" and dp.rank == 1:
        model = sj.Sequential([L.Input((8, 8, 3)), L.Flatten(), L.Dense(5)])
        model.compile(optimizer="sgd", loss="mse")
    if how == "data" and dp.rank == 1:
        x, y = x[:30], y[:30]
    if how == "shard":  # a shard each, as for Horovod: DataParallel slices the batches itself
        x, y = data(32, (8, 8, 3), 4, seed=10 + dp.rank)

    def fail(epoch, logs):
        if how == "raise" and dp.rank == 1 and epoch == 1:
            raise OSError("disk full on rank 1 (simulated)")

    data_args = {"x": x, "y": y, "batch_size": 8}
    if how == "generator":  # seeded by rank: the same batch sizes, other samples
        data_args = {"x": batches(*data(32, (8, 8, 3), 4, seed=10 + dp.rank), 8)}
    model.fit(**data_args, epochs=4, verbose=0,
              callbacks=[sj.callbacks.LambdaCallback(on_epoch_end=fail)])
    print(json.dumps({"rank": dp.rank, "finished": True}))


if __name__ == "__main__":
    case, out, *rest = sys.argv[1:]
    {"equivalence": equivalence, "files": files, "early_stopping": early_stopping,
     "resume": resume, "backup": backup, "fails": fails}[case](out, *rest)
