"""The fast ReLU GRU (custom autograd Function) against the plain step-by-step loop."""

import pytest
import torch

import instructnet.models.gru as gru_mod
from instructnet.models.gru import H0_VALUE, ReluGRU, ReluGRUFunction, reference_forward


def _inputs(B=3, T=7, I=4, C=3, H=5, dtype=torch.float64, seed=0, h0=True):
    gen = torch.Generator().manual_seed(seed)
    m = ReluGRU(I, H, const_size=C).to(dtype)
    m.reset_parameters(gen)
    x = torch.randn(B, T, I, generator=gen, dtype=dtype).requires_grad_()
    const = torch.randn(B, C, generator=gen, dtype=dtype).requires_grad_() if C else None
    h = torch.rand(B, H, generator=gen, dtype=dtype).requires_grad_() if h0 else None
    return m, x, const, h


def _grads(fn, m, x, const, h0, weight):
    out = fn(m, x, const, h0)
    leaves = [x, *m.parameters()] + [t for t in (const, h0) if t is not None]
    grads = torch.autograd.grad((out * weight).sum(), leaves)
    return out, grads


def _fast(m, x, const, h0):
    return m(x, const, h0)


@pytest.mark.parametrize("C", [0, 3])
@pytest.mark.parametrize("grad_scale", [1.0, 1e-30])
@pytest.mark.parametrize("block", [None, 3])  # 3: the backward runs in blocks 1, 3, 3
def test_matches_reference_outputs_and_all_gradients(C, grad_scale, block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(gru_mod, "BACKWARD_BLOCK", block)
    m, x, const, h0 = _inputs(C=C)
    weight = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weight = weight * grad_scale  # tiny incoming gradients: the denormal guard must be exact
    out, grads = _grads(_fast, m, x, const, h0, weight)
    ref, ref_grads = _grads(reference_forward, m, x, const, h0, weight)
    assert out.shape == (3, 7, 5) and out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    names = ["x", "weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    names += (["const"] if C else []) + ["h0"]
    assert len(grads) == len(names)
    for name, g, r in zip(names, grads, ref_grads):
        assert g.shape == r.shape, name
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12 * grad_scale, msg=name)


def test_float32_matches_float64_reference():
    m, x, const, h0 = _inputs(B=4, T=45, I=6, C=4, H=16)  # T > BACKWARD_BLOCK
    weight = torch.randn(4, 45, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ref, ref_grads = _grads(reference_forward, m, x, const, h0, weight)
    m32 = ReluGRU(6, 16, const_size=4)
    m32.load_state_dict({k: v.float() for k, v in m.state_dict().items()})
    x32, c32, h32 = (t.detach().float().requires_grad_() for t in (x, const, h0))
    out, grads = _grads(_fast, m32, x32, c32, h32, weight.float())
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.double(), r, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("C", [0, 2])
def test_gradcheck_function(C):
    m, x, const, h0 = _inputs(B=2, T=4, I=3, C=C, H=3, seed=3)
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(
        lambda *a: ReluGRUFunction.apply(*a), (x, const, h0, *params), eps=1e-6, atol=1e-6
    )


def test_default_h0_is_point_one():
    m, x, const, _ = _inputs()
    out = m(x, const)
    explicit = reference_forward(m, x, const, torch.full((3, 5), H0_VALUE, dtype=torch.float64))
    torch.testing.assert_close(out, explicit, rtol=1e-12, atol=1e-12)
    assert H0_VALUE == 0.1
    # one step by hand from h = 0.1
    m1, x1, c1, _ = _inputs(T=1, C=0)
    with torch.no_grad():
        h = torch.full((3, 5), 0.1, dtype=torch.float64)
        gi = x1[:, 0] @ m1.weight_ih.t() + m1.bias_ih
        gh = h @ m1.weight_hh.t() + m1.bias_hh
        r = torch.sigmoid(gi[:, :5] + gh[:, :5])
        z = torch.sigmoid(gi[:, 5:10] + gh[:, 5:10])
        n = torch.relu(gi[:, 10:] + r * gh[:, 10:])
        manual = (1 - z) * n + z * h
        torch.testing.assert_close(m1(x1)[:, 0], manual, rtol=1e-12, atol=1e-12)


def test_h0_broadcast_and_no_grad_path():
    m, x, const, _ = _inputs()
    h0 = torch.rand(5, dtype=torch.float64, requires_grad=True)
    out = m(x, const, h0)
    ref = reference_forward(m, x, const, h0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(out.sum(), h0)
    (gr,) = torch.autograd.grad(ref.sum(), h0)
    torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(m(x, const, h0), ref.detach(), rtol=1e-12, atol=1e-12)


def test_shapes_and_errors():
    m = ReluGRU(65, 8, const_size=64)
    assert m.weight_ih.shape == (24, 129) and m.weight_hh.shape == (24, 8)
    assert m.bias_ih.shape == (24,) and m.bias_hh.shape == (24,)
    x, c = torch.rand(2, 5, 65), torch.rand(2, 64)
    out = m(x, c)
    assert out.shape == (2, 5, 8) and out.dtype == torch.float32
    assert (out >= 0).all()  # h0 = 0.1 ≥ 0 and n ≥ 0 keep every state non-negative
    with pytest.raises(ValueError):
        m(x)  # const missing
    with pytest.raises(ValueError):
        m(torch.rand(2, 5, 64), c)
    with pytest.raises(ValueError):
        ReluGRU(4, 3)(torch.rand(1, 2, 4), torch.rand(1, 2))
    with pytest.raises(ValueError):
        m(torch.rand(2, 0, 65), c)  # no time steps


def test_initialisation():
    m = ReluGRU(65, 64, const_size=64)
    m.reset_parameters(torch.Generator().manual_seed(7))
    eye = 0.5 * torch.eye(64)
    for block in m.weight_hh.detach().chunk(3, 0):
        assert torch.equal(block, eye)
    std = m.weight_ih.detach().std().item()
    assert abs(std - 129**-0.5) < 0.1 * 129**-0.5
    assert abs(m.weight_ih.detach().mean().item()) < 0.01
    biases = torch.cat([m.bias_ih.detach(), m.bias_hh.detach()])
    assert abs(biases.std().item() - 1.0) < 0.15 and abs(biases.mean().item()) < 0.15
    # seeded: same seed → identical parameters; another seed → different ones
    m2 = ReluGRU(65, 64, const_size=64)
    m2.reset_parameters(torch.Generator().manual_seed(7))
    for a, b in zip(m.parameters(), m2.parameters()):
        assert torch.equal(a, b)
    m2.reset_parameters(torch.Generator().manual_seed(8))
    assert not torch.equal(m.weight_ih, m2.weight_ih)
    # the default generator: torch.manual_seed governs it
    torch.manual_seed(3)
    a = ReluGRU(5, 4, 2)
    torch.manual_seed(3)
    b = ReluGRU(5, 4, 2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def _train_grads(seed=0):
    gen = torch.Generator().manual_seed(seed)
    m = ReluGRU(65, 64, const_size=16)
    m.reset_parameters(gen)
    x = torch.rand(16, 40, 65, generator=gen)
    c = torch.randn(16, 16, generator=gen).requires_grad_()
    out = m(x, c)
    loss = (out.square() * torch.rand(out.shape, generator=gen)).mean()
    grads = torch.autograd.grad(loss, [*m.parameters(), c])
    return out.detach(), grads


def test_cpu_determinism_bit_identical():
    out1, g1 = _train_grads()
    out2, g2 = _train_grads()
    assert torch.equal(out1, out2)
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


def test_buffer_reuse_is_safe():
    """Two graphs alive at once, and a retained graph backpropagated twice."""
    m, x, const, h0 = _inputs(C=3)
    x2 = torch.randn_like(x).requires_grad_()
    loss = m(x, const, h0).square().sum() + m(x2, const, h0).sum()
    ref = reference_forward(m, x, const, h0).square().sum()
    ref = ref + reference_forward(m, x2, const, h0).sum()
    leaves = [x, x2, const, h0, *m.parameters()]
    g1 = torch.autograd.grad(loss, leaves, retain_graph=True)
    _ = m(x2, const, h0).sum()  # another forward in between
    g2 = torch.autograd.grad(loss, leaves)
    gr = torch.autograd.grad(ref, leaves)
    for a, b, r in zip(g1, g2, gr):
        assert torch.equal(a, b)
        torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def test_decaying_units_flush_instead_of_denormals():
    """States that decay towards zero are flushed below the smallest normal float."""
    m = ReluGRU(1, 2)
    with torch.no_grad():
        m.weight_ih.zero_()
        m.weight_hh.zero_()
        m.bias_ih.copy_(torch.tensor([0.0, 0.0, -5.0, -5.0, -50.0, -50.0]))  # z ≈ 0.007, n = 0
        m.bias_hh.zero_()
    out = m(torch.zeros(1, 200, 1))
    tiny = torch.finfo(torch.float32).tiny
    assert ((out == 0) | (out.abs() >= tiny)).all()
    assert out[0, -1].abs().max() == 0


def test_inference_mode_then_training():
    m, x, const, h0 = _inputs(C=3)
    with torch.inference_mode():
        a = m(x, const, h0)
    b = m(x, const, h0)  # buffers made under inference mode must not leak into this call
    torch.testing.assert_close(a.clone(), b.detach())
    b.sum().backward()
    assert m.weight_hh.grad is not None
