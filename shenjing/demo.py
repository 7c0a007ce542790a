"""The main demo: a small CNN (Conv-BN-ReLU-MaxPool twice, then Dense) trained on the 5,000
real MNIST digits that ship with shenjing, reporting the test accuracy; then an LSTM that
forecasts the yearly sunspot numbers (1700-2008, shipped too), scored against the naive
forecast "next year equals this year"."""

import time

import numpy as np

from . import layers, optimizers, schedules, utils
from .datasets import mnist, sunspots
from .models import Sequential


def build_cnn(filters=(24, 48), num_classes=10, dropout=0.4):
    """Conv(3x3, same)-BN-ReLU-MaxPool twice, then Flatten, Dropout and Dense softmax."""
    stack = [layers.Input((28, 28, 1))]
    for f in filters:
        stack += [layers.Conv2D(f, 3, padding="same", use_bias=False),
                  layers.BatchNormalization(), layers.Activation("relu"),
                  layers.MaxPooling2D(2)]
    stack += [layers.Flatten(), layers.Dropout(dropout),
              layers.Dense(num_classes, activation="softmax")]
    return Sequential(stack, name="digits_cnn")


def load_digits():
    """The shipped subset as float32 NHWC in [0, 1]: 4,000 train and 1,000 test images."""
    (x_train, y_train), (x_test, y_test) = mnist.load_subset(n_test=1000, seed=0)
    scale = np.float32(1 / 255)
    return ((x_train[..., None] * scale, y_train.astype(np.int64)),
            (x_test[..., None] * scale, y_test.astype(np.int64)))


def run_cnn_demo(epochs=10, batch_size=32, seed=0, verbose="auto"):
    """Train the CNN (Adam, cosine-decayed learning rate) and return (test accuracy, seconds)."""
    utils.set_seed(seed)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = build_cnn()
    model.summary()
    steps = epochs * -(-len(x_train) // batch_size)
    learning_rate = schedules.CosineDecay(2e-3, decay_steps=steps, alpha=0.02)
    model.compile(optimizer=optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs,
              validation_data=(x_test, y_test), verbose=verbose)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy on {len(y_test)} held-out digits: {accuracy:.2%} "
          f"(loss {loss:.4f}, trained {len(y_train)} images x {epochs} epochs in {seconds:.0f} s)")
    return accuracy, seconds


def run_lstm_demo(epochs=150, window=11, seed=0, verbose=0):
    """Forecast next year's sunspot number from the last ``window`` years with LSTM(32);
    returns (model RMSE, persistence RMSE) on the last 20% of the years."""
    utils.set_seed(seed)
    (x_train, y_train), (x_test, y_test), scaler = sunspots.load_windows(window=window,
                                                                         scale="standard")
    model = Sequential([layers.Input((window, 1)), layers.LSTM(32), layers.Dense(1)],
                       name="sunspot_lstm")
    model.summary()
    model.compile(optimizer="adam", loss="mse")
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=16, epochs=epochs, verbose=verbose)
    seconds = time.perf_counter() - start
    truth = scaler.inverse_transform(y_test)
    forecast = scaler.inverse_transform(model.predict(x_test, verbose=0))
    persistence = scaler.inverse_transform(x_test[:, -1, :])  # next year = this year

    def rmse(prediction):
        return float(np.sqrt(np.mean((prediction - truth) ** 2)))

    ours, naive = rmse(forecast), rmse(persistence)
    print(f"Sunspot forecast on the last {len(truth)} years: LSTM RMSE {ours:.1f}, naive "
          f"persistence RMSE {naive:.1f} ({1 - ours / naive:.0%} lower; trained {epochs} epochs "
          f"in {seconds:.0f} s)")
    return ours, naive
