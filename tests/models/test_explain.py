"""Explained formulas against the layers' real shapes and counts, and MACs against torch's FLOPs.

Every formula is parsed out of the text and evaluated; the result must equal the real output
shape (compute_output_shape and a forward pass), count_params(), and an independent reference
(the output-size rules of the style guide; torch.utils.flop_counter with FLOPs = 2 * MACs).
"""

import math
import re

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.explain import axis_formula, explain_layer, explain_model, explanation_lines
from shenjing.models.summary import summary_text

torch = pytest.importorskip("torch")
F = torch.nn.functional
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode


def _evaluate(expr):
    """Value of a formula's arithmetic: digits, + - * / ( ) , and floor, ceil, max."""
    assert re.fullmatch(r"[\d\s+\-*/(),.a-z]*", expr) and set(re.findall(r"[a-z]+", expr)) <= {
        "floor", "ceil", "max"}, expr
    return eval(expr, {"__builtins__": {}, "floor": math.floor, "ceil": math.ceil, "max": max})


def _check_formula(text, value):
    """'lhs = value' (optionally followed by ' (... non-trainable)'): lhs evaluates to value;
    '0' for layers without weights, 'N (counted, ...)' for layers without a formula."""
    if text == "0" or "(counted, no formula" in text:
        assert int(text.split()[0]) == value, text
        return
    lhs, rhs = re.fullmatch(r"(.*) = (\d+)(?: \(\d+ non-trainable\))?", text).groups()
    assert int(rhs) == value and _evaluate(lhs) == value, text


def _expected_size(n, k, s, padding, d):
    """The style guide's rules, written independently of shenjing.ops.conv."""
    k_eff = d * (k - 1) + 1
    if padding == "valid":
        return (n - k_eff) // s + 1, (0, 0)
    if padding == "same":
        total = max(k_eff - s, 0) if n % s == 0 else max(k_eff - n % s, 0)
        return -(-n // s), (total // 2, total - total // 2)
    before, after = padding
    return (n + before + after - k_eff) // s + 1, (before, after)


def _check_axis_line(line, n, k, s, padding, d, out):
    """Parse 'label: out = floor((n + b + a - k_eff) / s) + 1 = out[; k_eff ...][; same ...]'."""
    size, (before, after) = _expected_size(n, k, s, padding, d)
    assert size == out
    m = re.search(r"out = (floor\(\((\d+) \+ (\d+) \+ (\d+) - (\d+)\) / (\d+)\) \+ 1) = (\d+)",
                  line)
    assert m, line
    assert [int(v) for v in m.groups()[1:]] == [n, before, after, d * (k - 1) + 1, s, out]
    assert _evaluate(m.group(1)) == out
    if d > 1:
        k_eff = re.search(r"k_eff = (\d+\*\(\d+ - 1\) \+ 1) = (\d+)", line)
        assert _evaluate(k_eff.group(1)) == int(k_eff.group(2)) == d * (k - 1) + 1
    same = re.search(r"same: (ceil\(\d+ / \d+\)) = (\d+), pad (max\(.*, 0\)) = (\d+) -> "
                     r"\((\d+), (\d+)\)", line)
    assert (same is not None) == (padding == "same"), line
    if same:
        assert _evaluate(same.group(1)) == int(same.group(2)) == out
        assert _evaluate(same.group(3)) == int(same.group(4)) == before + after
        assert (int(same.group(5)), int(same.group(6))) == (before, after)


def _check_against_layer(layer, shape, x=None, rng=None):
    """The explanation's numbers against the layer itself: shapes, counts, formula values."""
    e = explain_layer(layer, shape)
    real = layer.compute_output_shape(shape)
    assert e.output_shape == (real if isinstance(real, list) else tuple(real))
    if x is None:
        x = rng.standard_normal((2, *shape[1:])).astype(np.float32)
    y = layer(x)
    ys = y if isinstance(y, list) else [y]
    outs = e.output_shape if isinstance(e.output_shape, list) else [e.output_shape]
    assert [tuple(t.shape[1:]) for t in ys] == [tuple(o[1:]) for o in outs]
    assert e.params == layer.count_params()
    assert e.non_trainable == sum(w.size for w in layer.non_trainable_weights)
    _check_formula(e.params_formula, e.params)
    if e.macs:
        assert _evaluate(e.macs_formula) == e.macs, e.macs_formula
    assert e.param_bytes == 4 * e.params
    assert e.activation_bytes == 4 * sum(math.prod(o[1:]) for o in outs)
    return e


def _flops(fn, *args):
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def _conv_cases(rng, rank, count):
    for _ in range(count):
        k = tuple(int(v) for v in rng.integers(1, 6, rank))
        s = tuple(int(v) for v in rng.integers(1, 4, rank))
        d = tuple(int(v) for v in rng.integers(1, 4, rank)) if rng.random() < 0.3 else (1,) * rank
        mode = rng.choice(["valid", "same", "int", "pairs"])
        if mode == "int":
            padding = int(rng.integers(0, 3))
        elif mode == "pairs":
            pairs = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (rank, 2)))
            padding = pairs[0] if rank == 1 else pairs
        else:
            padding = str(mode)
        n = tuple(dd * (kk - 1) + 1 + int(rng.integers(0, 9)) for kk, dd in zip(k, d))
        yield k, s, d, padding, n, int(rng.integers(1, 5)), int(rng.integers(1, 5)), bool(
            rng.random() < 0.7)


