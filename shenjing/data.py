"""Batching helpers for aligned arrays (x, y, sample weights) that do not fit in one batch."""

import math

import numpy as np


def num_batches(n, batch_size, drop_remainder=False):
    """Batches in `n` samples: ceil(n / batch_size), or floor(...) with drop_remainder."""
    _check_batch_size("num_batches", batch_size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"num_batches: n must be an int >= 0, got {n!r}.")
    return n // batch_size if drop_remainder else -(-n // batch_size)


def batches(arrays, batch_size, shuffle=False, rng=None, drop_remainder=False):
    """Iterate over aligned arrays in batches along axis 0.

    Yields a tuple of slices per batch (None stays None), or plain slices when `arrays` is
    one array. Unshuffled batches are views; shuffled ones gather rows by a permutation
    drawn once per call from `rng` (a np.random.Generator, an int seed, or None: fresh).
    Args: arrays (array, or tuple/list of arrays or None, equal lengths); batch_size (int
    >= 1); shuffle; rng; drop_remainder (skip a last batch smaller than batch_size).
    """
    single, items, n = _as_items("batches", arrays)
    _check_batch_size("batches", batch_size)
    order = _generator("batches", rng).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_remainder else n
    return _iterate(single, items, order, batch_size, stop)


def _iterate(single, items, order, batch_size, stop):
    for start in range(0, stop, batch_size):
        if order is None:
            index = slice(start, start + batch_size)
        else:
            index = order[start : start + batch_size]
        part = tuple(None if a is None else a[index] for a in items)
        yield part[0] if single else part


def split_validation(arrays, validation_split):
    """Keras's validation_split: the LAST fraction of the samples, before any shuffling.

    split_at = floor(n * (1 - validation_split)); returns (train, validation), each shaped
    like `arrays` (one array, or a tuple with None kept as None): rows [:split_at], [split_at:].
    """
    single, items, n = _as_items("split_validation", arrays)
    if not isinstance(validation_split, (float, int, np.floating)) or not (
        0.0 < validation_split < 1.0
    ):
        raise ValueError(
            f"split_validation: validation_split must be a float in (0, 1), "
            f"got {validation_split!r}."
        )
    split_at = int(math.floor(n * (1.0 - validation_split)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"split_validation: {n} samples are too few to split with "
            f"validation_split={validation_split} (train part would get {split_at})."
        )
    train = tuple(None if a is None else a[:split_at] for a in items)
    val = tuple(None if a is None else a[split_at:] for a in items)
    return (train[0], val[0]) if single else (train, val)


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot rows: out[..., k] = 1 where y == k, like keras.utils.to_categorical.

    A trailing axis of size 1 is dropped first, so labels (N, 1) give (N, num_classes).
    Args: y (integer class ids in 0..num_classes - 1); num_classes (None: max(y) + 1); dtype.
    """
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iub":
        raise TypeError(f"to_categorical: expected integer class ids, got dtype {y.dtype}.")
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    y = y.reshape(-1).astype(np.int64)
    if num_classes is None:
        if y.size == 0:
            raise ValueError("to_categorical: num_classes is needed when y is empty.")
        num_classes = int(y.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"to_categorical: num_classes must be an int, got {num_classes!r}.")
    if num_classes < 1:
        raise ValueError(f"to_categorical: num_classes must be >= 1, got {num_classes}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"to_categorical: class ids must lie in 0..{num_classes - 1}, "
            f"got values from {y.min()} to {y.max()}."
        )
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(*shape, num_classes)


def _as_items(name, arrays):
    # (single?, tuple of arrays or None, common length), checking the lengths agree
    single = not isinstance(arrays, (tuple, list))
    items = (arrays,) if single else tuple(arrays)
    items = tuple(a if a is None or isinstance(a, np.ndarray) else np.asarray(a) for a in items)
    lengths = {a.shape[0] if a.ndim else None for a in items if a is not None}
    if not lengths:
        raise ValueError(f"{name}: expected at least one array, got {arrays!r}.")
    if None in lengths:
        raise ValueError(f"{name}: arrays need a batch axis, got a 0-d array.")
    if len(lengths) > 1:
        shapes = [None if a is None else a.shape for a in items]
        raise ValueError(
            f"{name}: arrays must have the same length along axis 0, got shapes {shapes}."
        )
    return single, items, lengths.pop()


def _check_batch_size(name, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"{name}: batch_size must be an int >= 1, got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"{name}: batch_size must be an int >= 1, got {batch_size}.")


def _generator(name, rng):
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(
        f"{name}: rng must be a np.random.Generator, an int seed or None, "
        f"got {type(rng).__name__}."
    )
