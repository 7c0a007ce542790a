"""``shenjing lab``: small experiments that reproduce what a textbook figure claims.

Each lab module has ``run(out_dir, small=False, seed=0, verbose=True) -> dict``: it trains
what it needs, prints its findings, writes PNG figures (matplotlib, ``shenjing[plot]``) and a
JSON file of the numbers behind them into out_dir, and returns those numbers. ``small=True``
shrinks every setting so a lab runs in seconds (the tests use it). Without matplotlib the numbers
are still computed, printed and saved; the figures are skipped with the install hint.

    connectivity  fully connected vs locally connected vs convolution: 100000 / 1000 / 100
    batchnorm     Ioffe & Szegedy (2015) Figure 1 on the shipped digits, learning rates,
                  batch size 2 (GroupNormalization, LayerNormalization), one-class batches
    vanishing     SimpleRNN vs LSTM on the adding problem: gradients through time, final MSE
    report        one HTML page: feature maps, kernels, LSTM gates, history, summary
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np

from ..errors import ArgumentError

NAMES = ("connectivity", "batchnorm", "vanishing", "report")


def run(name, out_dir="lab", small=False, seed=0, verbose=True) -> dict:
    """Run the lab ``name`` (one of NAMES) and return the numbers behind its figures."""
    if name not in NAMES:
        raise ArgumentError(
            f"shenjing.lab: unknown lab {name!r}; choose one of {', '.join(NAMES)}.")
    module = importlib.import_module(f".{name}", __name__)
    return module.run(out_dir, small=small, seed=seed, verbose=verbose)


# ----- helpers shared by the labs --------------------------------------------------------
def prepare(out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def plotting(verbose=True) -> bool:
    """True when matplotlib is importable; otherwise say how to get the figures."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if verbose:
            print('Figures skipped: matplotlib is not installed (pip install "shenjing[plot]"); '
                  "the numbers are printed and saved as JSON.")
        return False
    return True


def save(figure, path, files) -> None:
    """Write the figure as a PNG and remember the path."""
    figure.savefig(path, format="png", dpi=100)
    files.append(str(path))


def jsonable(value):
    """NumPy arrays and scalars (nested in dicts and lists) as plain JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def write_json(numbers, path, files) -> None:
    Path(path).write_text(json.dumps(jsonable(numbers), indent=1))
    files.append(str(path))


def say(verbose, *lines) -> None:
    if verbose:
        for line in lines:
            print(line)