def _axis_specs(padding, rank):
    if isinstance(padding, str):
        return [padding] * rank
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    return [padding] if rank == 1 else list(padding)


@pytest.mark.parametrize("rank", [1, 2])
def test_conv_zoo_formulas_match_the_layer_and_torch(rng, rank):
    for k, s, d, padding, n, channels, filters, bias in _conv_cases(rng, rank, 45 - 15 * rank):
        cls = L.Conv2D if rank == 2 else L.Conv1D
        layer = cls(filters, k, strides=s, padding=padding, dilation_rate=d, use_bias=bias)
        e = _check_against_layer(layer, (None, *n, channels), rng=rng)
        for line, nn, kk, ss, p, dd, out in zip(e.shape_formula, n, k, s,
                                                _axis_specs(padding, rank), d, e.output_shape[1:]):
            _check_axis_line(line, nn, kk, ss, p, dd, out)
        assert e.params == (math.prod(k) * channels + bias) * filters
        # torch: pad asymmetrically, then a plain convolution; FLOPs = 2 * MACs
        pads = [pad for pair in reversed(e.pads) for pad in pair]
        x = F.pad(torch.zeros(1, channels, *n), pads)
        w = torch.zeros(filters, channels, *k)
        conv = F.conv2d if rank == 2 else F.conv1d
        assert _flops(conv, x, w, None, s, 0, d) == 2 * e.macs
        assert tuple(conv(x, w, None, s, 0, d).shape[2:]) == e.output_shape[1:-1]


