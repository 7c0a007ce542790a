"""ops.image: affine_transform against Keras 3's torch backend (float64, values and gradients),
and numeric gradients. (Resizing: tests/ops/test_resize.py.)"""

import numpy as np
import pytest

from shenjing.errors import ArgumentError
from shenjing.ops import image
from tests.helpers import check_against_torch, check_numeric_grad
from tests.keras_oracle import import_keras

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _random_transforms(rng, n, height, width):
    t = rng.uniform(-1.2, 1.2, (n, 8))
    t[:, 2] *= width
    t[:, 5] *= height
    t[:, 6:] = 0
    return t


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest", "mirror"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_transform_matches_keras_torch_backend(fill_mode, interpolation, rng):
    import_keras()
    from keras.src.backend.torch import image as keras_image

    x = rng.standard_normal((3, 6, 8, 2))
    transforms = _random_transforms(rng, 3, 6, 8)

    def ours(t):
        return image.affine_transform(t, transforms, interpolation, fill_mode, fill_value=0.7)

    def theirs(t):
        return keras_image.affine_transform(t, torch.tensor(transforms), interpolation,
                                            fill_mode, fill_value=0.7)

    check_against_torch(ours, theirs, x)


def test_affine_transform_channels_first_and_one_transform_for_all(rng):
    x = rng.standard_normal((2, 5, 4, 3))
    transform = _random_transforms(rng, 1, 5, 4)[0]
    last = image.affine_transform(x, transform, fill_mode="reflect").numpy()
    first = image.affine_transform(x.transpose(0, 3, 1, 2), np.stack([transform] * 2),
                                   fill_mode="reflect", data_format="channels_first").numpy()
    np.testing.assert_array_equal(first.transpose(0, 2, 3, 1), last)  # same sums, transposed


@pytest.mark.parametrize("fill_mode, left, right", [
    ("reflect", [3, 2, 1, 0], [3, 2, 1, 0]),  # d c b a | a b c d | d c b a
    ("mirror", [2, 3, 2, 1], [2, 1, 0, 1]),   # d c b | a b c d | c b a
    ("wrap", [0, 1, 2, 3], [0, 1, 2, 3]),     # a b c d | a b c d | a b c d
    ("nearest", [0, 0, 0, 0], [3, 3, 3, 3]),  # a a a a | a b c d | d d d d
])
def test_fill_modes_index_rules(fill_mode, left, right):
    x = np.array([10.0, 11.0, 12.0, 13.0]).reshape(1, 1, 4, 1)
    reads_left = [1, 0, -4, 0, 1, 0, 0, 0]  # output x reads input x - 4: indices -4 .. -1
    reads_right = [1, 0, 4, 0, 1, 0, 0, 0]  # indices 4 .. 7
    for transform, expected in ((reads_left, left), (reads_right, right)):
        got = image.affine_transform(x, transform, "nearest", fill_mode).numpy().ravel()
        np.testing.assert_array_equal(got, 10.0 + np.array(expected))  # copies: exact


def test_constant_fill_blends_with_fill_value_at_the_border():
    x = np.ones((1, 1, 4, 1))
    half_left = [1, 0, -0.5, 0, 1, 0, 0, 0]  # output x reads input x - 0.5
    got = image.affine_transform(x, half_left, "bilinear", "constant", fill_value=3.0).numpy()
    np.testing.assert_allclose(got.ravel(), [2.0, 1.0, 1.0, 1.0], rtol=1e-12)


@pytest.mark.parametrize("fill_mode", ["reflect", "constant", "wrap"])
def test_affine_transform_numeric_gradient(fill_mode, rng):
    x = rng.standard_normal((2, 5, 4, 2))
    transforms = _random_transforms(rng, 2, 5, 4)
    check_numeric_grad(lambda t: image.affine_transform(t, transforms, "bilinear", fill_mode,
                                                        fill_value=0.5), x)


def test_bad_arguments_are_named():
    x = np.zeros((1, 4, 4, 1))
    with pytest.raises(ArgumentError, match="rank 4"):
        image.affine_transform(np.zeros((4, 4)), np.zeros(8))
    with pytest.raises(ArgumentError, match="interpolation"):
        image.affine_transform(x, np.zeros(8), "bicubic")
    with pytest.raises(ArgumentError, match="fill_mode"):
        image.affine_transform(x, np.zeros(8), fill_mode="edge")
    with pytest.raises(ArgumentError, match=r"shape \(8,\) or \(batch, 8\)"):
        image.affine_transform(x, np.zeros(6))
