"""DataParallel under `mpiexec -n 2`: the programs in programs.py, run on 2 ranks and alone.

The reference for "the same training" is shenjing in one process with the same global batch
(itself checked against PyTorch in tests/ops and tests/models); for unsynchronized batch norm it
is an emulation without shenjing.distribution (programs.local_statistics_reference).
"""

import os
import time

import numpy as np
import pytest

from tests.distribution.mpi import load, mpiexec, relative, run

FLOAT64 = 1e-12  # relative, as the issue asks; measured: <= 1.1e-15


@pytest.fixture(scope="module")
def equivalence(tmp_path_factory):
    mpiexec()
    out = tmp_path_factory.mktemp("equivalence")
    run("equivalence", out, processes=None)
    run("equivalence", out, processes=2)
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """resume()'s reference: 4 epochs in one go, in one process."""
    mpiexec()
    out = tmp_path_factory.mktemp("uninterrupted")
    run("resume", out, "reference", processes=None)
    return load(out, "reference", 1)


def _compare(out, case, tolerance):
    one, two = load(out, case, 1), load(out, case, 2)
    worst = {key: relative(two[key], one[key]) for key in one}
    assert max(worst.values()) <= tolerance, worst
    return two


@pytest.mark.parametrize("case", ["cnn_sync", "cnn_sync_uneven", "cnn_sync_stand_in",
                                  "one_sample", "lstm", "masked_lstm", "generator"])
def test_two_ranks_train_as_one_process_in_float64(equivalence, case):
    """fit (2 epochs, shuffled), one train_on_batch, predict and evaluate: weights, the
    history's global loss and metrics, predictions and evaluation agree to 1e-12; uneven: 37
    samples in batches of 10 (slices 5/5, last 4/3); stand-in: a last batch of 1 sample, so
    rank 1 joins the step with a stand-in that counts for nothing; one sample: rank 1 holds
    none in any step, from the first (its metrics are made by a stand-in); masked LSTM: padded
    sequences, the loss a mean over the global batch's unmasked steps (29 in batches of 8);
    generator: the same batches on every rank, each rank a slice."""
    two = _compare(equivalence, case, FLOAT64)
    other = load(equivalence, case, 2, rank=1)
    for key in two:  # the same bits on both ranks: the same sums, in the same order
        np.testing.assert_array_equal(two[key], other[key], err_msg=key)


def test_two_ranks_train_as_one_process_in_float32(equivalence):
    _compare(equivalence, "cnn_float32", 1e-5)


def test_unsynchronized_batch_norm_uses_each_ranks_statistics(equivalence):
    """Without synchronized=True each rank normalizes its 8 samples with their own statistics:
    the result is that of per-rank statistics (the emulation), not the global batch's."""
    two = load(equivalence, "cnn_local", 2)["after_fit"]
    emulated = load(equivalence, "cnn_local_reference", 1)["after_fit"]
    global_batch = load(equivalence, "cnn_local", 1)["after_fit"]
    assert relative(two, emulated) <= FLOAT64
    assert relative(two, global_batch) > 1e-3  # the notes' small-batch caveat, measured
    # the moving statistics are averaged: the same on both ranks
    np.testing.assert_array_equal(load(equivalence, "cnn_local", 2, rank=1)["after_fit"], two)


def test_each_rank_draws_from_its_own_random_stream(equivalence):
    """Seeded alike, rank 0 goes on as one process would, and rank 1 draws other numbers (its
    dropout masks are not rank 0's)."""
    one = load(equivalence, "streams", 1)["draws"]
    rank0, rank1 = (load(equivalence, "streams", 2, rank)["draws"] for rank in (0, 1))
    np.testing.assert_array_equal(rank0, one)
    assert not np.isin(rank1, rank0).any()