def test_pooling_zoo(rng):
    for _ in range(20):
        rank = int(rng.integers(1, 3))
        pool = tuple(int(v) for v in rng.integers(1, 5, rank))
        strides = None if rng.random() < 0.3 else tuple(int(v) for v in rng.integers(1, 4, rank))
        padding = str(rng.choice(["valid", "same"]))
        n = tuple(p + int(rng.integers(0, 7)) for p in pool)
        cls = {(1, 0): L.MaxPooling1D, (1, 1): L.AveragePooling1D, (2, 0): L.MaxPooling2D,
               (2, 1): L.AveragePooling2D}[rank, int(rng.integers(0, 2))]
        layer = cls(pool, strides=strides, padding=padding)
        e = _check_against_layer(layer, (None, *n, 3), rng=rng)
        for line, nn, kk, ss, out in zip(e.shape_formula, n, pool, strides or pool,
                                         e.output_shape[1:]):
            _check_axis_line(line, nn, kk, ss, padding, 1, out)
        assert e.params == 0 and e.macs == 0


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU", "GRU_v1"])
def test_recurrent_formulas_and_macs_against_torch_cells(rng, cell):
    gates = {"SimpleRNN": 1, "LSTM": 4}.get(cell, 3)
    for bias in (True, False):
        for return_sequences, return_state in ((False, False), (True, False), (True, True)):
            units, d, steps = (int(v) for v in rng.integers(1, 7, 3))
            options = {"use_bias": bias, "return_sequences": return_sequences,
                       "return_state": return_state}
            if cell.startswith("GRU"):
                options["reset_after"] = cell == "GRU"
            layer = getattr(L, cell.split("_")[0])(units, **options)
            e = _check_against_layer(layer, (None, steps, d), rng=rng)
            rows = (2 if cell == "GRU" else 1) * bias
            assert e.params == gates * (units + d + rows) * units
            assert e.macs == steps * gates * units * (d + units)
            torch_cell = {1: torch.nn.RNNCell, 3: torch.nn.GRUCell, 4: torch.nn.LSTMCell}[gates]
            step = torch_cell(d, units, bias=False)
            x, h = torch.zeros(1, steps, d), torch.zeros(1, units)

            def run(x=x, h=h, step=step, steps=steps):
                state = (h, h) if gates == 4 else h
                for t in range(steps):
                    state = step(x[:, t], state)

            assert _flops(run) == 2 * e.macs


def test_dense_batch_norm_embedding_and_shape_layers(rng):
    for d, units, bias, lead in ((5, 3, True, ()), (4, 7, False, ()), (3, 2, True, (6,))):
        e = _check_against_layer(L.Dense(units, use_bias=bias), (None, *lead, d), rng=rng)
        assert e.params == (d + bias) * units
        assert _flops(F.linear, torch.zeros(1, *lead, d), torch.zeros(units, d)) == 2 * e.macs
    for center, scale, trainable in ((True, True, True), (False, True, True),
                                     (False, False, True), (True, True, False)):
        layer = L.BatchNormalization(center=center, scale=scale, trainable=trainable)
        e = _check_against_layer(layer, (None, 5, 4, 6), rng=rng)
        assert e.params == (2 + center + scale) * 6 and e.macs == 5 * 4 * 6
    ids = rng.integers(0, 10, (2, 7))
    e = _check_against_layer(L.Embedding(10, 4), (None, 7), x=ids)
    assert e.params_formula == "10 * 4 = 40" and e.output_shape == (None, 7, 4)
    e = _check_against_layer(L.Flatten(), (None, 3, 4, 5), rng=rng)
    assert e.shape_formula == ["out = 3*4*5 = 60"]
    e = _check_against_layer(L.Reshape((-1, 6)), (None, 4, 3, 2), rng=rng)
    assert e.shape_formula == ["4*3*2 = 24 values -> (4, 6); -1 = 24 / 6 = 4"]
    e = _check_against_layer(L.ZeroPadding2D(((1, 2), (0, 3))), (None, 5, 4, 2), rng=rng)
    assert e.shape_formula == ["height: 5 + 1 + 2 = 8", "width: 4 + 0 + 3 = 7"]
    for layer in (L.GlobalAveragePooling2D(), L.GlobalMaxPooling1D(), L.Activation("relu"),
                  L.Dropout(0.5)):
        shape = (None, 5, 3) if "1D" in type(layer).__name__ else (None, 4, 5, 3)
        assert _check_against_layer(layer, shape, rng=rng).params == 0


