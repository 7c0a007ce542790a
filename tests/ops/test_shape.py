"""Shape ops against PyTorch (float64) and central differences."""

import numpy as np
import pytest

from shenjing import ops
from tests.helpers import check_against_torch, check_numeric_grad

torch = pytest.importorskip("torch")


def test_reshape_and_transpose(rng):
    x = rng.standard_normal((2, 3, 4))
    check_against_torch(lambda t: t.reshape(4, -1), lambda t: t.reshape(4, -1), x)
    check_against_torch(lambda t: t.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1), x)
    check_against_torch(lambda t: t.T, lambda t: t.permute(2, 1, 0), x)
    check_numeric_grad(lambda t: ops.transpose(t.reshape((6, 4)), (1, 0)), x)


def test_reshape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape an input of shape \(2, 3\)"):
        ops.reshape(np.ones((2, 3)), (4, 2))


GETITEM_CASES = [  # (our index, the same selection written for torch)
    ((slice(None), 1), lambda t: t[:, 1]),
    ((Ellipsis, slice(1, 3)), lambda t: t[..., 1:3]),
    ((0, slice(None, None, -1)), lambda t: t[0].flip(0)),  # torch has no negative steps
    (np.array([0, 1, 0]), lambda t: t[torch.tensor([0, 1, 0])]),
    ((slice(None), np.array([1, 1, 2])), lambda t: t[:, torch.tensor([1, 1, 2])]),
    (np.array([True, False]), lambda t: t[torch.tensor([True, False])]),
]


@pytest.mark.parametrize("index, ref", GETITEM_CASES, ids=range(len(GETITEM_CASES)))
def test_getitem_including_repeated_fancy_indices(index, ref, rng):
    x = rng.standard_normal((2, 3, 4))
    check_against_torch(lambda t: t[index], ref, x)
    check_numeric_grad(lambda t: t[index], x)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis, rng):
    shapes = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    if axis != 0:
        shapes = [(2, 3, 1), (2, 3, 5), (2, 3, 2)] if axis == -1 else [(2, 1, 4), (2, 4, 4), (2, 2, 4)]
    xs = [rng.standard_normal(s) for s in shapes]
    check_against_torch(lambda *t: ops.concatenate(t, axis=axis), lambda *t: torch.cat(t, dim=axis), *xs)
    check_numeric_grad(lambda *t: ops.concatenate(t, axis=axis), *xs)
    ys = [rng.standard_normal((2, 3)) for _ in range(3)]
    check_against_torch(lambda *t: ops.stack(t, axis=axis), lambda *t: torch.stack(t, dim=axis), *ys)
    check_numeric_grad(lambda *t: ops.stack(t, axis=axis), *ys)


def test_concatenate_and_stack_errors():
    with pytest.raises(ValueError, match=r"concatenate: shapes \[\(2, 3\), \(3, 3\)\] differ"):
        ops.concatenate([np.ones((2, 3)), np.ones((3, 3))], axis=1)
    with pytest.raises(ValueError, match="concatenate: axis 2 is out of range for rank 2"):
        ops.concatenate([np.ones((2, 3))], axis=2)
    with pytest.raises(ValueError, match="stack: inputs must share a shape"):
        ops.stack([np.ones(2), np.ones(3)])


def test_pad(rng):
    x = rng.standard_normal((2, 3, 4))
    widths = ((0, 0), (1, 2), (3, 0))
    check_against_torch(
        lambda t: ops.pad(t, widths, value=0.5),
        lambda t: torch.nn.functional.pad(t, (3, 0, 1, 2), value=0.5),
        x,
    )
    check_numeric_grad(lambda t: ops.pad(t, widths), x)
    with pytest.raises(ValueError, match="pad: expected 3 non-negative"):
        ops.pad(x, ((0, 0), (1, 1)))
