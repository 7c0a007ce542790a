import math

import numpy as np
import pytest

from shenjing.data import batches, num_batches, split_validation, to_categorical


def test_num_batches_matches_ceil_and_floor():
    for n in range(0, 40):
        for b in range(1, 12):
            assert num_batches(n, b) == math.ceil(n / b)
            assert num_batches(n, b, drop_remainder=True) == math.floor(n / b)


@pytest.mark.parametrize(
    "args, match",
    [((10, 0), "batch_size must be an int >= 1, got 0"),
     ((10, 2.0), "batch_size must be an int >= 1, got 2.0"),
     ((10, True), "batch_size must be an int >= 1, got True"),
     ((-1, 3), "n must be an int >= 0, got -1")],
)  # fmt: skip
def test_num_batches_errors(args, match):
    with pytest.raises(ValueError, match=match):
        num_batches(*args)


def _aligned(rng, n):
    x = rng.standard_normal((n, 3, 2)).astype(np.float32)
    y = np.arange(n)
    w = rng.random(n)
    return x, y, w


@pytest.mark.parametrize("n, b, drop", [(10, 3, False), (10, 3, True), (9, 3, False),
                                        (9, 3, True), (2, 5, False), (2, 5, True)])  # fmt: skip
def test_batches_in_order(rng, n, b, drop):
    x, y, w = _aligned(rng, n)
    parts = list(batches((x, y, None, w), b, drop_remainder=drop))
    assert len(parts) == num_batches(n, b, drop)
    stop = n - n % b if drop else n
    for i, (xb, yb, nb, wb) in enumerate(parts):
        lo, hi = i * b, min(i * b + b, stop)
        np.testing.assert_array_equal(xb, x[lo:hi])
        np.testing.assert_array_equal(yb, y[lo:hi])
        np.testing.assert_array_equal(wb, w[lo:hi])
        assert nb is None and xb.dtype == np.float32
        assert np.shares_memory(xb, x)  # unshuffled batches are views, no copies
    assert sum(len(p[1]) for p in parts) == stop


def test_batches_shuffled_follow_the_generator_permutation(rng):
    x, y, w = _aligned(rng, 23)
    parts = list(batches([x, y, w], 5, shuffle=True, rng=np.random.default_rng(7)))
    order = np.random.default_rng(7).permutation(23)  # the reference permutation
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), order)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x[order])
    np.testing.assert_array_equal(np.concatenate([p[2] for p in parts]), w[order])
    assert [len(p[0]) for p in parts] == [5, 5, 5, 5, 3]
    # an int seed means default_rng(seed); drop_remainder drops the short tail
    parts = list(batches((x, y), 5, shuffle=True, rng=7, drop_remainder=True))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), order[:20])


def test_batches_fresh_permutation_each_call(rng):
    y = np.arange(50)
    gen = np.random.default_rng(0)
    first = np.concatenate(list(batches(y, 8, shuffle=True, rng=gen)))
    second = np.concatenate(list(batches(y, 8, shuffle=True, rng=gen)))
    ref = np.random.default_rng(0)
    np.testing.assert_array_equal(first, ref.permutation(50))
    np.testing.assert_array_equal(second, ref.permutation(50))
    assert not np.array_equal(first, second)


def test_batches_single_array_yields_arrays(rng):
    x = rng.standard_normal((7, 2))
    parts = list(batches(x, 4))
    assert all(isinstance(p, np.ndarray) for p in parts)
    np.testing.assert_array_equal(parts[1], x[4:])


