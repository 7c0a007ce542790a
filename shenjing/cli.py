"""Command line: ``shenjing demo``. A thin front end over the public API."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="shenjing", description="shenjing (神经) tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train a CNN on the shipped MNIST digits, then an LSTM on sunspot numbers")
    demo.add_argument("--only", choices=("cnn", "lstm"), help="run one of the two parts")
    demo.add_argument("--epochs", type=int, default=10, help="CNN epochs")
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_cnn_demo, run_lstm_demo

        if args.only != "lstm":
            run_cnn_demo(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        if args.only != "cnn":
            run_lstm_demo(seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