def test_only_rank_0_prints_and_writes(tmp_path):
    done = run("files", tmp_path)
    assert done.stdout.count("Epoch 1/2") == 1 and done.stdout.count("Epoch 2/2") == 1
    written = {os.path.relpath(os.path.join(root, name), tmp_path / "r0")
               for root, _, names in os.walk(tmp_path / "r0") for name in names}
    assert {"ckpt-1.shenjing", "ckpt-2.shenjing", "log.csv", "final.shenjing",
            "final.weights.h5"} <= written
    assert any(name.startswith("tb/train/events") for name in written)
    assert [names for _, _, names in os.walk(tmp_path / "r1") if names] == []
    with open(tmp_path / "r0" / "log.csv") as f:
        assert len(f.read().splitlines()) == 3  # header + 2 epochs, written once


def test_early_stopping_stops_every_rank_in_the_same_epoch(tmp_path):
    run("early_stopping", tmp_path, processes=None)
    run("early_stopping", tmp_path)
    one, ranks = load(tmp_path, "early_stopping", 1), [
        load(tmp_path, "early_stopping", 2, rank) for rank in (0, 1)]
    for two in ranks:
        # EarlyStopping saw the global val_loss: the epoch one process stops in
        assert two["epochs"][0] == one["epochs"][0] < 12
        assert relative(two["h_val_loss"], one["h_val_loss"]) <= FLOAT64
        assert two["epochs"][1] == 3  # a stop asked on rank 1 alone, after epoch 3
    np.testing.assert_array_equal(ranks[0]["epochs"], ranks[1]["epochs"])


@pytest.mark.parametrize("train, resume", [(2, None), (None, 2)])
def test_a_checkpoint_from_n_ranks_resumes_under_m(tmp_path, uninterrupted, train, resume):
    """Stopped after the mid-epoch checkpoint at batch 9 (epoch 2, batch 3), resumed with
    another number of processes: the same weights and epoch logs (the resumed epoch's loss
    covers its first 3 batches too) as 4 epochs in one go."""
    run("resume", tmp_path, "train", processes=train)
    run("resume", tmp_path, "resume", processes=resume)
    resumed = load(tmp_path, "resumed", resume or 1)
    for key, value in uninterrupted.items():
        expected = value[-len(resumed[key]):] if key.startswith("h_") else value
        assert len(resumed[key]) == len(expected) and relative(resumed[key], expected) <= FLOAT64


def test_after_a_failure_the_job_restarts_from_its_backup(tmp_path, uninterrupted):
    """Rank 1 fails in epoch 3 (batch 4 of 6): the job ends, and the backup rank 0 wrote after
    epoch 2 stays; the same script started again goes on from it and ends as 4 epochs in one
    go."""
    crashed = run("backup", tmp_path, "crash", check=False)
    assert crashed.returncode != 0 and "rank 1 lost its data" in crashed.stderr
    assert not os.path.exists(tmp_path / "restarted-2-r0.npz")
    run("backup", tmp_path, "restart")
    restarted = load(tmp_path, "restarted", 2)
    assert len(restarted["h_loss"]) == 2  # epochs 3 and 4
    for key, value in uninterrupted.items():
        expected = value[-len(restarted[key]):] if key.startswith("h_") else value
        assert relative(restarted[key], expected) <= FLOAT64, key


@pytest.mark.parametrize("how, message", [
    ("raise", "OSError: disk full on rank 1 (simulated)"),
    ("model", "rank 1 differs from rank 0 in the model's weights"),
    ("data", "rank 1 differs from rank 0 in 'samples': 30 vs 32"),
    ("shard", "rank 1 differs from rank 0 in the data it reads"),
    ("generator", "the ranks hold different batches of the same size"),
])
def test_one_rank_failing_ends_the_job_with_its_error(tmp_path, how, message):
    """An exception on rank 1 (the others wait in a collective) ends the job within seconds,
    with rank 1's error on stderr; a model or data that differ are refused at the start."""
    start = time.monotonic()
    done = run("fails", tmp_path, how, check=False, timeout=120)
    assert done.returncode != 0
    assert time.monotonic() - start < 60
    assert message in done.stderr
    assert "of 2 failed in Sequential.fit" in done.stderr
    assert '"finished": true' not in done.stdout
