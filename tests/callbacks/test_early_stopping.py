"""EarlyStopping on real training: stop epoch, restored weights, baseline, warm-up, warnings."""

import numpy as np
import pytest

from shenjing.callbacks import EarlyStopping, LearningRateScheduler
from tests.callbacks.common import ScriptedLogs, dense_model, regression_data


def fit(values, epochs=None, monitor="val_loss", **kwargs):
    x, y = regression_data()
    model = dense_model()
    script = ScriptedLogs(monitor, values)
    stopper = EarlyStopping(monitor=monitor, **kwargs)
    history = model.fit(x, y, epochs=epochs or len(values), batch_size=16, verbose=0,
                        callbacks=[script, stopper])
    return model, script, stopper, history


def assert_weights_equal(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def test_stops_after_patience_and_restores_best_weights():
    # best 0.8 at epoch 1; epochs 2 and 3 do not improve -> stop at epoch 3 (patience 2)
    model, script, stopper, history = fit([1.0, 0.8, 0.9, 0.85, 0.7, 0.6], patience=2,
                                          restore_best_weights=True)
    assert len(history.history["loss"]) == 4
    assert history.history["val_loss"] == [1.0, 0.8, 0.9, 0.85]
    assert (stopper.stopped_epoch, stopper.best_epoch, stopper.best) == (3, 1, 0.8)
    assert model.stop_training
    assert_weights_equal(model.get_weights(), script.weights[1])
    assert not np.array_equal(script.weights[1][0], script.weights[3][0])  # training moved them


def test_restores_best_weights_when_epochs_run_out():
    model, script, stopper, history = fit([1.0, 0.5, 0.6, 0.7], patience=5,
                                          restore_best_weights=True)
    assert len(history.history["loss"]) == 4 and stopper.stopped_epoch == 0
    assert_weights_equal(model.get_weights(), script.weights[1])


def test_without_restore_keeps_last_weights():
    model, script, _, history = fit([1.0, 0.8, 0.9, 0.85, 0.7], patience=2)
    assert len(history.history["loss"]) == 4
    assert_weights_equal(model.get_weights(), script.weights[3])


def test_patience_zero_stops_at_first_non_improvement():
    _, _, stopper, history = fit([3.0, 2.0, 2.0, 1.0])
    assert len(history.history["loss"]) == 3 and stopper.stopped_epoch == 2


def test_min_delta_counts_small_gains_as_none():
    # 0.95 and 0.92 are within min_delta 0.1 of the best 1.0: no improvement
    _, _, stopper, history = fit([1.0, 0.95, 0.92, 0.5], patience=2, min_delta=0.1)
    assert len(history.history["loss"]) == 3 and stopper.best == 1.0


def test_max_mode_is_picked_for_accuracy():
    _, _, stopper, history = fit([0.5, 0.7, 0.6, 0.65, 0.9], monitor="val_accuracy",
                                 patience=1)
    assert stopper.mode == "max"
    assert len(history.history["loss"]) == 3 and stopper.best == 0.7


def test_baseline_not_beaten_keeps_counting():
    # without the baseline, epoch 0 resets the count and training stops at epoch 2
    _, _, _, history = fit([0.9, 0.9, 0.9, 0.9], patience=2)
    assert len(history.history["loss"]) == 3
    _, _, _, history = fit([0.9, 0.9, 0.9, 0.9], patience=2, baseline=0.5)
    assert len(history.history["loss"]) == 2


def test_start_from_epoch_skips_warm_up():
    _, _, stopper, history = fit([0.5, 0.6, 0.7, 0.8, 0.9], start_from_epoch=2)
    assert stopper.best == 0.7 and len(history.history["loss"]) == 4


def test_verbose_messages(capsys):
    fit([1.0, 0.8, 0.9, 0.85], patience=1, verbose=1, restore_best_weights=True)
    out = capsys.readouterr().out
    assert out == ("Epoch 3: early stopping\n"
                   "Restoring model weights from the end of the best epoch: 2.\n")


def test_missing_monitor_warns_and_trains_on():
    x, y = regression_data()
    model = dense_model()
    with pytest.warns(UserWarning, match="'val_loss', which is not in the logs. Available "
                                         "metrics are: loss"):
        history = model.fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])
    assert len(history.history["loss"]) == 2


def test_bad_mode_raises():
    with pytest.raises(ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max', "
                                         "got 'maximum'"):
        EarlyStopping(mode="maximum")


def test_real_val_loss_rise_stops_and_best_weights_evaluate_to_best_val_loss():
    # a learning rate far past the stable range from epoch 3 on makes the val loss rise
    x, y = regression_data(96)
    model = dense_model()
    schedule = LearningRateScheduler(lambda epoch, lr: 0.05 if epoch < 3 else 2.0)
    stopper = EarlyStopping(patience=1, restore_best_weights=True)
    history = model.fit(x[:64], y[:64], epochs=20, batch_size=16, verbose=0, shuffle=False,
                        validation_data=(x[64:], y[64:]), callbacks=[schedule, stopper])
    val = history.history["val_loss"]
    assert 3 <= len(val) < 20 and val[-1] > min(val)
    assert stopper.best_epoch == int(np.argmin(val))
    np.testing.assert_allclose(model.evaluate(x[64:], y[64:], verbose=0), min(val), rtol=1e-6)
