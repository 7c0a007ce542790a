"""`shenjing lab batchnorm`: Ioffe & Szegedy (2015) Figure 1, learning rates, small batches."""

import json

import numpy as np
import pytest

from shenjing import layers
from shenjing.lab import batchnorm
from tests.lab import assert_png


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("batchnorm")
    return out, batchnorm.run(out, small=True, verbose=False)


def test_mlp_is_the_papers_network():
    model, probes = batchnorm.build_mlp("bn")
    assert len(probes) == 3
    dense = [l for l in model.layers if isinstance(l, layers.Dense)]
    assert [l.units for l in dense] == [100, 100, 100, 10]
    norms = [l for l in model.layers if isinstance(l, layers.BatchNormalization)]
    assert len(norms) == 3
    # Dense without bias (BN's beta shifts), BN: 4 per unit of which 2 non-trainable
    expected = 784 * 100 + 100 * 100 * 2 + (100 * 10 + 10) + 3 * 4 * 100
    assert model.count_params() == expected
    plain, _ = batchnorm.build_mlp(None)
    assert plain.count_params() == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 100 * 10 + 10


def test_with_bn_the_sigmoid_input_is_centred_and_unit_scaled(result):
    _, numbers = result
    plain, bn = numbers["plain"], numbers["bn"]
    # per-unit statistics over each training batch of the last hidden layer's sigmoid input
    assert bn["batch_mean"].mean() < 0.3 < plain["batch_mean"].mean()
    assert 0.7 < bn["batch_std"].mean() < 1.5
    assert abs(np.log(bn["batch_std"].mean())) < abs(np.log(plain["batch_std"].mean()))
    # more of the sigmoid inputs stay where the sigmoid has a gradient
    assert bn["in_range"][-1] > plain["in_range"][-1]
    # percentiles are ordered and drift less with BN: the 15th..85th band stays put
    for log in (plain, bn):
        p = log["percentiles"]
        assert np.all(p[:, 0] <= p[:, 1]) and np.all(p[:, 1] <= p[:, 2])


def test_bn_trains_faster_and_at_larger_rates(result):
    _, numbers = result
    assert numbers["bn"]["final_accuracy"] > numbers["plain"]["final_accuracy"] + 0.1
    assert numbers["bn"]["final_accuracy"] > 0.8
    sweep = numbers["sweep"]
    assert sweep["bn"]["largest_rate"] > sweep["plain"]["largest_rate"]
    assert len(sweep["bn"]["accuracy"]) == len(numbers["rates"])


def test_small_batch_caveat(result):
    _, numbers = result
    tiny = numbers["small_batch"]
    # two samples: every normalized value is about +-1, only the sign of the difference is left
    assert tiny["pair_near_pm1"] > 0.9
    assert tiny["gn"]["late_mean"] > tiny["bn"]["late_mean"]
    assert tiny["ln"]["late_mean"] > tiny["bn"]["late_mean"]


def test_one_class_batches_break_batch_statistics(result):
    _, numbers = result
    skew = numbers["one_class"]
    assert skew["shift"].mean() > 2 * skew["mixed_shift"]
    assert skew["moving_accuracy"].mean() > 0.8
    assert skew["batch_accuracy"].mean() < 0.5 < skew["mixed_batch_accuracy"]


def test_pair_normalization_formula():
    """The lab's claim: with two samples (x - mean) / sqrt(var + eps) = +-d / sqrt(d^2 + 4 eps)."""
    x = np.array([[0.3], [1.7]])
    x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    d = 1.4
    np.testing.assert_allclose(np.abs(x_hat), d / np.sqrt(d * d + 4e-3))


def test_files_hold_the_numbers(result):
    out, numbers = result
    saved = json.loads((out / "batchnorm.json").read_text())
    assert saved["bn"]["final_accuracy"] == pytest.approx(numbers["bn"]["final_accuracy"])
    assert saved["sweep"]["plain"]["largest_rate"] == numbers["sweep"]["plain"]["largest_rate"]
    for name in ("figure1", "learning_rates", "small_batch", "one_class"):
        assert_png(out / f"batchnorm_{name}.png")
