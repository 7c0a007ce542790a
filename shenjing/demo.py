"""The main demo: a small CNN (Conv-BN-ReLU-MaxPool twice, then Dense) trained on the 5,000
real MNIST digits that ship with shenjing, reporting the test accuracy."""

import time

import numpy as np

from . import layers, utils
from .datasets import mnist
from .models import Sequential


def build_cnn(filters=(16, 32), num_classes=10):
    """Conv(3x3, same)-BN-ReLU-MaxPool twice, then Flatten and Dense softmax."""
    stack = [layers.Input((28, 28, 1))]
    for f in filters:
        stack += [layers.Conv2D(f, 3, padding="same", use_bias=False),
                  layers.BatchNormalization(), layers.Activation("relu"),
                  layers.MaxPooling2D(2)]
    stack += [layers.Flatten(), layers.Dense(num_classes, activation="softmax")]
    return Sequential(stack, name="digits_cnn")


def load_digits():
    """The shipped subset as float32 NHWC in [0, 1]: 4,000 train and 1,000 test images."""
    (x_train, y_train), (x_test, y_test) = mnist.load_subset(n_test=1000, seed=0)
    scale = np.float32(1 / 255)
    return ((x_train[..., None] * scale, y_train.astype(np.int64)),
            (x_test[..., None] * scale, y_test.astype(np.int64)))


def run_cnn_demo(epochs=8, batch_size=32, seed=0, verbose="auto"):
    """Train the CNN and return (test accuracy, seconds spent training)."""
    utils.set_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = build_cnn()
    model.summary()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
              validation_data=(x_test, y_test), verbose=verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy on {len(y_test)} held-out digits: {accuracy:.2%} "
          f"(loss {loss:.4f}, trained {len(y_train)} images x {epochs} epochs in {seconds:.0f} s)")
    return accuracy, seconds
