"""ops.resize with Keras's crop_to_aspect_ratio and pad_to_aspect_ratio (layers.Resizing's
path) against torch's interpolate, Keras's ops.image.resize (torch backend) and numeric
gradients. UpSampling2D's sizes and bicubic: tests/layers/test_reshaping.py."""

import numpy as np
import pytest

from shenjing.errors import ArgumentError
from shenjing.ops.resize import resize
from tests.helpers import check_against_torch, check_numeric_grad
from tests.keras_oracle import import_keras

torch = pytest.importorskip("torch")
F = torch.nn.functional

SIZES = [(3, 4), (14, 5), (10, 3), (7, 9), (1, 1), (20, 27)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_matches_torch_interpolate_float64(size, interpolation, rng):
    x = rng.standard_normal((2, 7, 9, 3))
    mode = "bilinear" if interpolation == "bilinear" else "nearest-exact"
    corners = False if interpolation == "bilinear" else None

    def theirs(t):
        y = F.interpolate(t.permute(0, 3, 1, 2), size=size, mode=mode, align_corners=corners)
        return y.permute(0, 2, 3, 1)

    check_against_torch(lambda t: resize(t, size, interpolation), theirs, x)


@pytest.mark.parametrize("crop, pad", [(True, False), (False, True)])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_to_aspect_ratio_matches_keras(crop, pad, interpolation, rng):
    keras = import_keras()
    x = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
    for size in [(4, 4), (10, 3), (3, 8), (9, 7)]:
        expected = keras.ops.image.resize(x, size, interpolation, crop_to_aspect_ratio=crop,
                                          pad_to_aspect_ratio=pad, fill_value=1.5)
        got = resize(x, size, interpolation, crop_to_aspect_ratio=crop, pad_to_aspect_ratio=pad,
                     fill_value=1.5).numpy()
        np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5, atol=1e-5)


def test_resize_nearest_rounds_in_float32_as_torch():
    # 10 -> 3 rows: (1 + 0.5) * 10/3 is 5 exactly, but 4.9999999 in float32, as torch has it
    x = np.arange(10, dtype=np.float32).reshape(1, 10, 1, 1)
    got = resize(x, (3, 1), "nearest").numpy().ravel()
    expected = F.interpolate(torch.tensor(x).permute(0, 3, 1, 2), size=(3, 1),
                             mode="nearest-exact").numpy().ravel()
    np.testing.assert_array_equal(got, expected)  # copies of input values: exact


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_numeric_gradient(interpolation, rng):
    x = rng.standard_normal((2, 4, 5, 2))
    check_numeric_grad(lambda t: resize(t, (7, 3), interpolation), x)
    check_numeric_grad(lambda t: resize(t, (3, 6), interpolation, pad_to_aspect_ratio=True,
                                        fill_value=2.0), x)
    check_numeric_grad(lambda t: resize(t, (3, 6), interpolation, "channels_first",
                                        crop_to_aspect_ratio=True), x)


def test_crop_and_pad_together_are_refused():
    with pytest.raises(ArgumentError, match="not both"):
        resize(np.zeros((1, 4, 4, 1)), (2, 2), crop_to_aspect_ratio=True,
               pad_to_aspect_ratio=True)