def test_wrappers_and_merges(rng):
    inner = L.LSTM(5, return_sequences=True)
    e = _check_against_layer(L.Bidirectional(inner), (None, 6, 3), rng=rng)
    assert e.params_formula == "2 * (4 * (5 + 3 + 1) * 5) = 360"
    assert e.shape_formula[-1] == "concat: 2 * 5 = 10" and e.macs == 2 * 6 * 20 * 8
    e = _check_against_layer(L.Bidirectional(L.GRU(4), merge_mode="sum"), (None, 6, 3), rng=rng)
    assert e.params == 2 * 3 * (4 + 3 + 2) * 4 and e.output_shape == (None, 4)
    e = _check_against_layer(L.Bidirectional(L.LSTM(3, return_state=True)), (None, 5, 2),
                             rng=rng)
    assert e.output_shape == [(None, 6)] + [(None, 3)] * 4 and e.params == 2 * 4 * 6 * 3
    e = _check_against_layer(L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=None),
                             (None, 5, 2), rng=rng)
    assert e.shape_formula[-1] == "merge_mode None: (None, 5, 3), (None, 5, 3)"
    e = _check_against_layer(L.TimeDistributed(L.Dense(3)), (None, 7, 4), rng=rng)
    assert e.params_formula == "(4 + 1) * 3 = 15" and e.macs == 7 * 4 * 3
    a, b = L.Input((4, 5)), L.Input((4, 3))
    concat = L.Concatenate()
    model = sj.Model([a, b], concat([a, b]))
    e = explain_model(model)[-1]
    assert e.shape_formula == ["axis -1: 5 + 3 = 8"] and e.output_shape == (None, 4, 8)
    y = model([rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 4, 3))])
    assert y.shape[1:] == e.output_shape[1:]
    add = L.Add()
    e = explain_layer(add, [(None, 4, 5), (None, 4, 5)])
    assert e.output_shape == (None, 4, 5) and e.params == 0


