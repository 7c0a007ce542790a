import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id, so each test has its own stable stream."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
