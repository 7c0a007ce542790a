"""Offline stand-ins for the downloads of the ported Keras programs: data of the same shapes and
types as the real datasets, made from a seed, with a signal a model can learn (so the final
metrics say something), at a chosen fraction of the real sample counts.

Each ``install_*`` replaces one loader in one library (``keras`` or ``shenjing``) in the running
process. A loader the library does not have is not created: the program then fails as it would
for a user, and the runner reports it.
"""

import io
import os
import tempfile
import zipfile

import numpy as np

SCALE = float(os.environ.get("PORT_SCALE", "0.1"))  # fraction of the real sample counts


def _count(n):
    return max(64, round(n * SCALE))


def mnist_like(seed=0):
    """(x_train, y_train), (x_test, y_test): uint8 (n, 28, 28) images, labels 0-9. Each class is
    a fixed random pattern of strokes plus noise, so a convnet learns it well but not at once."""
    rng = np.random.default_rng(seed)
    templates = np.zeros((10, 28, 28))
    for c in range(10):  # a few random line segments per class
        for _ in range(4):
            r0, c0, r1, c1 = rng.integers(4, 24, size=4)
            t = np.linspace(0, 1, 40)
            templates[c, np.round(r0 + (r1 - r0) * t).astype(int),
                      np.round(c0 + (c1 - c0) * t).astype(int)] = 1.0

    def make(n):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        shift = rng.integers(-2, 3, size=(n, 2))
        x = np.stack([np.roll(templates[c], tuple(s), axis=(0, 1)) for c, s in zip(y, shift)])
        x = np.clip(x * 220 + rng.normal(0, 40, size=x.shape), 0, 255).astype(np.uint8)
        return x, y

    return make(_count(60000)), make(_count(10000))


def imdb_like(num_words=20000, seed=0, **_):
    """(x_train, y_train), (x_val, y_val): lists of word-index lists (lengths 30-400, indices
    < num_words) and 0/1 labels; words of a small 'positive' and 'negative' set are more
    frequent in their class, as in reviews."""
    rng = np.random.default_rng(seed)
    positive, negative = rng.choice(np.arange(4, 500), size=(2, 40), replace=False)

    def make(n):
        y = rng.integers(0, 2, size=n).astype(np.int64)
        sequences = []
        for label in y:
            length = int(rng.integers(30, 400))
            words = rng.integers(4, num_words, size=length)
            marked = rng.random(length) < 0.08
            words[marked] = rng.choice(positive if label else negative, size=marked.sum())
            sequences.append([1] + words.tolist())
        return np.array(sequences, dtype=object), y

    return make(_count(25000)), make(_count(25000))


def forda_like(seed=0):
    """The FordA TSV files as np.loadtxt returns them: (n, 1 + 500), label -1/1 first."""
    rng = np.random.default_rng(seed)

    def make(n):
        y = rng.choice([-1.0, 1.0], size=n)
        t = np.arange(500)
        freq = np.where(y > 0, 0.031, 0.025)[:, None] * (1 + 0.05 * rng.standard_normal((n, 1)))
        x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 6.3, size=(n, 1)))
        x += 0.8 * rng.standard_normal(x.shape)
        x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
        return np.concatenate([y[:, None], x], axis=1)

    return {"FordA_TRAIN.tsv": make(_count(3601)), "FordA_TEST.tsv": make(_count(1320))}


def fra_eng_zip(seed=0, lines=10000):
    """A zip holding fra.txt in the Anki format (English TAB French TAB attribution): short
    sentences from a small vocabulary, each French word a fixed spelling of its English one."""
    rng = np.random.default_rng(seed)
    english = ["go", "run", "stop", "wait", "help", "i see", "we won", "come on", "he ran",
               "be calm", "i lost", "get out", "hug me", "i fell", "who ran", "wow", "fire"]
    words = sorted({w for phrase in english for w in phrase.split()})
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzéè"))
    french = {w: "".join(rng.choice(letters, size=len(w) + 1)) for w in words}
    out = io.StringIO()
    for _ in range(_count(lines)):
        phrase = " ".join(rng.choice(english, size=int(rng.integers(1, 4))))
        target = " ".join(french[w] for w in phrase.split())
        out.write(f"{phrase.capitalize()}.\t{target.capitalize()} !\tCC-BY 2.0 (France)\n")
    folder = tempfile.mkdtemp(prefix="port-data-")
    path = os.path.join(folder, "fra-eng.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("fra.txt", out.getvalue())
    return path


def install(library_name, library):
    """Point the dataset loaders of ``library`` (the imported keras or shenjing) at the offline
    data. Returns the loaders it could not find (the program will fail where it calls them)."""
    missing = []

    def patch(path, value):
        owner = library
        parts = path.split(".")
        for part in parts[:-1]:
            owner = getattr(owner, part, None)
            if owner is None:
                missing.append(f"{library_name}.{path}")
                return
        if not hasattr(owner, parts[-1]):
            missing.append(f"{library_name}.{path}")
            return
        setattr(owner, parts[-1], value)

    patch("datasets.mnist.load_data", lambda *a, **k: mnist_like())
    patch("datasets.imdb.load_data", lambda *a, **k: imdb_like(**k))
    zipped = {}
    patch("utils.get_file", lambda *a, **k: zipped.setdefault("path", fra_eng_zip()))
    real_loadtxt, tables = np.loadtxt, forda_like()

    def loadtxt(name, *args, **kwargs):  # the FordA program reads two URLs with np.loadtxt
        for suffix, table in tables.items():
            if str(name).endswith(suffix):
                return table.copy()
        return real_loadtxt(name, *args, **kwargs)

    np.loadtxt = loadtxt
    return missing