def test_channels_first_conv_and_fallback(rng):
    layer = L.Conv2D(3, (2, 3), strides=(2, 1), padding="same", data_format="channels_first")
    e = _check_against_layer(layer, (None, 4, 9, 8), rng=rng)
    assert e.output_shape == (None, 3, 5, 8) and e.params_formula == "(2*3*4 + 1) * 3 = 75"

    class Scale(sj.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight("w", (input_shape[-1],), "ones")
            self.m = self.add_weight("m", (2,), "zeros", trainable=False)

        def call(self, x):
            return x * self.w

    layer = Scale()
    assert explain_layer(layer, (None, 5)).params_formula == (
        "0 (not built, unknown, no formula for Scale)")
    layer.build_for((None, 5))
    e = _check_against_layer(layer, (None, 5), rng=rng)
    assert e.params == 7 and e.non_trainable == 2 and e.macs is None
    assert e.params_formula == "7 (counted, no formula for Scale)"


def test_locally_connected_2d(rng):
    layer = L.LocallyConnected2D(3, (3, 2), strides=(2, 1))
    e = _check_against_layer(layer, (None, 7, 5, 2), rng=rng)
    assert e.params == 3 * 4 * (3 * 2 * 2 + 1) * 3
    assert e.params_formula == "3*4 * (3*2*2 + 1) * 3 = 468"
    assert e.macs == 3 * 4 * 3 * 2 * 2 * 3 and e.pads == ((0, 0), (0, 0))
    layer = L.LocallyConnected2D(2, 2, use_bias=False, data_format="channels_first")
    e = _check_against_layer(layer, (None, 3, 5, 4), rng=rng)
    assert e.params_formula == "4*3 * 2*2*3 * 2 = 288" and e.output_shape == (None, 2, 4, 3)


def test_group_and_layer_normalization(rng):
    e = _check_against_layer(L.GroupNormalization(groups=2), (None, 4, 4, 6), rng=rng)
    assert e.params_formula == "2 * 6 = 12" and e.macs == 4 * 4 * 6
    assert e.shape_formula == ["same as input (2 groups of 6 / 2 = 3 channels)"]
    e = _check_against_layer(L.GroupNormalization(groups=-1, center=False), (None, 5, 4),
                             rng=rng)
    assert e.params_formula == "1 * 4 = 4"
    e = _check_against_layer(L.LayerNormalization(), (None, 5, 8), rng=rng)
    assert e.params_formula == "2 * 8 = 16"
    e = _check_against_layer(L.LayerNormalization(axis=[1, 2]), (None, 3, 4, 5), rng=rng)
    assert e.params_formula == "2 * 3*4 = 24"
    e = _check_against_layer(L.LayerNormalization(rms_scaling=True), (None, 7), rng=rng)
    assert e.params_formula == "1 * 7 = 7"


# ----- the issue's examples, verbatim --------------------------------------------------------


def test_issue_examples_render_verbatim():
    conv = explanation_lines(explain_layer(L.Conv2D(2, 3, strides=2, padding="same"),
                                           (None, 7, 7, 3)))
    assert "params  Conv2D: (3*3*3 + 1) * 2 = 56" in conv
    assert conv[0].startswith("shape   height: out = floor((7 + 1 + 1 - 3) / 2) + 1 = 4; ")
    assert "same: ceil(7 / 2) = 4, pad max((4 - 1)*2 + 3 - 7, 0) = 2 -> (1, 1)" in conv[0]
    lstm = explain_layer(L.LSTM(150), (None, 20, 100))
    assert "params  LSTM: 4 * (150 + 100 + 1) * 150 = 150600" in explanation_lines(lstm)
    bn = explain_layer(L.BatchNormalization(), (None, 8, 8, 16))
    assert "params  BatchNormalization: 4 * 16 = 64 (32 non-trainable)" in explanation_lines(bn)
    assert axis_formula("width", 7, 3, 2, "same")[2].startswith(
        "width: out = floor((7 + 1 + 1 - 3) / 2) + 1 = 4")


def test_summary_explain_adds_lines_and_keeps_the_table(capsys):
    model = sj.Sequential([L.Input((7, 7, 3)), L.Conv2D(2, 3, strides=2, padding="same"),
                           L.BatchNormalization(), L.Flatten(), L.Dense(4)])
    plain = summary_text(model)
    model.summary(explain=True)
    explained = capsys.readouterr().out.rstrip("\n")
    assert "    params  Conv2D: (3*3*3 + 1) * 2 = 56" in explained.splitlines()
    assert "    params  BatchNormalization: 4 * 2 = 8 (4 non-trainable)" in explained.splitlines()
    assert "\n".join(line for line in explained.splitlines()
                     if not line.startswith("    ")) == plain
    model.summary()
    assert capsys.readouterr().out.rstrip("\n") == plain


def test_summary_macs_and_memory_columns(capsys):
    model = sj.Sequential([L.Input((20, 10)), L.LSTM(15, return_sequences=True),
                           L.TimeDistributed(L.Dense(3))])
    model.summary(show_macs=True, show_memory=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "MACs",
                                "Params", "MB", "Activations", "MB"]
    lstm_params, lstm_macs, dense_macs = 4 * (15 + 10 + 1) * 15, 20 * 4 * 15 * (10 + 15), 20 * 45
    row = next(line for line in lines if "(LSTM)" in line).split()
    params_mb, activations_mb = lstm_params * 4 / 1024 ** 2, 20 * 15 * 4 / 1024 ** 2
    assert row[-4:] == [str(lstm_params), str(lstm_macs), f"{params_mb:.4f}",
                        f"{activations_mb:.4f}"]
    assert f"Multiply-adds per sample: {lstm_macs + dense_macs}" in lines
    total_mb = (lstm_params + 16 * 3) * 4 / 1024 ** 2
    assert any(line.startswith(f"Memory: parameters {total_mb:.4f} MB") for line in lines)
    assert model.count_params() == lstm_params + 16 * 3


def test_unbuilt_layers_and_missing_shapes():
    model = sj.Sequential([L.Dense(4)])
    assert explain_model(model) == [None]
    assert "?" in summary_text(model, show_macs=True)
    with pytest.raises(ValueError, match="explain_layer: Dense '.*' is not built; pass its "
                                         "input_shape"):
        explain_layer(L.Dense(3))
    with pytest.raises(ValueError, match="Conv2D '.*': input shape \\(None, 2, 2, 3\\) is too "
                                         "small for kernel_size"):
        explain_layer(L.Conv2D(1, 3), (None, 2, 2, 3))
