"""CSVLogger file contents, TerminateOnNaN on a diverging run, LambdaCallback hooks."""

import math

import numpy as np
import pytest

from shenjing.callbacks import Callback, CSVLogger, LambdaCallback, TerminateOnNaN
from tests.callbacks.common import dense_model, regression_data


def test_csv_logger_writes_history(tmp_path):
    x, y = regression_data(80)
    model = dense_model()
    path = tmp_path / "log.csv"
    history = model.fit(x[:64], y[:64], epochs=3, verbose=0, validation_data=(x[64:], y[64:]),
                        callbacks=[CSVLogger(path)])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch,loss,val_loss"
    assert len(lines) == 4
    for epoch, line in enumerate(lines[1:]):
        cells = line.split(",")
        assert int(cells[0]) == epoch
        assert float(cells[1]) == history.history["loss"][epoch]  # full precision (repr)
        assert float(cells[2]) == history.history["val_loss"][epoch]


def test_csv_logger_append_separator_and_missing_val_columns(tmp_path):
    x, y = regression_data()
    path = tmp_path / "log.tsv"
    model = dense_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path, separator="\t")])
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0,
              callbacks=[CSVLogger(path, separator="\t", append=True)])
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    # without validation, Keras still adds val_ columns, filled with NA
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]  # the appended run adds epoch 2 only
    assert all(row[2] == "NA" for row in rows[1:])
    CSVLogger(path).on_train_begin()  # append=False starts the file afresh
    assert path.read_text() == ""


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NaN on purpose
def test_terminate_on_nan_stops_within_the_first_epoch(capsys):
    x, y = regression_data()
    y[5] = np.inf  # the batch holding sample 5 has an infinite loss
    model = dense_model()
    batches = []
    record = LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                        callbacks=[TerminateOnNaN(), record])
    assert batches == [0]  # the callbacks after it still see that batch, then fit stops
    assert len(history.history["loss"]) == 1 and not math.isfinite(history.history["loss"][0])
    assert capsys.readouterr().out == "Batch 0: Invalid loss, terminating training\n"


def test_terminate_on_nan_from_divergence_and_raise_error():
    x, y = regression_data()
    model = dense_model(learning_rate=50.0)  # far past the stable range: the loss overflows
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=50, batch_size=8, verbose=0,
                            callbacks=[TerminateOnNaN()])
    assert len(history.history["loss"]) < 50
    assert not math.isfinite(history.history["loss"][-1])
    assert all(math.isfinite(v) for v in history.history["loss"][:-1])
    y[0] = np.nan
    with pytest.raises(RuntimeError, match="TerminateOnNaN: NaN or Inf loss at batch 0"):
        dense_model().fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0,
                          callbacks=[TerminateOnNaN(raise_error=True)])


def test_lambda_callback_hooks_in_order():
    x, y = regression_data(32)
    calls = []
    callback = LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch_begin {epoch}"),
        on_train_batch_end=lambda batch, logs: calls.append(f"batch_end {batch} {sorted(logs)}"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: calls.append("train_end"),
    )
    dense_model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[callback])
    assert calls == ["train_begin",
                     "epoch_begin 0", "batch_end 0 ['loss']", "batch_end 1 ['loss']",
                     "epoch_end 0 ['loss']",
                     "epoch_begin 1", "batch_end 0 ['loss']", "batch_end 1 ['loss']",
                     "epoch_end 1 ['loss']", "train_end"]


def test_on_batch_end_is_the_old_name_of_on_train_batch_end():
    seen = []

    class Old(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    x, y = regression_data(32)
    dense_model().fit(x, y, epochs=1, batch_size=8, verbose=0,
                      callbacks=[Old(), LambdaCallback(on_batch_begin=lambda b, logs: seen.append(-b))])
    assert seen == [0, 0, -1, 1, -2, 2, -3, 3]


def test_lambda_callback_rejects_unknown_hooks():
    with pytest.raises(ValueError, match="'on_epoch_finish' is not a callback hook"):
        LambdaCallback(on_epoch_finish=print)
