"""The demo CNN trained with shenjing and with PyTorch on the same split, epochs, batch size
and optimizer; prints both test accuracies (they should agree within about one point).

The PyTorch twin of shenjing.demo.build_cnn: Conv(24, 3x3, same, no bias)-BN-ReLU-MaxPool,
Conv(48)-BN-ReLU-MaxPool, Flatten, Dropout(0.4), Dense(10); BN with Keras's epsilon and momentum
(torch momentum = 1 - 0.99); glorot-uniform kernels; Adam (epsilon 1e-7) with the demo's
cosine-decayed learning rate (2e-3 down to 2% over all steps, Keras's CosineDecay formula).

Run: python benchmarks/cnn_accuracy.py [--epochs 8]
"""

import argparse
import time

import numpy as np


def torch_demo_accuracy(x_train, y_train, x_test, y_test, epochs, batch_size, seed=0):
    import math

    import torch

    nn = torch.nn
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 24, 3, padding=1, bias=False), nn.BatchNorm2d(24, eps=1e-3, momentum=0.01),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(24, 48, 3, padding=1, bias=False), nn.BatchNorm2d(48, eps=1e-3, momentum=0.01),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.4), nn.Linear(7 * 7 * 48, 10),
    )
    # Keras's default glorot-uniform kernels and zero biases
    for module in net:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3, eps=1e-7)
    steps, alpha = epochs * -(-len(y_train) // batch_size), 0.02

    def cosine(step):  # Keras CosineDecay(2e-3, steps, alpha) as a factor of the base rate
        return (1 - alpha) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)) + alpha

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
    tx = torch.tensor(x_train).permute(0, 3, 1, 2).contiguous()
    ty = torch.tensor(y_train)
    generator = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        net.train()
        order = torch.tensor(generator.permutation(len(ty)))
        for i in range(0, len(ty), batch_size):
            index = order[i:i + batch_size]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(tx[index]), ty[index])
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        logits = net(torch.tensor(x_test).permute(0, 3, 1, 2).contiguous())
    return float((logits.argmax(1).numpy() == y_test).mean()), seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    from shenjing.demo import load_digits, run_cnn_demo

    ours, our_seconds = run_cnn_demo(epochs=args.epochs, batch_size=args.batch_size, verbose=0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    theirs, their_seconds = torch_demo_accuracy(x_train, y_train, x_test, y_test, args.epochs,
                                                args.batch_size)
    print("| framework | test accuracy | training time (s) |")
    print("|---|---|---|")
    print(f"| shenjing | {ours:.2%} | {our_seconds:.1f} |")
    print(f"| PyTorch 2.13 | {theirs:.2%} | {their_seconds:.1f} |")
    print(f"difference: {abs(ours - theirs) * 100:.2f} points")


if __name__ == "__main__":
    main()
