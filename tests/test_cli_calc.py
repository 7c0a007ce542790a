"""`shenjing calc`: one layer's output shape, padding per side and parameter count, checked
against a built shenjing layer, the style guide's size rules and torch's convolution."""

import math
import re

import numpy as np
import pytest

from shenjing import layers as L
from shenjing.cli import main

torch = pytest.importorskip("torch")


def _calc(capsys, *argv):
    assert main(["calc", *argv]) == 0
    out = capsys.readouterr().out
    shape = re.search(r"^output shape: \((.*)\)$", out, re.MULTILINE).group(1)
    params = int(re.search(r"^parameters: (\d+) \(", out, re.MULTILINE).group(1))
    pads = re.search(r"^padding: (.*)$", out, re.MULTILINE)
    sides = None if pads is None else [int(v) for v in re.findall(r"\d+", pads.group(1))]
    return out, tuple(None if s == "None" else int(s) for s in shape.split(", ")), params, sides


def _same_pads(n, k, s, d=1):
    """The style guide: total max(k - s, 0) if n % s == 0 else max(k - n % s, 0), odd after."""
    k = d * (k - 1) + 1
    total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    return [total // 2, total - total // 2]


CONV_CASES = [
    # argv, Conv2D arguments, (top, bottom, left, right)
    (["--input", "100x100x3", "--kernel", "3", "--strides", "2", "--padding", "same",
      "--filters", "8"], {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same"},
     _same_pads(100, 3, 2) * 2),
    (["--input", "7x9x2", "--kernel", "3x2", "--strides", "2x3", "--padding", "same",
      "--filters", "4", "--no-bias"],
     {"filters": 4, "kernel_size": (3, 2), "strides": (2, 3), "padding": "same",
      "use_bias": False},
     _same_pads(7, 3, 2) + _same_pads(9, 2, 3)),
    (["--input", "11x12x1", "--kernel", "3", "--dilation", "2", "--padding", "same",
      "--filters", "2"], {"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same"},
     _same_pads(11, 3, 1, 2) + _same_pads(12, 3, 1, 2)),
    (["--input", "28x28x1", "--kernel", "5", "--filters", "6"],
     {"filters": 6, "kernel_size": 5}, [0, 0, 0, 0]),
    (["--input", "10x8x3", "--kernel", "4", "--strides", "3", "--padding", "2", "--filters", "5"],
     {"filters": 5, "kernel_size": 4, "strides": 3, "padding": 2}, [2, 2, 2, 2]),
    (["--input", "10x8x3", "--kernel", "3", "--padding", "1x2", "--filters", "5"],
     {"filters": 5, "kernel_size": 3, "padding": ((1, 1), (2, 2))}, [1, 1, 2, 2]),
    (["--input", "10x8x3", "--kernel", "3", "--strides", "2", "--padding", "1x0x2x3",
      "--filters", "5"],
     {"filters": 5, "kernel_size": 3, "strides": 2, "padding": ((1, 0), (2, 3))}, [1, 0, 2, 3]),
]


@pytest.mark.parametrize("argv, kwargs, pads", CONV_CASES)
def test_calc_conv_matches_a_built_conv2d_and_torch(capsys, argv, kwargs, pads):
    out, shape, params, sides = _calc(capsys, "conv", *argv)
    assert sides == pads
    h, w, c = (int(v) for v in argv[1].split("x"))
    layer = L.Conv2D(**kwargs)
    y = layer(np.zeros((1, h, w, c), np.float32))
    assert shape == (None, *y.shape[1:]) and params == layer.count_params()
    kh, kw = layer.kernel_size
    assert params == (kh * kw * c + layer.use_bias) * layer.filters
    # torch on the input padded by the printed amounts gives the printed output size
    x = torch.nn.functional.pad(torch.zeros(1, c, h, w), [sides[2], sides[3], sides[0], sides[1]])
    ref = torch.nn.functional.conv2d(x, torch.zeros(layer.filters, c, kh, kw),
                                     stride=layer.strides, dilation=layer.dilation_rate)
    assert shape[1:3] == tuple(ref.shape[2:])
    macs = int(re.search(r"^multiply-adds per sample: (\d+)$", out, re.MULTILINE).group(1))
    assert macs == math.prod(shape[1:]) * kh * kw * c


def test_calc_conv_prints_the_issue_formulas(capsys):
    out, *_ = _calc(capsys, "conv", "--input", "7x7x3", "--kernel", "3", "--strides", "2",
                    "--padding", "same", "--filters", "2")
    assert "height: out = floor((7 + 1 + 1 - 3) / 2) + 1 = 4; same: ceil(7 / 2) = 4" in out
    assert "params  Conv2D: (3*3*3 + 1) * 2 = 56" in out
    assert "padding: top 1, bottom 1, left 1, right 1" in out
    assert "output shape: (None, 4, 4, 2)" in out


def test_calc_pool_dense_and_recurrent(capsys):
    _, shape, params, sides = _calc(capsys, "pool", "--input", "7x8x3", "--pool", "3",
                                    "--strides", "2", "--padding", "same", "--average")
    assert shape == (None, 4, 4, 3) and params == 0
    assert sides == _same_pads(7, 3, 2) + _same_pads(8, 3, 2)
    _, shape, params, sides = _calc(capsys, "pool", "--input", "9x9x1")
    assert shape == (None, 4, 4, 1) and sides == [0, 0, 0, 0]
    _, shape, params, _ = _calc(capsys, "dense", "--input", "784", "--units", "10")
    assert shape == (None, 10) and params == (784 + 1) * 10
    _, shape, params, _ = _calc(capsys, "dense", "--input", "5x16", "--units", "3", "--no-bias")
    assert shape == (None, 5, 3) and params == 16 * 3
    out, shape, params, _ = _calc(capsys, "lstm", "--input", "20x100", "--units", "150")
    assert "LSTM: 4 * (150 + 100 + 1) * 150 = 150600" in out
    lstm = L.LSTM(150)
    lstm.build_for((None, 20, 100))
    assert shape == (None, 150) and params == lstm.count_params() == 150600
    for argv, layer in (
        (["gru", "--input", "6x4", "--units", "3", "--return-sequences"],
         L.GRU(3, return_sequences=True)),
        (["gru", "--input", "6x4", "--units", "3", "--no-reset-after"],
         L.GRU(3, reset_after=False)),
        (["rnn", "--input", "6x4", "--units", "5", "--no-bias"], L.SimpleRNN(5, use_bias=False)),
    ):
        _, shape, params, _ = _calc(capsys, *argv)
        y = layer(np.zeros((1, 6, 4), np.float32))
        assert shape == (None, *y.shape[1:]) and params == layer.count_params()


@pytest.mark.parametrize("argv, message", [
    (["conv", "--input", "100x100", "--kernel", "3", "--filters", "8"],
     ("argument --input: expected HEIGHTxWIDTHxCHANNELS like 100x100x3 (3 positive integers "
     "joined by 'x'), got '100x100'")),
    (["conv", "--input", "100x100x3", "--kernel", "3", "--filters", "8", "--padding", "full"],
     "argument --padding: expected 'valid', 'same', P, PHxPW or TOPxBOTTOMxLEFTxRIGHT"),
    (["conv", "--input", "10x10x3", "--kernel", "0", "--filters", "8"],
     "argument --kernel: expected K or KHxKW"),
    (["conv", "--input", "2x2x3", "--kernel", "3", "--filters", "8"],
     "input shape (None, 2, 2, 3) is too small for kernel_size (3, 3)"),
    (["conv", "--input", "9x9x3", "--kernel", "3", "--filters", "0"],
     "filters must be a positive integer, got 0"),
    (["lstm", "--input", "20", "--units", "4"], "argument --input: expected STEPSxFEATURES"),
    (["dense", "--input", "4", "--units", "-2"], "units must be a positive integer, got -2"),
    (["pool", "--input", "3x3x1", "--pool", "4"], "smaller than pool_size (4, 4)"),
])
def test_calc_bad_input_exits_with_a_clear_error(capsys, argv, message):
    with pytest.raises(SystemExit) as error:
        main(["calc", *argv])
    assert error.value.code == 2
    err = capsys.readouterr().err
    assert f"shenjing calc {argv[0]}" in err and message in err
