"""DataParallel's pieces in one process (no MPI): slices, buckets, arguments, threads, and that
one process with the DataParallel lines trains exactly as without them."""

import itertools
import sys

import numpy as np
import pytest

import shenjing as sj
from shenjing import layers as L
from shenjing.distribution import context, data_parallel
from shenjing.errors import ArgumentError, ArgumentTypeError
from shenjing.ops import parallel


class Alone:
    """A communicator of one process: every collective hands back what it was given."""

    rank, size, local_rank, local_size = 0, 1, 0, 1

    def allreduce_sum(self, array):
        return np.array(array, copy=True)

    def allreduce_sum_(self, buffer):
        pass

    def allgather(self, array):
        return np.asarray(array)[None].copy()

    def allgather_object(self, value):
        return [value]

    def broadcast_(self, array, root=0):
        pass


class Posing(Alone):
    """Rank `rank` of `size`, to test what a rank computes on its own."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.fixture(autouse=True)
def no_distribution():
    yield
    sj.distribution.set_distribution(None)


@pytest.mark.parametrize("n, size", [(16, 2), (37, 2), (1, 2), (10, 3), (2, 4), (100, 7)])
def test_slices_cover_the_batch_once_as_evenly_as_possible(n, size):
    slices = [data_parallel.DataParallel(communicator=Posing(r, size)).slice_of(n)
              for r in range(size)]
    assert slices[0][0] == 0 and slices[-1][1] == n
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    counts = [hi - lo for lo, hi in slices]
    assert max(counts) - min(counts) <= 1 and counts == sorted(counts, reverse=True)


def test_a_rank_with_no_sample_gets_a_stand_in_with_share_0():
    dp = data_parallel.DataParallel(communicator=Posing(1, 2))
    x, y = np.arange(3.0)[:, None], np.arange(3)
    (lx, ly), share, stand_in = dp.local_batch((x[:1], y[:1]))
    assert stand_in and share == 0.0 and lx.tolist() == [[0.0]]
    (lx, ly), share, stand_in = dp.local_batch((x, y))
    assert not stand_in and share == 1 / 3 and ly.tolist() == [2]


def test_gradients_go_in_few_buckets_by_dtype_and_size():
    arrays = [np.zeros(250, np.float32), np.zeros(250, np.float32), np.zeros(10, np.float64),
              np.zeros(500, np.float32)]
    buckets = list(data_parallel._buckets(arrays, limit=2000))  # bytes
    assert buckets == [[0, 1], [3], [2]]  # float32 1000 + 1000, then 2000; float64 alone
    parts = dict(data_parallel._through_buckets([a + i for i, a in enumerate(arrays)], 2000,
                                                Alone().allreduce_sum_))
    summed = [parts[i] for i in range(len(arrays))]
    assert [float(s[0]) for s in summed] == [0.0, 1.0, 2.0, 3.0]
    assert [s.shape for s in summed] == [a.shape for a in arrays]


def test_one_process_with_the_lines_trains_exactly_as_without():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6, 6, 2)), rng.integers(0, 3, 30)

    def train():
        sj.utils.set_random_seed(3)
        model = sj.Sequential([L.Input((6, 6, 2)), L.Conv2D(4, 3),
                               L.BatchNormalization(synchronized=True), L.Flatten(),
                               L.Dropout(0.3), L.Dense(3)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        return model.get_weights(), history.history, model.predict(x, verbose=0)

    without = train()
    sj.distribution.set_distribution(sj.distribution.DataParallel(communicator=Alone()))
    assert sj.distribution.distribution().size == 1
    with_lines = train()
    for a, b in zip(without[0] + [without[2]], with_lines[0] + [with_lines[2]]):
        np.testing.assert_array_equal(a, b)
    assert without[1] == with_lines[1]


def test_arguments_are_checked():
    with pytest.raises(ArgumentError, match="devices"):
        sj.distribution.DataParallel(devices=["cpu:0"], communicator=Alone())
    with pytest.raises(ArgumentError, match="auto_shard_dataset"):
        sj.distribution.DataParallel(auto_shard_dataset=False, communicator=Alone())
    with pytest.raises(ArgumentTypeError, match="DataParallel or None"):
        sj.distribution.set_distribution("data_parallel")


def test_without_the_extra_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"pip install 'shenjing\[distributed\]'"):
        sj.distribution.DataParallel()


def test_a_metric_with_unknown_state_is_refused_by_name():
    class Last(sj.metrics.Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            self.value = float(np.mean(y_pred))

        def result(self):
            return getattr(self, "value", 0.0)

    model = sj.Sequential([L.Input((2,)), L.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=[Last(name="last")])
    model.train_on_batch(np.ones((2, 2)), np.ones((2, 1)))
    with pytest.raises(ArgumentError, match="metric 'last'.*distributed_state"):
        sj.distribution.metrics_sync.check_metrics(model, "DataParallel")


@pytest.mark.parametrize("cores, bound, ranks, expected", [
    (8, False, 2, 4),  # all 8 cores visible to each of 2 ranks: 4 each
    (8, False, 3, 2),
    (2, True, 2, 2),  # mpiexec bound this rank to 2 of the machine's cores: kept
    (1, False, 4, 1),
])
def test_ranks_on_one_host_share_its_cores(monkeypatch, cores, bound, ranks, expected):
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(parallel.os, "cpu_count", lambda: cores + 8 * bound)
    monkeypatch.setattr(parallel, "CHOSEN", False)
    before = parallel.THREADS
    try:
        parallel.share_cores(ranks)
        assert parallel.THREADS == expected
        monkeypatch.setattr(parallel, "CHOSEN", True)  # SHENJING_NUM_THREADS / set_num_threads
        parallel.share_cores(8)
        assert parallel.THREADS == expected
    finally:
        parallel.set_threads(before)


def test_context_outside_a_distribution_is_the_identity():
    assert context.size() == 1 and context.rank() == 0 and context.writes_files()
    assert context.loss_share() == 1.0 and context.sample_scale() == 1.0
    a = np.arange(3.0)
    np.testing.assert_array_equal(context.allreduce_sum(a), a)
    assert context.allgather(a).shape == (1, 3)


def test_a_loss_that_is_not_a_mean_over_the_batch_is_refused():
    dp = sj.distribution.DataParallel(communicator=Alone())
    model = sj.Sequential([L.Input((2,)), L.Dense(1)])
    model.compile(optimizer="sgd", loss=sj.losses.MeanSquaredError(reduction="sum"))
    with pytest.raises(ArgumentError, match="reduction='sum'.*sum_over_batch_size"):
        dp.begin(model, "fit")
    model.compile(optimizer="sgd", loss=sj.losses.MeanSquaredError())
    dp.begin(model, "fit")  # the default: a mean over the batch
