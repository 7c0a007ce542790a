"""LearningRateScheduler and ReduceLROnPlateau on real training: the rate each epoch used."""

import numpy as np
import pytest

from shenjing import optimizers
from shenjing.callbacks import LambdaCallback, LearningRateScheduler, ReduceLROnPlateau
from tests.callbacks.common import ScriptedLogs, dense_model, regression_data


def rates_used(model):
    """A callback recording the optimizer's rate at each epoch's start (after the schedulers)."""
    rates = []
    return rates, LambdaCallback(
        on_epoch_begin=lambda epoch, logs: rates.append(model.optimizer.learning_rate))


def test_scheduler_sets_rate_per_epoch_and_logs_it():
    x, y = regression_data()
    model = dense_model(learning_rate=0.1)
    rates, recorder = rates_used(model)
    schedule = LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[schedule, recorder])
    assert rates == [0.1, 0.05, 0.025, 0.0125]
    assert history.history["learning_rate"] == rates


def test_scheduler_rate_reaches_the_update():
    # two models from the same seed: one trained at a scheduled 0.02, one built with 0.02
    x, y = regression_data()
    scheduled, fixed = dense_model(learning_rate=0.3), dense_model(learning_rate=0.02)
    scheduled.fit(x, y, epochs=2, verbose=0, shuffle=False,
                  callbacks=[LearningRateScheduler(lambda epoch: 0.02)])
    fixed.fit(x, y, epochs=2, verbose=0, shuffle=False)
    for a, b in zip(scheduled.get_weights(), fixed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_scheduler_verbose_and_bad_return(capsys):
    x, y = regression_data()
    model = dense_model()
    model.fit(x, y, epochs=1, verbose=0,
              callbacks=[LearningRateScheduler(lambda epoch, lr: 0.01, verbose=1)])
    assert capsys.readouterr().out == "Epoch 1: LearningRateScheduler setting learning rate " \
                                      "to 0.01.\n"
    with pytest.raises(TypeError, match="the schedule must return a float, got 'fast'"):
        model.fit(x, y, epochs=1, verbose=0, initial_epoch=0,
                  callbacks=[LearningRateScheduler(lambda epoch, lr: "fast")])


def test_reduce_on_plateau_after_patience():
    # a flat val_loss: with patience 2 the rate halves every second epoch after the first
    x, y = regression_data()
    model = dense_model(learning_rate=0.1)
    rates, recorder = rates_used(model)
    plateau = ReduceLROnPlateau(factor=0.5, patience=2)
    history = model.fit(x, y, epochs=7, verbose=0,
                        callbacks=[ScriptedLogs("val_loss", [1.0] * 7), plateau, recorder])
    assert rates == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    # logged as Keras 3 does: the rate of the epoch that just ran, before any reduction
    assert history.history["learning_rate"] == rates
    assert model.optimizer.learning_rate == 0.0125


def test_reduce_on_plateau_improvement_resets_wait_and_min_lr_bounds():
    x, y = regression_data()
    model = dense_model(learning_rate=0.1)
    plateau = ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.005)
    values = [1.0, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4]
    history = model.fit(x, y, epochs=7, verbose=0,
                        callbacks=[ScriptedLogs("val_loss", values), plateau])
    # epoch 2: no gain -> 0.01; epoch 3 improves; epoch 4 -> max(0.001, 0.005); then at min_lr
    assert np.allclose(history.history["learning_rate"],
                       [0.1, 0.1, 0.1, 0.01, 0.01, 0.005, 0.005])


def test_reduce_on_plateau_cooldown(capsys):
    x, y = regression_data()
    model = dense_model(learning_rate=1.0)
    plateau = ReduceLROnPlateau(monitor="loss_scripted", factor=0.5, patience=1, cooldown=2,
                                verbose=1, min_delta=0.0)
    history = model.fit(x, y, epochs=7, verbose=0,
                        callbacks=[ScriptedLogs("loss_scripted", [1.0] * 7), plateau])
    # as in Keras, the cooldown counter drops before the check: with cooldown 2 and patience 1
    # a reduction at epoch 1 leaves epoch 2 idle, and epoch 3 counts and reduces again
    assert history.history["learning_rate"] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125]
    assert capsys.readouterr().out == "".join(
        f"Epoch {epoch}: ReduceLROnPlateau reducing learning rate to {lr}.\n"
        for epoch, lr in [(2, 0.5), (4, 0.25), (6, 0.125)])


def test_reduce_on_plateau_rejects_factor_and_schedules():
    with pytest.raises(ValueError, match="factor must be < 1.0 .* got 1.5"):
        ReduceLROnPlateau(factor=1.5)
    x, y = regression_data()
    model = dense_model()
    model.compile(optimizer=optimizers.SGD(lambda step: 0.01), loss="mse")
    with pytest.raises(TypeError, match="learning rate is a schedule"):
        model.fit(x, y, epochs=3, verbose=0,
                  callbacks=[ScriptedLogs("val_loss", [1.0] * 3), ReduceLROnPlateau(patience=1)])
