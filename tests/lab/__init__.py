"""Tests of the `shenjing lab` experiments; assert_png checks a written figure."""

import numpy as np


def assert_png(path, min_size=120):
    """The file is a PNG that decodes to a non-blank RGB(A) image of at least min_size pixels."""
    from matplotlib.image import imread

    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n", path
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4), image.shape
    assert min(image.shape[:2]) >= min_size, image.shape
    assert np.std(image[..., :3]) > 0.01, f"{path} looks blank"
