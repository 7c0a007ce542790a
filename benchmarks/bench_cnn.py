"""W1/W2: the reference CNN's training step (batch 64, Adam) and inference (batch 256),
shenjing's train_on_batch / predict_on_batch against PyTorch eager, in one process.

Conv(32,3,same)-BN-ReLU-MaxPool-Conv(64,3,same)-BN-ReLU-MaxPool-Flatten-Dense(128)-Dense(10).
Run: python benchmarks/bench_cnn.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import blocks_ms, print_table  # noqa: E402


def shenjing_cnn():
    import shenjing as sj
    from shenjing import layers as L

    return sj.Sequential([
        L.Input((28, 28, 1)), L.Conv2D(32, 3, padding="same"), L.BatchNormalization(),
        L.Activation("relu"), L.MaxPooling2D(), L.Conv2D(64, 3, padding="same"),
        L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(), L.Flatten(),
        L.Dense(128), L.Dense(10),
    ])


def torch_cnn(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32, eps=1e-3, momentum=0.01), nn.ReLU(),
        nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64, eps=1e-3, momentum=0.01),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(7 * 7 * 64, 128), nn.Linear(128, 10),
    )


def run():
    import torch

    import shenjing as sj

    rng = np.random.default_rng(0)
    x = rng.random((64, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    x_big = rng.random((256, 28, 28, 1), dtype=np.float32)

    model = shenjing_cnn()
    model.compile(optimizer=sj.optimizers.Adam(), loss=sj.losses.SparseCategoricalCrossentropy(from_logits=True))

    net = torch_cnn(torch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
    tx, ty = torch.tensor(x).permute(0, 3, 1, 2).contiguous(), torch.tensor(y)
    tx_big = torch.tensor(x_big).permute(0, 3, 1, 2).contiguous()

    def torch_step():
        net.train()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        opt.step()

    def torch_infer():
        net.eval()
        with torch.no_grad():
            net(tx_big)

    ours_train, theirs_train = blocks_ms(lambda: model.train_on_batch(x, y), torch_step)
    ours_infer, theirs_infer = blocks_ms(lambda: model.predict_on_batch(x_big), torch_infer)
    # predict hands malloc's settings back when it returns (shenjing/memory.py; it trims only
    # when it kept over 64 MiB), so PyTorch, in the same process, then runs without the malloc
    # setting that *_on_batch leaves in place: that row's own PyTorch time is not comparable
    ours_predict, _ = blocks_ms(
        lambda: model.predict(x_big, batch_size=256, verbose=0), torch_infer)
    return [("W1 CNN train step, batch 64 (train_on_batch)", ours_train, theirs_train),
            ("W2 CNN inference, batch 256 (predict_on_batch)", ours_infer, theirs_infer),
            ("W2 through predict: shenjing, and its predict_on_batch time in the torch column",
             ours_predict, ours_infer)]


if __name__ == "__main__":
    print_table(run())