def test_batches_errors_are_raised_at_call_time(rng):
    x, y, _ = _aligned(rng, 6)
    with pytest.raises(ValueError, match=r"same length along axis 0, got shapes \[\(6, 3, 2\), "
                                         r"None, \(5,\)\]"):  # fmt: skip
        batches((x, None, y[:5]), 2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got -2"):
        batches(x, -2)
    with pytest.raises(TypeError, match="rng must be a np.random.Generator, an int seed or None"):
        batches(x, 2, shuffle=True, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="expected at least one array"):
        batches((None, None), 2)
    with pytest.raises(ValueError, match="need a batch axis, got a 0-d array"):
        batches(np.float32(3.0), 2)


@pytest.mark.parametrize("n", [2, 3, 7, 10, 11, 64, 100, 1000, 1001])
@pytest.mark.parametrize("v", [0.1, 0.2, 0.25, 0.3, 0.5, 0.7, 0.9, 0.33])
def test_split_validation_takes_the_last_fraction(n, v):
    # Keras rule: split_at = floor(n * (1.0 - validation_split)), last part is validation
    split_at = math.floor(n * (1.0 - v))
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    if split_at in (0, n):
        with pytest.raises(ValueError, match=f"{n} samples are too few"):
            split_validation((x, y), v)
        return
    (x_tr, y_tr, w_tr), (x_va, y_va, w_va) = split_validation((x, y, None), v)
    np.testing.assert_array_equal(x_tr, x[:split_at])
    np.testing.assert_array_equal(y_va, y[split_at:])
    np.testing.assert_array_equal(x_va, x[split_at:])
    np.testing.assert_array_equal(y_tr, y[:split_at])
    assert w_tr is None and w_va is None
    train, val = split_validation(x, v)
    np.testing.assert_array_equal(train, x[:split_at])
    np.testing.assert_array_equal(val, x[split_at:])


def test_split_validation_float_rounding_follows_keras():
    # 1 - 0.7 = 0.30000000000000004, so 10 samples keep floor(3.0000000000000004) = 3 for train
    (_, val) = split_validation(np.arange(10), 0.7)
    assert len(val) == 7
    (train, _) = split_validation(np.arange(10), 0.3)  # 10 * 0.7 = 7.000000000000001
    assert len(train) == 7


@pytest.mark.parametrize("v", [0, 1, 1.5, -0.1, "0.2", None])
def test_split_validation_errors(v):
    with pytest.raises(ValueError, match="validation_split must be a float in"):
        split_validation(np.arange(10), v)


def _one_hot_reference(y, num_classes, dtype="float32"):
    # keras.utils.to_categorical: drop a trailing axis of size 1, then one row per label
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    return (y[..., None] == np.arange(num_classes)).astype(dtype)


@pytest.mark.parametrize("shape", [(12,), (12, 1), (4, 3), (2, 3, 1), ()])
def test_to_categorical_matches_keras_formula(rng, shape):
    y = rng.integers(0, 6, size=shape)
    got = to_categorical(y)
    num_classes = int(np.max(y)) + 1
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _one_hot_reference(y, num_classes))
    got = to_categorical(y, num_classes=9, dtype="float64")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, _one_hot_reference(y, 9, "float64"))


def test_to_categorical_inputs():
    np.testing.assert_array_equal(to_categorical([2, 0]), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(to_categorical(np.array([1.0, 3.0]), 4), np.eye(4)[[1, 3]])
    np.testing.assert_array_equal(to_categorical(np.array([True, False])), [[0, 1], [1, 0]])
    assert to_categorical(np.array([], np.int64), 3).shape == (0, 3)
    np.testing.assert_array_equal(to_categorical(np.uint8([[9]]), 10), np.eye(10)[[9]])


@pytest.mark.parametrize(
    "y, num_classes, error, match",
    [([0, 3], 3, ValueError, r"class ids must lie in 0..2, got values from 0 to 3"),
     ([-1, 1], None, ValueError, "got values from -1 to 1"),
     ([0.5, 1.0], None, TypeError, "expected integer class ids, got dtype float64"),
     (["a"], None, TypeError, "expected integer class ids"),
     ([], None, ValueError, "num_classes is needed when y is empty"),
     ([1], 0, ValueError, "num_classes must be >= 1, got 0"),
     ([1], 2.0, ValueError, "num_classes must be an int, got 2.0")],
)  # fmt: skip
def test_to_categorical_errors(y, num_classes, error, match):
    with pytest.raises(error, match=match):
        to_categorical(y, num_classes)


@pytest.mark.parametrize("y", [
    np.array([0, 1, 0, 2, 3]),  # sparse labels; class 3 is not in the map: weight 1
    np.array([[0], [1], [2], [2]]),  # (samples, 1)
    np.array([[0.0, 1.0, 0.0], [0.2, 0.1, 0.7], [1.0, 0.0, 0.0]]),  # one-hot / probabilities
    np.array([0.4, 0.6, 1.2, 1.9]),  # rounded, as Keras does for binary targets
])
def test_class_weight_to_sample_weight_matches_keras(y):
    import os

    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras_utils = pytest.importorskip("keras.src.trainers.data_adapters.data_adapter_utils")
    from shenjing.data import class_weight_to_sample_weight

    class_weight = {0: 0.5, 1: 2.0, 2: 3.0}
    expected = keras_utils.class_weight_to_sample_weights(y, class_weight)
    np.testing.assert_array_equal(class_weight_to_sample_weight(y, class_weight), expected)


def test_class_weight_to_sample_weight_errors():
    from shenjing.data import class_weight_to_sample_weight

    with pytest.raises(TypeError, match="expected a dict"):
        class_weight_to_sample_weight(np.zeros(3), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 4\)"):
        class_weight_to_sample_weight(np.zeros((2, 3, 4, 5)), {0: 1.0})
