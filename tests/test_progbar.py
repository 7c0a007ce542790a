"""Progress output: Progbar lines under a fake clock, and what fit prints at each verbosity."""

import io
import re
import types

import numpy as np
import pytest

from shenjing import progbar
from shenjing.callbacks import ProgbarLogger
from shenjing.progbar import Progbar, _format_eta, _format_rate, _format_value
from tests.callbacks.common import dense_model, regression_data

ANSI = re.compile(r"\x1b\[[0-9;]*m")
BAR = "━" * 20


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when told: clock.now += seconds."""
    fake = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(progbar, "time", types.SimpleNamespace(time=lambda: fake.now))
    return fake


def run_bar(clock, verbose, steps=40, step_time=0.08, **kwargs):
    bar = Progbar(steps, verbose=verbose, **kwargs)
    for step in range(1, steps + 1):
        clock.now += step_time
        bar.update(step, [("accuracy", 0.91), ("loss", 0.31)], finalize=False)
    bar.update(steps, [("accuracy", 0.91), ("loss", 0.31)], finalize=True)


def test_formats():
    assert [_format_eta(s) for s in (0.4, 59.9, 125, 3700)] == ["0s", "59s", "2:05", "1:01:40"]
    assert [_format_rate(s, "step") for s in (0, 0.0005, 0.08, 2.0)] == \
        ["0s/step", "500us/step", "80ms/step", "2s/step"]
    assert [_format_value(v) for v in (0.31, -2.5, 1e-4, 0.0, np.float32(3), "x")] == \
        ["0.3100", "-2.5000", "1.0000e-04", "0.0000e+00", "3.0000", "x"]


def test_verbose_2_one_line_when_done(clock, capsys):
    run_bar(clock, verbose=2)
    # elapsed 40 * 0.08 = 3.2 s; per step from step 2 on: 80 ms
    assert capsys.readouterr().out == \
        "40/40 - 3s - 80ms/step - accuracy: 0.9100 - loss: 0.3100\n"


def test_verbose_1_not_a_terminal_prints_the_final_line_only(clock, capsys):
    run_bar(clock, verbose=1)
    assert capsys.readouterr().out == \
        f"40/40 {BAR} 3s 80ms/step - accuracy: 0.9100 - loss: 0.3100\n"


def test_verbose_1_terminal_redraws_in_place(clock, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    run_bar(clock, verbose=1, steps=4, step_time=1.5)
    frames = ANSI.sub("", terminal.getvalue()).split("\r")
    assert frames[0] == ""
    # ETA = seconds per step * steps left; per step is measured without the first step
    assert frames[1:] == [
        f"1/4 {'━' * 5 + '━' * 15} 4s 2s/step - accuracy: 0.9100 - loss: 0.3100",
        f"2/4 {BAR} 3s 2s/step - accuracy: 0.9100 - loss: 0.3100",
        f"3/4 {BAR} 1s 2s/step - accuracy: 0.9100 - loss: 0.3100",
        f"4/4 {BAR} 0s 2s/step - accuracy: 0.9100 - loss: 0.3100",
        f"4/4 {BAR} 6s 2s/step - accuracy: 0.9100 - loss: 0.3100\n",
    ]
    # the done part is green, the rest grey, the count bold
    assert "\x1b[1m2/4\x1b[0m \x1b[32m" + "━" * 10 + "\x1b[0m\x1b[37m" + "━" * 10 in \
        terminal.getvalue()


def test_terminal_frames_fit_the_width(clock, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr(progbar.shutil, "get_terminal_size", lambda: types.SimpleNamespace(
        columns=40))
    bar = Progbar(4, verbose=1)
    clock.now += 0.1
    bar.update(1, [("loss", 0.5), ("accuracy", 0.5)])
    clock.now += 0.1
    bar.update(2, [], finalize=True)
    first, last = ANSI.sub("", terminal.getvalue()).split("\r")[1:]
    # cut at 39 columns: a line that wrapped could not be redrawn by \r
    assert first == f"1/4 {'━' * 20} 0s 100ms/step "
    # the final line is whole
    assert last == f"2/4 {'━' * 20} 0s 100ms/step - loss: 0.5000 - accuracy: 0.5000\n"



def test_print_msg_wipes_an_open_bar_line(clock, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    bar = Progbar(4, verbose=1, unit_name="batch")
    clock.now += 0.1
    bar.update(1)
    progbar.print_msg("note")
    clock.now += 0.1
    bar.update(4)
    text = ANSI.sub("", terminal.getvalue())
    frame = f"1/4 {'━' * 20} 0s 100ms/batch"
    # 3 steps in 0.1 s after the first: 33 ms each; one space pads over the longer frame
    assert text == ("\r" + frame + "\r" + " " * len(frame) + "\rnote\n"
                    f"\r4/4 {BAR} 0s 33ms/batch \n")
    progbar.print_msg("after")  # nothing open any more: a plain line
    assert terminal.getvalue().endswith("\nafter\n")


def test_averaging_and_stateful_metrics(clock, capsys):
    # averaged by steps as Keras does: 1.0 for step 1, 3.0 for steps 2-3 -> (1 + 2 * 3) / 3
    for kwargs, shown in [({}, "2.3333"), ({"stateful_metrics": ["loss"]}, "3.0000"),
                          ({"stateless_metrics": []}, "3.0000")]:
        bar = Progbar(3, verbose=2, **kwargs)
        bar.update(1, [("loss", 1.0)])
        bar.update(3, [("loss", 3.0)], finalize=False)
        bar.update(3, [], finalize=True)
        assert capsys.readouterr().out.endswith(f" - loss: {shown}\n")
    bar = Progbar(None, verbose=2)
    bar.update(5, [("loss", 1.0)], finalize=True)
    assert capsys.readouterr().out == "      5/Unknown - 0s - 0s/step - loss: 1.0000\n"
    with pytest.raises(ValueError, match="stateful_metrics or stateless_metrics, not both"):
        Progbar(3, stateful_metrics=[], stateless_metrics=[])


def fit_output(capsys, verbose, epochs=2, **kwargs):
    x, y = regression_data(80)
    history = dense_model().fit(x[:64], y[:64], epochs=epochs, batch_size=16, verbose=verbose,
                                validation_data=(x[64:], y[64:]), **kwargs)
    return capsys.readouterr().out, history.history


def test_fit_verbose_2(capsys):
    out, history = fit_output(capsys, verbose=2)
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for epoch, line in zip(range(2), lines[1::2]):
        metrics = (f" - loss: {history['loss'][epoch]:.4f}"
                   f" - val_loss: {history['val_loss'][epoch]:.4f}")
        assert re.fullmatch(r"4/4 - \d+s - \d+(us|ms|s)/step" + re.escape(metrics), line), line


def test_fit_verbose_1_redirected_one_line_per_epoch(capsys):
    out, history = fit_output(capsys, verbose=1)
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[::2] == ["Epoch 1/2", "Epoch 2/2"]
    assert re.fullmatch(rf"4/4 {BAR} \d+s \d+(us|ms|s)/step - loss: "
                        rf"{history['loss'][1]:.4f} - val_loss: {history['val_loss'][1]:.4f}",
                        lines[3])


def test_fit_verbose_1_on_a_terminal_and_verbose_0(capsys, monkeypatch):
    out, _ = fit_output(capsys, verbose=0)
    assert out == ""
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    x, y = regression_data()
    dense_model().fit(x, y, epochs=1, batch_size=16, verbose=1)
    text = ANSI.sub("", terminal.getvalue())
    # one epoch: no "Epoch 1/1" header; frames redrawn with \r, one newline at the end
    assert text.startswith("\r") and text.count("\n") == 1 and text.endswith("\n")
    assert re.fullmatch(rf"4/4 {BAR} \d+s \d+(us|ms|s)/step - loss: \d\.\d{{4}}\n",
                        text.split("\r")[-1])


def test_progbar_logger_counts_steps_run_after_a_stop(capsys):
    logger = ProgbarLogger()
    logger.set_params({"epochs": 1, "steps": 10, "verbose": 2})
    logger.on_train_begin()
    logger.on_epoch_begin(0)
    for batch in range(3):
        logger.on_train_batch_end(batch, {"loss": 1.0})
    logger.on_epoch_end(0, {"loss": 0.5})
    assert capsys.readouterr().out.startswith(" 3/10 - ")
    logger.on_train_end()
    logger.set_params({"steps": 2, "verbose": 2})  # evaluate's own bar, outside fit
    logger.on_test_begin()
    logger.on_test_batch_end(0, {"loss": 2.0})
    logger.on_test_batch_end(1, {"loss": 1.0})
    logger.on_test_end({"loss": 1.5})
    assert re.fullmatch(r"2/2 - 0s - \d+(us|ms)/step - loss: 1\.5000\n", capsys.readouterr().out)


def test_legacy_encoding_and_text_values(clock, monkeypatch):
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr("sys.stdout", ascii_out)
    bar = Progbar(2, verbose=1, stateful_metrics=["phase"])
    clock.now += 1.0
    bar.update(2, [("phase", "warm-up")])
    ascii_out.seek(0)
    assert ascii_out.read() == f"2/2 {'=' * 20} 1s 500ms/step - phase: warm-up\n"


def test_a_progbar_logger_passed_by_the_user_is_not_doubled(capsys):
    x, y = regression_data()
    dense_model().fit(x, y, epochs=1, verbose=2, callbacks=[ProgbarLogger()])
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_notebook_output_is_redrawn_and_not_cut(clock, monkeypatch):
    notebook = type("OutStream", (io.StringIO,), {"__module__": "ipykernel.iostream"})()
    monkeypatch.setattr("sys.stdout", notebook)
    monkeypatch.setattr(progbar.shutil, "get_terminal_size", lambda: types.SimpleNamespace(
        columns=20))  # what a notebook reports; its cells do not wrap a \r line
    run_bar(clock, verbose=1, steps=2, step_time=0.1)
    frames = ANSI.sub("", notebook.getvalue()).split("\r")
    assert frames[1:] == [f"1/2 {BAR} 0s 100ms/step - accuracy: 0.9100 - loss: 0.3100",
                          f"2/2 {BAR} 0s 100ms/step - accuracy: 0.9100 - loss: 0.3100",
                          f"2/2 {BAR} 0s 100ms/step - accuracy: 0.9100 - loss: 0.3100\n"]
