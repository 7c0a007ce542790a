"""Tensor basics and the autograd engine."""

import gc

import numpy as np
import pytest

import shenjing as sj

torch = pytest.importorskip("torch")


def test_dtype_rules():
    assert sj.Tensor([1, 2, 3]).dtype == np.float32  # python numbers -> float32
    assert sj.Tensor([1.5, 2.5]).dtype == np.float32
    assert sj.Tensor(2.5).dtype == np.float32
    assert sj.Tensor(np.arange(3)).dtype == np.float32  # integer arrays -> float32
    assert sj.Tensor(np.zeros(3)).dtype == np.float64  # a floating array keeps its dtype
    assert sj.Tensor(np.zeros(3), dtype="float32").dtype == np.float32
    assert sj.Tensor([1.5], dtype=np.float64).dtype == np.float64


def test_numpy_views_and_array_protocol():
    data = np.arange(6.0).reshape(2, 3)
    t = sj.Tensor(data)
    assert t.numpy() is data
    assert np.asarray(t) is data
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), data.astype(np.float32))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and len(t) == 2


def test_float32_stays_float32(rng):
    x = sj.Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = (x * 2.5 + 1 - x / 3.0) ** 2
    z = (y.exp().log().sqrt() @ np.ones((4, 2), np.float32)).mean()
    assert y.dtype == np.float32 and z.dtype == np.float32
    z.backward()
    assert x.grad.dtype == np.float32


def test_backward_matches_torch_on_a_shared_subgraph(rng):
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4,))
    ta, tb = sj.Tensor(a, requires_grad=True), sj.Tensor(b, requires_grad=True)
    h = ta * tb + tb  # h used twice below: gradients must add up
    out = (h.exp() * h - (h @ tb)[:, None] / (1 + h * h)).sum()
    out.backward()
    pa, pb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ph = pa * pb + pb
    (ph.exp() * ph - (ph @ pb)[:, None] / (1 + ph * ph)).sum().backward()
    np.testing.assert_allclose(out.item(), (ph.exp() * ph - (ph @ pb)[:, None] / (1 + ph * ph)).sum().item())
    np.testing.assert_allclose(ta.grad, pa.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(tb.grad, pb.grad.numpy(), rtol=1e-10)


def test_explicit_upstream_gradient(rng):
    x = sj.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    g = rng.standard_normal((2, 3))
    (x * x).backward(g)
    np.testing.assert_allclose(x.grad, 2 * x.numpy() * g)


def test_backward_errors():
    x = sj.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-scalar output of shape \\(2, 2\\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="gradient shape \\(3,\\) does not match"):
        (x * 2).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        sj.Tensor(np.ones(2)).sum().backward()
    with pytest.raises(TypeError, match="only floating tensors"):
        sj.Tensor(np.ones(2), dtype=np.int64, requires_grad=True)


def test_gradients_accumulate_across_backward_calls():
    x = sj.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 + 2 * np.array([1.0, 2.0]))
    x.zero_grad()
    assert x.grad is None


def test_no_grad_records_nothing():
    x = sj.Tensor(np.ones(3), requires_grad=True)
    with sj.no_grad():
        y = x * 2
        with sj.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf
    assert sj.is_grad_enabled()


def test_retain_grad_keeps_intermediate_gradients():
    x = sj.Tensor(np.array([1.0, -2.0]), requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.numpy())


def test_deep_graph_of_100k_nodes_without_recursion():
    x = sj.Tensor(np.array([0.5, 2.0]), requires_grad=True)
    h = x
    for _ in range(100_000):
        h = h * 1.0  # 100k nodes in one chain
    h.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0, 1.0])
    del h  # freeing the long chain must not overflow the stack either
    gc.collect()


def test_detach_cuts_the_graph():
    x = sj.Tensor(np.array([2.0]), requires_grad=True)
    y = (x * x).detach() * x  # d/dx = x^2 only
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [4.0])


def test_ndarray_on_the_left_of_an_operator(rng):
    a = rng.standard_normal((2, 3))
    x = sj.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    for y, expected in ((a + x, a + x.numpy()), (a * x, a * x.numpy()), (a - x, a - x.numpy())):
        assert isinstance(y, sj.Tensor)
        np.testing.assert_allclose(y.numpy(), expected)


def test_comparisons_give_boolean_arrays():
    x = sj.Tensor(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(x > 1.5, [False, True, True])
    np.testing.assert_array_equal(x <= sj.Tensor(np.array([1.0, 1.0, 4.0])), [True, False, True])


def test_leaf_gradients_never_alias_each_other_or_the_callers_array():
    a = sj.Tensor(np.ones(3), requires_grad=True)
    b = sj.Tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.ones(3))  # add passes the same upstream array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(b.grad, np.ones(3))
    seed = np.full(3, 2.0)
    c = sj.Tensor(np.ones(3), requires_grad=True)
    (c + 0.0).backward(seed)
    assert not np.shares_memory(c.grad, seed)
    d = sj.Tensor(np.ones((2, 3)), requires_grad=True)
    (d.reshape((3, 2)) * 1.0).backward(np.ones((3, 2)))
    assert d.grad.shape == (2, 3) and d.grad.flags.owndata
    (d.reshape((3, 2)) * 1.0).backward(np.ones((3, 2)))  # accumulates, in place
    np.testing.assert_array_equal(d.grad, np.full((2, 3), 2.0))


def test_a_fresh_gradient_is_kept_without_a_copy():
    import weakref

    made = []

    class Double(sj.tensor.Op):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            g = (gy * 2).reshape(gy.shape)  # a whole-array view of a fresh array
            made.append(weakref.ref(g))  # watched without holding it
            return g

    x = sj.Tensor(np.ones((2, 2)), requires_grad=True)
    Double()(x).backward(np.ones((2, 2)))
    assert x.grad is made[0]()  # kept: nothing else held it

    class Leaky(Double):
        def backward(self, gy):
            self.cache = super().backward(gy)  # but an op that keeps it...
            return self.cache

    y = sj.Tensor(np.ones((2, 2)), requires_grad=True)
    op = Leaky()
    op(y).backward(np.ones((2, 2)))
    assert not np.shares_memory(y.grad, op.cache)  # ...gets a copy
    np.testing.assert_array_equal(y.grad, np.full((2, 2), 2.0))
