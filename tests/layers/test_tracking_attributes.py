"""Sublayers are found however the attribute that holds them was set (layers/tracking.py walks
only the attributes noted by Layer.__setattr__)."""

import numpy as np

import shenjing as sj
from shenjing import layers


class Holder(layers.Layer):
    def __init__(self):
        super().__init__()
        self.size = 3                      # not a container: never walked
        self.blocks = []                   # an empty list, filled later
        self.table = {"a": layers.Dense(2)}

    def call(self, inputs):
        for block in self.blocks:
            inputs = block(inputs)
        return self.table["a"](inputs)


def test_layers_added_later_to_held_containers_are_tracked():
    holder = Holder()
    holder.blocks.append(layers.Dense(4))
    holder.table["b"] = layers.Dense(5)    # added to the dict after assignment
    holder(np.ones((1, 3), np.float32))
    holder.table["b"](np.ones((1, 3), np.float32))
    assert holder.count_params() == (3 * 4 + 4) + (4 * 2 + 2) + (3 * 5 + 5)
    holder.late = layers.Dense(1)          # an attribute set after the first call
    holder.late(np.ones((1, 2), np.float32))
    assert len(holder.trainable_weights) == 8


def test_regularized_weights_and_added_losses_are_collected():
    model = sj.Sequential([layers.Input((3,)), layers.Dense(2, kernel_regularizer="l2"),
                           layers.ActivityRegularization(l1=0.5)])
    x = np.ones((2, 3), np.float32)
    model(x)
    names = [type(t).__name__ for t in model.losses]
    assert len(names) == 2  # the kernel's L2 penalty and the activity term
    out = model(x).numpy()
    np.testing.assert_allclose(float(model.losses[1].numpy()), 0.5 * np.abs(out).sum() / 2,
                               rtol=1e-6)
