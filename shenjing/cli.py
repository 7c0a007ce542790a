"""Command line: ``shenjing demo``, ``shenjing calc`` and ``shenjing lab``. A thin front end
over the public API.

``shenjing calc conv --input 100x100x3 --kernel 3 --strides 2 --padding same --filters 8``
prints one layer's output shape (the formula per axis), the padding on each side and the
parameter count; ``calc pool``, ``calc dense``, ``calc lstm``, ``calc gru`` and ``calc rnn`` too.
``shenjing lab connectivity|batchnorm|vanishing|report [--out DIR] [--small]`` runs one of the
experiments of shenjing.lab, printing its findings and writing its figures and numbers to DIR.
"""

import argparse
import sys


def _sizes(count, example):
    """An argparse type: 'AxBxC' with `count` positive ints (1..count when count is a range)."""
    counts = count if isinstance(count, tuple) else (count,)

    def parse(text):
        parts = text.lower().split("x")
        if len(parts) not in counts or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(
                f"expected {example} ({' or '.join(map(str, counts))} positive integers joined "
                f"by 'x'), got {text!r}")
        return tuple(int(p) for p in parts)

    return parse


def _padding(text):
    """'valid', 'same', P (every side), PHxPW (per axis) or TOPxBOTTOMxLEFTxRIGHT."""
    mode = text.lower()
    if mode in ("valid", "same"):
        return mode
    parts = mode.split("x")
    if len(parts) in (1, 2, 4) and all(p.isdigit() for p in parts):
        v = [int(p) for p in parts]
        if len(v) == 1:
            return v[0]
        return ((v[0], v[0]), (v[1], v[1])) if len(v) == 2 else ((v[0], v[1]), (v[2], v[3]))
    raise argparse.ArgumentTypeError(
        f"expected 'valid', 'same', P, PHxPW or TOPxBOTTOMxLEFTxRIGHT (non-negative integers), "
        f"got {text!r}")


def _pair(value):
    return value[0] if len(value) == 1 else value


def _add_calc(commands):
    calc = commands.add_parser("calc", help="explain one layer: output shape, padding, params")
    kinds = calc.add_subparsers(dest="layer", required=True)
    image = _sizes(3, "HEIGHTxWIDTHxCHANNELS like 100x100x3")
    window = _sizes((1, 2), "K or KHxKW like 3 or 3x5")
    conv = kinds.add_parser("conv", help="Conv2D over (height, width, channels)")
    conv.set_defaults(subparser=conv)
    conv.add_argument("--input", type=image, required=True, help="e.g. 100x100x3")
    conv.add_argument("--filters", type=int, required=True)
    conv.add_argument("--kernel", type=window, required=True, help="e.g. 3 or 3x5")
    conv.add_argument("--strides", type=window, default=(1,))
    conv.add_argument("--dilation", type=window, default=(1,))
    conv.add_argument("--padding", type=_padding, default="valid",
                      help="valid, same, P, PHxPW or TOPxBOTTOMxLEFTxRIGHT")
    conv.add_argument("--no-bias", action="store_true")
    pool = kinds.add_parser("pool", help="MaxPooling2D / AveragePooling2D")
    pool.set_defaults(subparser=pool)
    pool.add_argument("--input", type=image, required=True)
    pool.add_argument("--pool", type=window, default=(2,))
    pool.add_argument("--strides", type=window, help="default: the pool size")
    pool.add_argument("--padding", choices=("valid", "same"), default="valid")
    pool.add_argument("--average", action="store_true", help="AveragePooling2D")
    dense = kinds.add_parser("dense", help="Dense on (features,) or (steps, features)")
    dense.set_defaults(subparser=dense)
    dense.add_argument("--input", type=_sizes((1, 2), "D or TxD like 784"), required=True)
    dense.add_argument("--units", type=int, required=True)
    dense.add_argument("--no-bias", action="store_true")
    for name, what in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn", "SimpleRNN")):
        rnn = kinds.add_parser(name, help=f"{what} over (steps, features)")
        rnn.set_defaults(subparser=rnn)
        rnn.add_argument("--input", type=_sizes(2, "STEPSxFEATURES like 20x100"), required=True)
        rnn.add_argument("--units", type=int, required=True)
        rnn.add_argument("--no-bias", action="store_true")
        rnn.add_argument("--return-sequences", action="store_true")
        if name == "gru":
            rnn.add_argument("--no-reset-after", action="store_true",
                             help="one bias row: 3 * (u + d + 1) * u parameters")


def _add_lab(commands):
    from .lab import NAMES

    lab = commands.add_parser(
        "lab", help="experiments: connectivity, batchnorm, vanishing, report (figures + JSON)")
    lab.add_argument("name", choices=NAMES)
    lab.add_argument("--out", default="lab", help="folder for the figures and numbers (./lab)")
    lab.add_argument("--small", action="store_true", help="small settings: seconds, not minutes")
    lab.add_argument("--seed", type=int, default=0)


def _calc_layer(args):
    from . import layers

    if args.layer == "conv":
        return layers.Conv2D(args.filters, _pair(args.kernel), strides=_pair(args.strides),
                             padding=args.padding, dilation_rate=_pair(args.dilation),
                             use_bias=not args.no_bias)
    if args.layer == "pool":
        cls = layers.AveragePooling2D if args.average else layers.MaxPooling2D
        strides = None if args.strides is None else _pair(args.strides)
        return cls(_pair(args.pool), strides=strides, padding=args.padding)
    if args.layer == "dense":
        return layers.Dense(args.units, use_bias=not args.no_bias)
    options = {"use_bias": not args.no_bias, "return_sequences": args.return_sequences}
    if args.layer == "gru":
        return layers.GRU(args.units, reset_after=not args.no_reset_after, **options)
    return {"lstm": layers.LSTM, "rnn": layers.SimpleRNN}[args.layer](args.units, **options)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="shenjing", description="shenjing (神经) tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train a CNN on the shipped MNIST digits, then an LSTM on sunspot numbers")
    demo.add_argument("--only", choices=("cnn", "lstm"), help="run one of the two parts")
    demo.add_argument("--epochs", type=int, default=10, help="CNN epochs")
    demo.add_argument("--batch-size", type=int, default=32)
    demo.add_argument("--seed", type=int, default=0)
    _add_calc(commands)
    _add_lab(commands)
    convert = commands.add_parser(
        "convert", help="convert a model file by the names' extensions: .keras, .weights.h5, "
                        ".safetensors/.shenjing, .onnx")
    convert.add_argument("source", help="the model to read (.keras, .safetensors, .shenjing)")
    convert.add_argument("target", help="the file to write; its extension picks the format")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_cnn_demo, run_lstm_demo

        if args.only != "lstm":
            run_cnn_demo(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
        if args.only != "cnn":
            run_lstm_demo(seed=args.seed)
    elif args.command == "calc":
        from .explain import explain_layer, format_explanation

        try:
            layer = _calc_layer(args)
            print(format_explanation(explain_layer(layer, (None, *args.input))))
        except ValueError as error:  # the layer's own message names what was wrong
            args.subparser.error(str(error))
    elif args.command == "convert":
        from .convert import convert, describe
        from .errors import ShenjingError

        try:
            print(describe(convert(args.source, args.target), args.target))
        except (ShenjingError, OSError, ImportError) as error:
            print(f"shenjing convert: {error}", file=sys.stderr)
            return 1
    elif args.command == "lab":
        from .lab import run

        run(args.name, out_dir=args.out, small=args.small, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
