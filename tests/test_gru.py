"""The fast ReLU GRU (custom autograd Function) against the plain step-by-step loop.

Both implementations of its loops are tested: the fused C++ kernels (``fused``) and the
pure-torch fallback (``torch``, forced with ``INSTRUCTNET_FUSED_GRU=0``).
"""

import os
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

import instructnet.models._fused as fused_mod
import instructnet.models.gru as gru_mod
from instructnet.models.gru import H0_VALUE, ReluGRU, ReluGRUFunction, reference_forward

HAVE_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None


def _select_path(path, monkeypatch):
    if path == "torch":
        monkeypatch.setenv(fused_mod.ENV_VAR, "0")
        assert not fused_mod.available()
    else:
        monkeypatch.delenv(fused_mod.ENV_VAR, raising=False)
        if not HAVE_COMPILER:
            pytest.skip("no C++ compiler: only the pure-torch path can run here")
        # with a compiler the fused kernels must build (a silent fallback would hide it)
        assert fused_mod.available(), fused_mod._error


@pytest.fixture(params=["fused", "torch"])
def path(request, monkeypatch):
    """Runs a test once with the fused C++ loops and once with the pure-torch loops."""
    _select_path(request.param, monkeypatch)
    return request.param


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
@pytest.mark.parametrize(("path", "block", "rows"), [
    ("fused", None, 32),
    ("fused", None, 2),  # the fused loops run chunks of 2, 1 rows
    ("torch", None, 32),
    ("torch", 3, 32),  # the pure-torch backward runs in blocks of 1, 3, 3 steps
])
def test_matches_reference_outputs_and_all_gradients(C, grad_scale, path, block, rows,
                                                     monkeypatch):
    _select_path(path, monkeypatch)
    monkeypatch.setattr(gru_mod, "FUSED_CHUNK_ROWS", rows)
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


def test_float32_matches_float64_reference(path):
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
def test_gradcheck_function(C, path):
    m, x, const, h0 = _inputs(B=2, T=4, I=3, C=C, H=3, seed=3)
    params = [p.detach().clone().requires_grad_() for p in m.parameters()]
    assert torch.autograd.gradcheck(
        lambda *a: ReluGRUFunction.apply(*a), (x, const, h0, *params), eps=1e-6, atol=1e-6
    )


def test_default_h0_is_point_one(path):
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


def test_h0_broadcast_and_no_grad_path(path):
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


def test_cpu_determinism_bit_identical(path):
    out1, g1 = _train_grads()
    out2, g2 = _train_grads()
    assert torch.equal(out1, out2)
    for a, b in zip(g1, g2):
        assert torch.equal(a, b)


def test_buffer_reuse_is_safe(path):
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


def test_decaying_units_flush_instead_of_denormals(path):
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


def test_inference_mode_then_training(path):
    m, x, const, h0 = _inputs(C=3)
    with torch.inference_mode():
        a = m(x, const, h0)
    b = m(x, const, h0)  # buffers made under inference mode must not leak into this call
    torch.testing.assert_close(a.clone(), b.detach())
    b.sum().backward()
    assert m.weight_hh.grad is not None


# --------------------------------------------------------------------------- fused path
def _paper_sized_grads(B=40, T=40, H=64, seed=4):
    """float32 at training-like sizes: B=40 gives chunks of 16, 16 and 8 rows."""
    gen = torch.Generator().manual_seed(seed)
    m = ReluGRU(65, H, const_size=16)
    m.reset_parameters(gen)
    x = torch.rand(B, T, 65, generator=gen)
    c = torch.randn(B, 16, generator=gen).requires_grad_()
    h0 = torch.rand(B, H, generator=gen).requires_grad_()
    weight = torch.randn(B, T, H, generator=gen)
    out = m(x, c, h0)
    grads = torch.autograd.grad((out * weight).sum(), [*m.parameters(), c, h0])
    return m, (x, c, h0, weight), out.detach(), grads


def test_fused_float32_matches_torch_path_and_float64_reference(monkeypatch):
    _select_path("fused", monkeypatch)
    m, (x, c, h0, weight), out_f, grads_f = _paper_sized_grads()
    monkeypatch.setenv(fused_mod.ENV_VAR, "0")
    _, _, out_t, grads_t = _paper_sized_grads()
    m64 = ReluGRU(65, 64, const_size=16).double()
    m64.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
    x64, c64, h64 = (t.detach().double().requires_grad_() for t in (x, c, h0))
    ref = reference_forward(m64, x64, c64, h64)
    ref_grads = torch.autograd.grad((ref * weight.double()).sum(), [*m64.parameters(), c64, h64])
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "const", "h0"]
    torch.testing.assert_close(out_f, out_t, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out_f.double(), ref.detach(), rtol=1e-4, atol=1e-5)
    for name, gf, gt, gr in zip(names, grads_f, grads_t, ref_grads):
        scale = gr.abs().max().item()
        torch.testing.assert_close(gf, gt, rtol=1e-3, atol=1e-5 * scale, msg=name)
        torch.testing.assert_close(gf.double(), gr, rtol=1e-3, atol=1e-5 * scale, msg=name)


