"""Fashion-MNIST: 60,000 train and 10,000 test 28x28 grey images of 10 kinds of clothing.

Fashion-MNIST is by Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf), MIT licence.
"""

from pathlib import Path

from . import _files

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# Digests published for Zalando's release (also in TensorFlow Datasets' url_checksums);
# the tf-keras-datasets copies have the same byte sizes.
SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
    ),
    "train-labels-idx1-ubyte.gz": (
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
    ),
}
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
NUM_CLASSES = len(CLASS_NAMES)  # label files holding another value are refused
SIZES = _files.MNIST_SIZES  # MNIST's split sizes: at most 60,000 train, 10,000 test samples


def load_data(path=None, origin=None):
    """Fashion-MNIST as ((x_train, y_train), (x_test, y_test)); x uint8 (N, 28, 28), y (N,).

    Args: path (a folder holding the four IDX files train-images-idx3-ubyte.gz ...; None:
    the cache folder ~/.shenjing/datasets/fashion_mnist, downloading missing files once,
    each checked by SHA-256); origin (base URL of the downloads, default ORIGIN).
    """
    if path is not None:
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"fashion_mnist.load_data: path must be a folder holding {list(FILES)}, "
                f"got {path}."
            )
        return _files.read_idx_set(path, FILES, (28, 28), SIZES, NUM_CLASSES)
    folder = _files.cache_dir("fashion_mnist")
    for name in FILES:
        if _files.find_file(folder, [name]) is None:
            _files.fetch("fashion_mnist", name, origin or ORIGIN, SHA256)
    return _files.read_idx_set(folder, FILES, (28, 28), SIZES, NUM_CLASSES)
