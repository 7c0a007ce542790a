"""W3/W4: an LSTM training step (batch 64, T=50, 32 features, 128 units -> Dense(10) on the last
h, softmax cross-entropy, Adam) and LSTM inference (batch 256), shenjing's ops against PyTorch
eager (torch.nn.LSTM + Linear), in one process.

Run: python benchmarks/bench_lstm.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import blocks_ms, print_table

N, T, D, U, K = 64, 50, 32, 128, 10


def shenjing_step(rng):
    """One training step built from shenjing.ops and shenjing.optimizers.Adam."""
    import shenjing as sj
    from shenjing.ops.loss import sparse_categorical_crossentropy
    from shenjing.ops.matmul import dense
    from shenjing.ops.recurrent import lstm
    from shenjing.optimizers import Adam

    x = rng.standard_normal((N, T, D), dtype=np.float32)
    y = rng.integers(0, K, N)
    shapes = [(D, 4 * U), (U, 4 * U), (4 * U,), (U, K), (K,)]
    params = [sj.Tensor(rng.standard_normal(s, dtype=np.float32) * 0.1, requires_grad=True)
              for s in shapes]
    opt = Adam()

    def step():
        kernel, recurrent, bias, w, b = params
        _, h, _ = lstm(x, kernel, recurrent, bias)
        sparse_categorical_crossentropy(y, dense(h, w, b), from_logits=True).backward()
        opt.apply(params)
        for p in params:
            p.grad = None

    return step


def shenjing_model_step(rng):
    """The same step through the Keras-style API: Sequential.train_on_batch."""
    import shenjing as sj
    from shenjing import layers

    x = rng.standard_normal((N, T, D), dtype=np.float32)
    y = rng.integers(0, K, N)
    model = sj.Sequential([layers.Input((T, D)), layers.LSTM(U), layers.Dense(K)])
    model.compile(optimizer=sj.optimizers.Adam(),
                  loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))
    return lambda: model.train_on_batch(x, y)


def torch_step(torch, rng):
    x = torch.tensor(rng.standard_normal((N, T, D), dtype=np.float32))
    y = torch.tensor(rng.integers(0, K, N))
    rnn, head = torch.nn.LSTM(D, U, batch_first=True), torch.nn.Linear(U, K)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3, eps=1e-7)

    def step():
        opt.zero_grad()
        _, (h, _) = rnn(x)
        torch.nn.functional.cross_entropy(head(h[0]), y).backward()
        opt.step()

    return step


def run():
    """Rows (workload, shenjing ms, torch ms). This torch build sends nn.LSTM to oneDNN's fused
    RNN kernel on CPUs it supports; the last two rows time torch with oneDNN off (ATen's loop of
    per-step products), which is what the project's reference figures measured."""
    import torch

    import shenjing as sj
    from shenjing.ops.recurrent import lstm

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, T, D), dtype=np.float32)
    weights = [rng.standard_normal(s, dtype=np.float32) * 0.1
               for s in [(D, 4 * U), (U, 4 * U), (4 * U,)]]
    rnn, tx = torch.nn.LSTM(D, U, batch_first=True), torch.tensor(x)

    def ours_infer():
        with sj.no_grad():
            lstm(x, *weights)

    def torch_infer():
        with torch.no_grad():
            rnn(tx)

    train = blocks_ms(shenjing_step(rng), torch_step(torch, rng))
    infer = blocks_ms(ours_infer, torch_infer)
    model_row = ("W3 via Sequential.train_on_batch",
                 *blocks_ms(shenjing_model_step(rng), torch_step(torch, rng)))
    torch.backends.mkldnn.enabled = False
    try:
        plain = [blocks_ms(shenjing_step(rng), torch_step(torch, rng)),
                 blocks_ms(ours_infer, torch_infer)]
    finally:
        torch.backends.mkldnn.enabled = True
    ours = [train[0], infer[0]] + [row[0] for row in plain]
    theirs = [train[1], infer[1]] + [row[1] for row in plain]
    names = ["W3 LSTM train step, b64 T50 d32 u128 -> Dense 10, Adam",
             "W4 LSTM inference, b256 T50 d32 u128"]
    names += [f"{name} (torch without oneDNN)" for name in names]
    return list(zip(names, ours, theirs)) + [model_row]


if __name__ == "__main__":
    print_table(run())
