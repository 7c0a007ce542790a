"""The progress bar of fit: Progbar, and the ProgbarLogger callback that fit adds when verbose.

verbose=1 on a terminal or in a notebook redraws one line in place, as Keras does:
``12/40 ━━━━━━━━━━━━━━━━━━━━ 3s 80ms/step - loss: 0.3100`` with the ETA while running and the
elapsed time when done. Written to a file or a pipe, it prints that line once, when done,
instead of a carriage-return frame per batch. verbose=2 prints one line when done:
``40/40 - 3s - 80ms/step - loss: 0.3100``. verbose=0 prints nothing.
Output goes to ``sys.stdout`` as it is at the time of writing (so redirection and capture work).
"""

from __future__ import annotations

import shutil
import sys
import time

import numpy as np

from .callbacks.base import Callback
from .distribution import context as distribution_context
from .errors import ArgumentError

_open_width = 0  # width of a redrawn bar line on screen without its newline yet, if any


def _write(text: str) -> None:
    stream = sys.stdout
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a console or file in a legacy encoding (cp1252, ascii)
        stream.write(text.replace("━", "="))
    stream.flush()


def print_msg(message: str) -> None:
    """Print a line; a bar being redrawn is wiped first, and its next frame comes below.
    Under a DataParallel, only rank 0 prints."""
    global _open_width
    if not distribution_context.writes_files():
        return
    _write(("\r" + " " * _open_width + "\r" if _open_width else "") + message + "\n")
    _open_width = 0


def _isatty(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def is_dynamic(stream) -> bool:
    """A terminal or a notebook: there a carriage return redraws the line."""
    return _isatty(stream) or type(stream).__module__.startswith("ipykernel")


def _format_eta(seconds: float) -> str:
    whole = int(seconds)
    if seconds > 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if seconds > 60:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole}s"


def _format_rate(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def _format_value(value) -> str:
    try:
        value = float(np.mean(value))
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


class Progbar:
    """Keras's progress bar; call ``update(current, [(name, value), ...])`` after each step.

    Args: target (steps in all, None if unknown); width (bar characters); verbose (0 silent,
    1 bar, 2 one line when done); interval (least seconds between redraws); stateful_metrics
    (names shown as given) or stateless_metrics (names averaged over the steps): by default
    every value is averaged, as in Keras; unit_name ("step").
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ArgumentError("Progbar: give stateful_metrics or stateless_metrics, not both.")
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self.stateful_metrics = None if stateful_metrics is None else set(stateful_metrics)
        self.stateless_metrics = None if stateless_metrics is None else set(stateless_metrics)
        self._values = {}  # name -> [sum of value * steps, steps]
        self._seen = 0
        self._start, self._last_update = time.time(), 0.0
        self._time_after_first_step = None
        self._prev_width = 0

    def _averaged(self, name) -> bool:
        if self.stateless_metrics is not None:
            return name in self.stateless_metrics
        return self.stateful_metrics is None or name not in self.stateful_metrics

    def update(self, current, values=None, finalize=None) -> None:
        """Record ``current`` steps done (from 1); draw when due. ``finalize`` ends the line."""
        global _open_width
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if self._averaged(name) and not finalize:
                steps = max(current - self._seen, 1)
                total = self._values.setdefault(name, [0.0, 0])
                total[0], total[1] = total[0] + value * steps, total[1] + steps
            else:
                self._values[name] = [value, 1]
        self._seen = current
        now = time.time()
        step_time = self._step_time(current, now)
        if self.verbose == 1:
            dynamic = is_dynamic(sys.stdout)
            if not finalize and (not dynamic or now - self._last_update < self.interval):
                return
            head, head_width, info = self._bar(current, now, step_time, finalize, color=dynamic)
            if not dynamic:
                _write(head + info + "\n")
            else:
                if not finalize and _isatty(sys.stdout):  # a wrapped line could not be redrawn
                    info = info[:max(shutil.get_terminal_size().columns - 1 - head_width, 0)]
                visible = head_width + len(info)
                pad = " " * max(self._prev_width - visible, 0)
                _write("\r" + head + info + pad + ("\n" if finalize else ""))
                self._prev_width = _open_width = 0 if finalize else visible
        elif self.verbose == 2 and finalize:
            count = self._count(current)
            line = (f"{count} - {now - self._start:.0f}s - "
                    f"{_format_rate(step_time, self.unit_name)}{self._metrics()}")
            _write(line + "\n")
        self._last_update = now

    def add(self, n, values=None) -> None:
        self.update(self._seen + n, values)

    def _count(self, current) -> str:
        if self.target is None or self.target <= 0:
            return f"{current:7d}/Unknown"
        return f"{current:{len(str(self.target))}d}/{self.target}"

    def _bar(self, current, now, step_time, finalize, color):
        """The verbose=1 line as (count and bar, their width on screen, the rest); ANSI colours
        only where the line is redrawn."""
        bold, green, grey, reset = ("\x1b[1m", "\x1b[32m", "\x1b[37m", "\x1b[0m") if color \
            else ("", "", "", "")
        known = self.target is not None and self.target > 0
        count = self._count(current)
        head, head_width = f"{bold}{count}{reset}", len(count) + (self.width + 1) * known
        if known:
            done = min(int(self.width * current / self.target), self.width)
            rest = self.width - done
            head += f" {green}{'━' * done}{reset}" if done else " "
            head += f"{grey}{'━' * rest}{reset}" if rest else ""
        if known and not finalize:
            clock = _format_eta(step_time * (self.target - current))
        else:
            clock = f"{now - self._start:.0f}s"
        info = f" {clock} {_format_rate(step_time, self.unit_name)}{self._metrics()}"
        return head, head_width, info

    def _metrics(self) -> str:
        return "".join(f" - {name}: {_format_value(total if steps == 1 else total / steps)}"
                       for name, (total, steps) in self._values.items())

    def _step_time(self, current, now) -> float:
        """Seconds per step; the first step (often slower: allocation, caches) is left out."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_step = (now - self._time_after_first_step) / (current - 1)
        else:
            per_step = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_step


class ProgbarLogger(Callback):
    """Prints a Progbar per epoch of fit ("Epoch 1/5" first when there are several epochs),
    and one per evaluate or predict call when those pass it their hooks."""

    def __init__(self):
        super().__init__()
        self.verbose, self.epochs, self.target = 1, 1, None
        self.progbar, self.seen = None, 0
        self._in_fit = False

    def set_params(self, params):
        super().set_params(params)
        verbose = params.get("verbose", 1)
        self.verbose = 1 if verbose == "auto" else verbose
        self.epochs, self.target = params.get("epochs", 1), params.get("steps")

    def _new_bar(self):
        self.seen = 0
        # logs hold running means already, so the bar shows them as given
        self.progbar = Progbar(self.target, verbose=self.verbose, stateless_metrics=())

    def _update(self, batch, logs):
        self.seen = batch + 1
        if self.verbose == 1:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=False)

    def _finish(self, logs):
        # after an early stop the count shows the steps actually run
        current = self.seen or self.target or 0
        if self.progbar.target is None:
            self.progbar.target = current
        self.progbar.update(current, list((logs or {}).items()), finalize=True)

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        self._new_bar()
        if self.verbose and self.epochs > 1:
            print_msg(f"Epoch {epoch + 1}/{self.epochs}")

    def on_train_batch_end(self, batch, logs=None):
        self._update(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._update(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._update(batch, None)

    def on_predict_end(self, logs=None):
        self._finish(None)
