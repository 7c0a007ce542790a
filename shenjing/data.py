"""Batching helpers for aligned arrays (x, y, sample weights) that do not fit in one batch.

PyDataset is the base class of a dataset of batches for fit (shenjing.utils.PyDataset).
Also sequence helpers: forecasting windows over a time series (sliding_windows,
timeseries_split, Scaler, forecast_windows) and pad_sequences for ragged sequences.
"""

import math

import numpy as np

from .arguments import fail
from .errors import ArgumentError, ArgumentTypeError


def num_batches(n, batch_size, drop_remainder=False):
    """Batches in `n` samples: ceil(n / batch_size), or floor(...) with drop_remainder."""
    _check_batch_size("num_batches", batch_size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ArgumentError(f"num_batches: n must be an int >= 0, got {n!r}.")
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
        raise ArgumentError(
            f"split_validation: validation_split must be a float in (0, 1), "
            f"got {validation_split!r}."
        )
    split_at = math.floor(n * (1.0 - validation_split))
    if split_at == 0 or split_at == n:
        raise ArgumentError(
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
        raise ArgumentTypeError(
            f"to_categorical: expected integer class ids, got dtype {y.dtype}.")
    shape = y.shape[:-1] if y.ndim > 1 and y.shape[-1] == 1 else y.shape
    y = y.reshape(-1).astype(np.int64)
    if num_classes is None:
        if y.size == 0:
            raise ArgumentError("to_categorical: num_classes is needed when y is empty.")
        num_classes = int(y.max()) + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise ArgumentError(f"to_categorical: num_classes must be an int, got {num_classes!r}.")
    if num_classes < 1:
        raise ArgumentError(f"to_categorical: num_classes must be >= 1, got {num_classes}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ArgumentError(
            f"to_categorical: class ids must lie in 0..{num_classes - 1}, "
            f"got values from {y.min()} to {y.max()}."
        )
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(*shape, num_classes)


def class_weight_to_sample_weight(y, class_weight, dtype="float32"):
    """One weight per sample from a {class id: weight} map, as Keras's fit(class_weight=...):
    the class of a row is its argmax for one-hot y (..., K > 1), else round(y); classes the map
    does not name weigh 1."""
    if not isinstance(class_weight, dict):
        raise ArgumentTypeError(f"class_weight: expected a dict {{class id: weight}}, got "
                                f"{type(class_weight).__name__}.")
    y = np.asarray(y)
    if y.ndim > 1:
        y = np.argmax(y, axis=-1) if y.shape[-1] != 1 else np.squeeze(y, axis=-1)
    if y.ndim != 1:
        raise ArgumentError(f"class_weight: expected targets (samples,), (samples, 1) or one-hot "
                            f"(samples, classes), got shape {np.shape(y)}.")
    classes = np.round(y).astype(np.int64)
    weights = np.ones(len(classes), dtype=dtype)
    for label, weight in class_weight.items():
        weights[classes == int(label)] = weight
    return weights


class PyDataset:
    """Base class for a dataset of batches: ``__len__`` (batches per epoch), ``__getitem__(i)``
    (batch i as (x,), (x, y) or (x, y, sample_weight)) and optionally ``on_epoch_end``.

    Shuffling within batches is the dataset's job; fit(shuffle=True) shuffles the batch order
    as Keras does. Args (Keras's): workers, use_multiprocessing, max_queue_size; only their
    defaults are taken, since shenjing loads every batch in the calling thread.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        where = type(self).__name__
        for name, value, allowed in (("workers", workers, (0, 1)),
                                     ("use_multiprocessing", use_multiprocessing, (False,)),
                                     ("max_queue_size", max_queue_size, (10,))):
            if isinstance(value, bool) != (name == "use_multiprocessing") or value not in allowed:
                raise fail(where, f"{name}={value!r} asks for parallel loading, but shenjing "
                                  "loads each batch in the calling thread (NumPy already uses "
                                  f"the cores within each step); leave {name} at its default "
                                  f"{allowed[-1]!r}.")
        self.workers, self.use_multiprocessing = workers, use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: implement __getitem__(index).")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__}: implement __len__().")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


# --- time series and ragged sequences ------------------------------------------------------


def sliding_windows(series, window, horizon=1, stride=1):
    """Forecasting pairs from one series: x[i] = series[s : s + window] and
    y[i] = series[s + window : s + window + horizon], with s = i * stride.

    N = (T - window - horizon) // stride + 1 pairs, cut from one strided view (no loop over
    positions) and returned as contiguous copies in the series' dtype.
    Args: series ((T,) or (T, F)); window, horizon, stride (ints >= 1).
    Returns x (N, window, F), F = 1 for a 1-D series, and y (N, horizon) for a 1-D series,
    (N, horizon, F) otherwise; y[:, -1] is the value `horizon` steps after each window.
    """
    series = np.asarray(series)
    for arg, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        _check_int("sliding_windows", arg, value, 1)
    if series.ndim not in (1, 2):
        raise ArgumentError(
            "sliding_windows: expected a series of rank 1 (time,) or 2 (time, features), "
            f"got shape {series.shape}."
        )
    if window + horizon > len(series):
        raise ArgumentError(
            f"sliding_windows: window + horizon = {window} + {horizon} exceeds the series "
            f"length {len(series)}."
        )
    # span (N, [F,] window + horizon): sliding_window_view puts the window axis last
    span = np.lib.stride_tricks.sliding_window_view(series, window + horizon, axis=0)[::stride]
    span = np.moveaxis(span, -1, 1)  # (N, window + horizon, [F])
    x, y = span[:, :window], span[:, window:]
    if series.ndim == 1:
        x = x[..., None]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def timeseries_split(series, test_fraction=0.2, overlap=0):
    """Chronological split, no shuffling: train = series[:k], test = series[k - overlap:],
    k = floor(T * (1 - test_fraction)), so the test part is the end of the series.

    overlap = window lets the first test window look back into the training part, so that
    sliding_windows on the test part gives targets from series[k] on.
    """
    series = np.asarray(series)
    if series.ndim == 0:
        raise ArgumentError(
            "timeseries_split: expected a series with a time axis, got a 0-d array.")
    if not isinstance(test_fraction, (float, int, np.floating)) or not 0 < test_fraction < 1:
        raise ArgumentError(
            f"timeseries_split: test_fraction must be a float in (0, 1), got {test_fraction!r}."
        )
    k = math.floor(len(series) * (1.0 - test_fraction))
    if k == 0 or k == len(series):
        raise ArgumentError(
            f"timeseries_split: {len(series)} time steps are too few to split with "
            f"test_fraction={test_fraction} (train part would get {k})."
        )
    _check_int("timeseries_split", "overlap", overlap, 0)
    if overlap > k:
        raise ArgumentError(
            f"timeseries_split: overlap must be <= the train length {k}, got {overlap}."
        )
    return series[:k], series[k - overlap :]


class Scaler:
    """Affine scaling with statistics from training data: transform(a) = (a - offset) / scale.

    Methods: "standard" (offset mean, scale std), "minmax" (offset min, scale max - min, so
    the data maps onto [0, 1]) or "none" (0 and 1). Statistics are per feature (last axis)
    for a 2-D series; a zero spread scales by 1. offset and scale keep the data's float dtype,
    so float32 stays float32; inverse_transform(a) = a * scale + offset undoes transform.
    """

    METHODS = ("standard", "minmax", "none")

    def __init__(self, offset, scale, method="standard"):
        self.offset, self.scale, self.method = np.asarray(offset), np.asarray(scale), method

    @classmethod
    def fit(cls, data, method="standard"):
        """A Scaler from `data` ((T,) or (T, F)) and `method`, statistics over axis 0."""
        if method not in cls.METHODS:
            raise ArgumentError(
                f"Scaler.fit: method must be one of {cls.METHODS}, got {method!r}.")
        data = np.asarray(data)
        if data.dtype.kind != "f":
            data = data.astype(np.float64)
        if data.ndim not in (1, 2) or len(data) == 0:
            raise ArgumentError(
                f"Scaler.fit: expected data (T,) or (T, F), T >= 1, got {data.shape}."
            )
        if method == "standard":
            offset, scale = data.mean(axis=0), data.std(axis=0)
        elif method == "minmax":
            offset, scale = data.min(axis=0), data.max(axis=0) - data.min(axis=0)
        else:
            offset, scale = np.zeros(data.shape[1:]), np.ones(data.shape[1:])
        scale = np.where(scale > 0, scale, 1)
        return cls(np.asarray(offset, data.dtype), np.asarray(scale, data.dtype), method)

    def transform(self, a):
        return (np.asarray(a) - self.offset) / self.scale

    def inverse_transform(self, a):
        return np.asarray(a) * self.scale + self.offset

    def __repr__(self):
        return f"Scaler(offset={self.offset!r}, scale={self.scale!r}, method={self.method!r})"


def forecast_windows(series, window, horizon=1, test_fraction=0.2, scale=None, stride=1):
    """Train and test windows of one series, split in time, scaled with training stats only.

    With k = floor(T * (1 - test_fraction)), training windows lie wholly in series[:k] and
    the test targets start at series[k] (test inputs may look back into the training part).
    Args: series ((T,) or (T, F)); window, horizon, stride (see sliding_windows);
    test_fraction; scale (None, "standard" or "minmax": a Scaler fitted on series[:k]).
    Returns ((x_train, y_train), (x_test, y_test), scaler); scaler.inverse_transform(pred)
    gives predictions back in the series' units (scale=None: the identity).
    """
    series = np.asarray(series)
    if series.dtype.kind != "f":
        series = series.astype(np.float64)
    for arg, value in (("window", window), ("horizon", horizon), ("stride", stride)):
        _check_int("forecast_windows", arg, value, 1)
    train, test = timeseries_split(series, test_fraction)
    for part, size, need in (
        ("train", len(train), window + horizon),
        ("test", len(test), horizon),
    ):
        if size < need:
            raise ArgumentError(
                f"forecast_windows: the {part} part has {size} time steps, fewer than the "
                f"{need} needed for window={window}, horizon={horizon}; use a shorter window "
                "or horizon or another test_fraction."
            )
    test = series[len(train) - window :]  # the first test window looks back into train
    scaler = Scaler.fit(train, "none" if scale is None else scale)
    x_train, y_train = sliding_windows(scaler.transform(train), window, horizon, stride)
    x_test, y_test = sliding_windows(scaler.transform(test), window, horizon, stride)
    return (x_train, y_train), (x_test, y_test), scaler


def pad_sequences(
    sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0
):
    """Ragged sequences into one array (N, maxlen, ...), like keras.utils.pad_sequences.

    Shorter sequences get `value` before ("pre") or after ("post") their items; longer ones
    lose items at the start ("pre") or the end ("post"). Items are scalars or arrays of one
    shape, taken from the first non-empty sequence.
    Args: sequences (list of sequences); maxlen (int >= 1, None: the longest length); dtype;
    padding, truncating ("pre" or "post"; Keras's defaults are "pre"); value (fill value).
    """
    if not hasattr(sequences, "__len__"):
        raise ArgumentTypeError(
            f"pad_sequences: expected a list of sequences, got {type(sequences).__name__}."
        )
    for arg, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise ArgumentError(f"pad_sequences: {arg} must be 'pre' or 'post', got {choice!r}.")
    lengths, item_shape = [], None
    for i, s in enumerate(sequences):
        if not hasattr(s, "__len__"):
            raise ArgumentError(f"pad_sequences: sequence {i} has no length, got {s!r}.")
        lengths.append(len(s))
        if item_shape is None and len(s):
            item_shape = np.asarray(s).shape[1:]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    else:
        _check_int("pad_sequences", "maxlen", maxlen, 1)
    text = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_) or dtype is object
    if isinstance(value, str) and not text:
        raise ArgumentError(
            f"pad_sequences: a string value {value!r} needs dtype=object or a string dtype, "
            f"got dtype {dtype!r}."
        )
    out = np.full((len(lengths), maxlen, *(item_shape or ())), value, dtype=dtype)
    for i, (s, n) in enumerate(zip(sequences, lengths, strict=True)):
        if n == 0:
            continue
        part = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if part.shape[1:] != item_shape:
            raise ArgumentError(
                f"pad_sequences: items of sequence {i} have shape {part.shape[1:]}, expected "
                f"{item_shape} (from the first non-empty sequence)."
            )
        if padding == "pre":
            out[i, maxlen - len(part) :] = part
        else:
            out[i, : len(part)] = part
    return out


def _as_items(name, arrays):
    # (single?, tuple of arrays or None, common length), checking the lengths agree
    single = not isinstance(arrays, (tuple, list))
    items = (arrays,) if single else tuple(arrays)
    items = tuple(a if a is None or isinstance(a, np.ndarray) else np.asarray(a) for a in items)
    lengths = {a.shape[0] if a.ndim else None for a in items if a is not None}
    if not lengths:
        raise ArgumentError(f"{name}: expected at least one array, got {arrays!r}.")
    if None in lengths:
        raise ArgumentError(f"{name}: arrays need a batch axis, got a 0-d array.")
    if len(lengths) > 1:
        shapes = [None if a is None else a.shape for a in items]
        raise ArgumentError(
            f"{name}: arrays must have the same length along axis 0, got shapes {shapes}."
        )
    return single, items, lengths.pop()


def _check_batch_size(name, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ArgumentError(f"{name}: batch_size must be an int >= 1, got {batch_size!r}.")
    if batch_size < 1:
        raise ArgumentError(f"{name}: batch_size must be an int >= 1, got {batch_size}.")


def _generator(name, rng):
    if rng is None or isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise ArgumentTypeError(
        f"{name}: rng must be a np.random.Generator, an int seed or None, "
        f"got {type(rng).__name__}."
    )


def _check_int(name, arg, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArgumentError(f"{name}: {arg} must be an int >= {minimum}, got {value!r}.")
