"""Run real Keras programs twice, in Keras 3 (torch backend) and in shenjing, with only their
import lines changed, and print a table: parameter counts, final metrics, seconds per epoch.

    python benchmarks/keras_ports/run.py --src DIR [--epochs 3] [--only NAME ...]

DIR holds the programs as published on keras.io (keras-team/keras-io; the files are not in this
repository: see PROGRAMS for each one's path and commit). Each program runs in its own
subprocess, in a fresh temporary directory, with:
- the import lines rewritten for the library (``from tensorflow import keras`` becomes
  ``import keras`` or ``import shenjing as keras``; ``import tensorflow as tf``, unused by
  these programs, is dropped); the runner checks that no other line changed;
- the downloads replaced by offline data of the same shapes (offline_data.py, PORT_SCALE of
  the samples, 0.1 by default);
- ``fit`` limited to --epochs epochs in all (the programs ask for 2 to 500), the same in both
  libraries; a program that trains epoch by epoch stops once that many have run.
The timing is each epoch's wall time (a callback from epoch begin to end: training steps,
validation and logging); the table gives the median.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PROGRAMS = {  # name: (keras-io path, commit read)
    "mnist_convnet": ("examples/vision/mnist_convnet.py", "02cfe80"),
    "autoencoder": ("examples/vision/autoencoder.py", "28033e1"),
    "bidirectional_lstm_imdb": ("examples/nlp/bidirectional_lstm_imdb.py", "0a4be8b"),
    "addition_rnn": ("examples/nlp/addition_rnn.py", "0e2325b"),
    "lstm_seq2seq": ("examples/nlp/lstm_seq2seq.py", "1909c67"),
    "timeseries_classification": (
        "examples/timeseries/timeseries_classification_from_scratch.py", "02cfaa2"),
    "custom_train_step": ("guides/custom_train_step_in_torch.py", "aad7f9c"),
}

IMPORTS = re.compile(r"^(import |from \S+ import )")

# Lines that still had to change besides the imports: program -> [(line as published, line
# run, libraries it applies to, why)]. The table lists them; the runner refuses to run a
# program whose published text no longer holds the line.
EDITS = {
    "bidirectional_lstm_imdb": [
        ("(x_train, y_train), (x_val, y_val) = keras.datasets.imdb.load_data(",
         "(x_train, y_train), (x_val, y_val) = offline_data.imdb_like(", ("shenjing",),
         ("shenjing has no IMDB loader: Keras's imdb.npz holds pickled object arrays, and "
          "shenjing never unpickles; the reviews come from your own loader")),
    ],
    "timeseries_classification": [
        ('"best_model.h5", save_best_only=True, monitor="val_loss"',
         '"best_model.keras", save_best_only=True, monitor="val_loss"', ("shenjing",),
         "shenjing writes Keras 3's .keras files, not the legacy .h5 model format"),
        ('model = keras.models.load_model("best_model.h5")',
         'model = keras.models.load_model("best_model.keras")', ("shenjing",),
         "the checkpoint's name above"),
        ("keras.utils.plot_model(model, show_shapes=True)", "pass",
         ("keras", "shenjing"), ("plot_model needs pydot and Graphviz, which neither library "
                                 "ships; Keras raises ImportError without them")),
    ],
}


def rewrite_imports(source, library, name=None):
    """The program with its import lines for ``library`` ('keras' or 'shenjing') and the
    EDITS listed for it; no other line changes."""
    edits = {old: new for old, new, libraries, _ in EDITS.get(name, []) if library in libraries}
    lines = []
    for line in source.splitlines():
        stripped = line.strip()
        if stripped in edits:
            line = line[:len(line) - len(line.lstrip())] + edits.pop(stripped)
        if IMPORTS.match(line):
            line = line.replace("tensorflow.keras", "keras")
            line = re.sub(r"^from tensorflow import keras$", "import keras", line)
            if line.startswith("import tensorflow"):
                line = "pass  # " + line
            if library == "shenjing":
                line = re.sub(r"^import keras$", "import shenjing as keras", line)
                line = re.sub(r"^from keras(\.| )", r"from shenjing\1", line)
        lines.append(line)
    if edits:
        raise ValueError(f"{name}: lines to edit not found: {sorted(edits)}")
    return "\n".join(lines) + "\n"


def changed_lines(before, after):
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]


CHILD = r'''
import json, os, sys, time
import numpy as np
np.random.seed(0)
sys.path[:0] = [{here!r}, {root!r}]
library_name = {library!r}
if library_name == "keras":
    import keras as library
    from keras.src.utils import python_utils  # noqa: F401 (imported for its side effects)
else:
    import shenjing as library
import offline_data
import builtins
builtins.offline_data = offline_data  # for the lines EDITS points at it
report = {{"missing_loaders": offline_data.install(library_name, library), "fits": [],
          "evaluations": []}}
import types
if "sklearn" not in sys.modules:  # the FordA program scores with sklearn's accuracy_score
    try:
        import sklearn.metrics  # noqa: F401
    except ImportError:
        sk, skm = types.ModuleType("sklearn"), types.ModuleType("sklearn.metrics")
        skm.accuracy_score = lambda a, b: float(np.mean(np.asarray(a) == np.asarray(b)))
        sk.metrics = skm
        sys.modules.update({{"sklearn": sk, "sklearn.metrics": skm}})
budget = {{"epochs": {epochs}}}


class Finished(Exception):
    pass


class EpochTimer(library.callbacks.Callback):
    def __init__(self, times):
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)


Model = library.Model
real_fit, real_evaluate = Model.fit, Model.evaluate


def fit(self, *args, **kwargs):
    if budget["epochs"] <= 0:
        raise Finished()
    epochs = kwargs.get("epochs", 1)
    start = kwargs.get("initial_epoch", 0)
    kwargs["epochs"] = min(epochs, start + budget["epochs"])
    budget["epochs"] -= kwargs["epochs"] - start
    times = []
    kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + [EpochTimer(times)]
    history = real_fit(self, *args, **kwargs)
    report["fits"].append({{"params": int(self.count_params()), "epoch_seconds": times,
                           "history": {{k: [float(v) for v in vs]
                                       for k, vs in history.history.items()}}}})
    return history


def evaluate(self, *args, **kwargs):
    result = real_evaluate(self, *args, **kwargs)
    if isinstance(result, dict):  # Keras's fit validates through evaluate(return_dict=True)
        return result
    values = result if isinstance(result, (list, tuple)) else [result]
    report["evaluations"].append([float(np.asarray(v)) for v in values])
    return result


Model.fit, Model.evaluate = fit, evaluate
source = open({program!r}).read()
try:
    exec(compile(source, {name!r}, "exec"), {{"__name__": "__main__"}})
    report["status"] = "ok"
except Finished:
    report["status"] = "ok"
except BaseException as error:  # noqa: BLE001 - reported, not hidden
    import traceback
    report["status"] = "error"
    report["error"] = traceback.format_exc(limit=-4)
json.dump(report, open({out!r}, "w"))
'''


def run_one(name, source, library, epochs, timeout):
    work = tempfile.mkdtemp(prefix=f"port-{name}-{library}-")
    program = os.path.join(work, f"{name}.py")
    with open(program, "w") as f:
        f.write(rewrite_imports(source, library, name))
    out = os.path.join(work, "report.json")
    child = CHILD.format(here=HERE, root=ROOT, library=library, epochs=epochs,
                         program=program, name=name, out=out)
    env = dict(os.environ, KERAS_BACKEND="torch", MPLBACKEND="Agg")
    try:
        subprocess.run([sys.executable, "-c", child], cwd=work, env=env, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "error", "error": f"timed out after {timeout} s"}
    if not os.path.exists(out):
        return {"status": "error", "error": "the program ended without a report"}
    with open(out) as f:
        return json.load(f)


def summarize(report):
    if report["status"] != "ok" or not report["fits"]:
        last = report.get("error", "no fit ran").strip().splitlines()[-1]
        return {"status": "error: " + last[:150]}
    fits = report["fits"]
    times = sorted(t for fit in fits for t in fit["epoch_seconds"])
    final = {k: v[-1] for k, v in fits[-1]["history"].items()}
    return {"status": "ok", "params": fits[0]["params"], "final": final,
            "epoch_s": times[len(times) // 2] if times else None,
            "evaluate": report["evaluations"][-1] if report["evaluations"] else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="folder with the keras-io programs")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--timeout", type=int, default=1200)
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--library", nargs="*", default=["keras", "shenjing"])
    args = parser.parse_args()
    results = {}
    for name in args.only or PROGRAMS:
        with open(os.path.join(args.src, f"{name}.py")) as f:
            source = f.read()
        for library in ("keras", "shenjing"):
            edited = {old for old, _, libs, _ in EDITS.get(name, []) if library in libs}
            for before, after in changed_lines(source, rewrite_imports(source, library, name)):
                assert IMPORTS.match(before) or before.strip() in edited, (
                    f"{name}: a line changed that is neither an import nor listed: {before!r}")
        results[name] = {lib: summarize(run_one(name, source, lib, args.epochs, args.timeout))
                         for lib in args.library}
        print(name, json.dumps(results[name]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("\n| program | params Keras / ours | final metrics Keras | final metrics ours "
          "| s/epoch Keras | s/epoch ours | status ours |")
    print("|---|---|---|---|---|---|---|")
    for name, pair in results.items():
        k, s = pair.get("keras", {"status": "-"}), pair.get("shenjing", {"status": "-"})

        def metrics(r):
            return ", ".join(f"{m} {v:.3f}" for m, v in r.get("final", {}).items())

        def seconds(r):
            return f"{r['epoch_s']:.2f}" if r.get("epoch_s") else "-"

        print(f"| {name} | {k.get('params', '-')} / {s.get('params', '-')} | {metrics(k)} | "
              f"{metrics(s)} | {seconds(k)} | {seconds(s)} | {s['status']} |")
    print("\nLines changed besides the imports:")
    for name in results:
        for old, new, libraries, why in EDITS.get(name, []):
            print(f"- {name}: `{old}` -> `{new}` ({' and '.join(libraries)}): {why}")


if __name__ == "__main__":
    main()