def test_fused_results_do_not_depend_on_thread_count(monkeypatch):
    _select_path("fused", monkeypatch)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _, _, out1, g1 = _paper_sized_grads()
        torch.set_num_threads(2)
        _, _, out2, g2 = _paper_sized_grads()
    finally:
        torch.set_num_threads(n)
    # the recurrence (its chunks) is independent of the thread count; the weight
    # gradients are single large MKL matmuls whose reduction order may depend on it
    assert torch.equal(out1, out2)
    for i, (a, b) in enumerate(zip(g1, g2)):  # weight_ih, weight_hh, bias_ih, bias_hh, c, h0
        if i < 2:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * a.abs().max().item())
        else:
            assert torch.equal(a, b), i


def test_fused_loops_run_on_several_threads(monkeypatch):
    """The fused loops' row chunks really are spread over threads. at::parallel_for is
    a header template that silently runs everything on the calling thread when the
    extension is compiled without OpenMP, which the tests above could not notice."""
    _select_path("fused", monkeypatch)
    n = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert fused_mod.ops().parallel_threads(2) == 2
        assert fused_mod.ops().parallel_threads(1) == 1
        torch.set_num_threads(1)
        assert fused_mod.ops().parallel_threads(2) == 1
    finally:
        torch.set_num_threads(n)


def test_fused_propagates_nan(monkeypatch):
    """A NaN must reach the output (the training loop stops on a non-finite loss)."""
    _select_path("fused", monkeypatch)
    m = ReluGRU(3, 8)
    x = torch.rand(2, 5, 3)
    x[1, 2, 0] = float("nan")
    out = m(x)
    assert torch.isfinite(out[0]).all()
    assert torch.isfinite(out[1, :2]).all() and torch.isnan(out[1, 2:]).all()
    m.weight_ih.grad = None
    g = torch.ones_like(out)
    g[0, 3, 1] = float("nan")
    m(torch.rand(2, 5, 3)).backward(g)
    assert torch.isnan(m.weight_hh.grad).any()


def test_env_var_forces_fallback_without_compiling(monkeypatch):
    monkeypatch.setenv(fused_mod.ENV_VAR, "0")
    monkeypatch.setattr(fused_mod, "_load", lambda: pytest.fail("must not compile"))
    monkeypatch.setattr(fused_mod, "_state", None)
    assert not fused_mod.enabled() and not fused_mod.available()
    m, x, const, h0 = _inputs(C=3)
    torch.testing.assert_close(m(x, const, h0), reference_forward(m, x, const, h0),
                               rtol=1e-12, atol=1e-12)


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    monkeypatch.delenv(fused_mod.ENV_VAR, raising=False)

    def broken():
        raise RuntimeError("Error building extension\nrelu_gru.cpp:1:1: error: no compiler")

    monkeypatch.setattr(fused_mod, "_load", broken)
    monkeypatch.setattr(fused_mod, "_state", None)
    m, x, const, h0 = _inputs(C=3)
    with pytest.warns(RuntimeWarning, match="error: no compiler") as record:
        out = m(x, const, h0)
    assert len(record) == 1
    assert fused_mod._state is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        out2 = m(x, const, h0)
        out2.sum().backward()
    ref = reference_forward(m, x, const, h0)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out2, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not HAVE_COMPILER or sys.platform == "win32", reason="needs a compiler, POSIX")
def test_concurrent_first_builds_share_one_compilation(tmp_path):
    """Two processes building into an empty extensions directory at once (parallel
    Snakemake jobs), with a stale torch lock file left by a killed build: both finish,
    use the fused loops and agree bit for bit."""
    name = fused_mod._build_name()
    (tmp_path / name).mkdir()
    (tmp_path / name / "lock").write_text("")  # torch's FileBaton of a killed build
    script = textwrap.dedent("""
        import sys, torch
        import instructnet.models._fused as f
        from instructnet.models.gru import ReluGRU
        assert f.available(), f._error
        torch.manual_seed(0)
        m = ReluGRU(5, 16, const_size=3)
        out = m(torch.rand(4, 20, 5), torch.rand(4, 3))
        torch.save(out, sys.argv[1])
    """)
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), fused_mod.ENV_VAR: "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"out{i}.pt")],
                              env=env, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert torch.equal(torch.load(tmp_path / "out0.pt"), torch.load(tmp_path / "out1.pt"))
    assert len(list((tmp_path / name).glob("*.so"))) == 1
    assert not (tmp_path / name / "lock").exists()


@pytest.mark.skipif(not HAVE_COMPILER or sys.platform == "win32", reason="needs a compiler, POSIX")
def test_build_without_openmp_when_the_compiler_lacks_it(tmp_path):
    """A compiler that rejects the OpenMP flags (Apple's clang rejects -fopenmp) still
    gets the fused loops, built without OpenMP: one warning, chunks on one thread,
    the same results as the reference."""
    script = textwrap.dedent("""
        import warnings, torch
        import instructnet.models._fused as f
        from instructnet.models.gru import ReluGRU, reference_forward
        f.OPENMP_FLAGS = ["-fopenmp", "-fno-such-option-for-instructnet"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert f.available(), f._error
        msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(msgs) == 1 and "without it" in msgs[0], msgs
        torch.set_num_threads(2)
        assert f.ops().parallel_threads(2) == 1
        torch.manual_seed(0)
        m = ReluGRU(5, 16, const_size=3).double()
        x, c = torch.rand(40, 20, 5, dtype=torch.float64), torch.rand(40, 3, dtype=torch.float64)
        torch.testing.assert_close(m(x, c), reference_forward(m, x, c), rtol=1e-12, atol=1e-12)
    """)
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path), fused_mod.ENV_VAR: "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / fused_mod._build_name(openmp=False)).is_dir()
