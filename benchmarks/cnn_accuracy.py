"""The demo CNN trained with shenjing and with PyTorch on the same split, epochs, batch size
and optimizer; prints both test accuracies (they should agree within about one point).

Run: python benchmarks/cnn_accuracy.py [--epochs 8]
"""

import argparse
import time

import numpy as np


def torch_demo_accuracy(x_train, y_train, x_test, y_test, epochs, batch_size, seed=0):
    import torch

    nn = torch.nn
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16, eps=1e-3, momentum=0.01),
        nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(7 * 7 * 32, 10),
    )
    # Keras-style Adam (epsilon 1e-7) and Keras's default glorot-uniform kernels, zero biases
    for module in net:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
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
    seconds = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        logits = net(torch.tensor(x_test).permute(0, 3, 1, 2).contiguous())
    return float((logits.argmax(1).numpy() == y_test).mean()), seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=8)
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
