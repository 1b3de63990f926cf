"""A one-layer GRU whose candidate activation is ReLU, with a hand-written backward.

Gate formulation (PyTorch's, gate order r, z, n)::

    r  = σ(W_ir x + b_ir + W_hr h + b_hr)
    z  = σ(W_iz x + b_iz + W_hz h + b_hz)
    n  = relu(W_in x + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

cuDNN has no ReLU GRU and a step-by-step autograd loop spends most of its time in
per-step overhead, so the recurrence is a custom :class:`torch.autograd.Function`
working on preallocated time-major buffers. Around the loops (any device):

* the input projections of all steps are one matmul; the trial-constant input (the
  task vector) is projected once per trial and added per step with the biases;
* the backward saves every step's gate gradients in one buffer, so that the recurrent
  and the input weight gradients are one matmul each over all steps and the
  bias/task-vector gradients one reduction.

The loops over time steps have two implementations with the same buffers and results:

* **fused** (CPU, float32/float64; ``csrc/relu_gru.cpp``, compiled on first use, see
  :mod:`instructnet.models._fused`): the whole loop runs in C++; per step one recurrent
  matmul (float32: oneDNN's brgemm micro-kernel, which unlike MKL keeps its speed
  when several threads run one each; float64: MKL through ATen; into a preallocated
  buffer) and one vectorised pass for all
  gate arithmetic, forward (r, z, n, h' and what the backward needs) and backward (the
  four gate gradients, the next step's dh and the running bias-gradient sum). Batch
  rows are independent through the recurrence, so fixed chunks of
  :data:`FUSED_CHUNK_ROWS` rows run on separate threads (OpenMP, torch's intra-op
  threads) without any synchronisation inside the loop (the per-step matmuls then run
  single-threaded); the chunking does
  not depend on the thread count, so neither do the loops' results.
* **pure torch** (CUDA, other dtypes, or when the C++ build is unavailable or disabled
  with ``INSTRUCTNET_FUSED_GRU=0``): seven in-place/``out=`` ops per forward step
  (``add_``, ``addmm_``, ``sigmoid``, ``addcmul_``, ``relu_``, ``lerp``, a denormal
  flush); the backward computes the coefficients that do not depend on the incoming
  gradient for blocks of steps at once and runs three ops per step (one broadcast
  ``mul`` for the three gate gradients, ``addcmul``, ``addmm_``). These loops,
  :func:`forward_through_time` and :func:`backward_through_time`, are also those of
  packed networks (:mod:`instructnet.models.packed`), where the same ops carry a
  leading network axis and the recurrent matmuls are ``baddbmm_``.

The two agree to rounding (float64: ~1e-15; float32: ~1e-6 relative; the fused
sigmoid's float32 ``exp`` is a ~1-ulp polynomial), not bit for bit.

CPU specifics (they change *speed*, not values beyond the denormal range): units whose
state decays towards zero would pass through denormal floats, which make CPU
arithmetic ~50-100× slower, so hidden states below the smallest normal float are
flushed to zero (a difference < 1.2e-38); the backward scales the incoming gradient by
a power of two (exact) so that its products stay in the normal range; the fused
kernels' elementwise passes also run with flush-to-zero/denormals-are-zero on; and the
multi-MB work buffers are recycled between calls (fresh ones are page-faulted in on
first touch, which costs more than the arithmetic on them).

On CPU, the same inputs give bit-identical outputs and gradients (every reduction has
a fixed order). The CUDA path is device-agnostic torch.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import nn

from . import _fused

__all__ = [
    "H0_VALUE", "ReluGRU", "ReluGRUFunction", "backward_through_time", "clear_buffer_pool",
    "forward_through_time", "reference_forward", "relu_gru",
]

H0_VALUE = 0.1  # initial hidden state of every unit (METHODS §5)

_threshold_backward = torch.ops.aten.threshold_backward.grad_input
_hardshrink_out = torch.ops.aten.hardshrink.out


# --------------------------------------------------------------------------- buffers
class _BufferPool:
    """Reusable flat CPU work buffers.

    A buffer is only handed out again after it was returned: the backward's scratch
    buffers at the end of the backward, the forward's buffers when the autograd node
    that holds them is freed (see :class:`Lease`). Buffers made under inference mode
    are kept apart (they cannot be written outside it). Non-CPU devices have caching
    allocators of their own and bypass the pool.
    """

    def __init__(self, per_key: int = 2):
        self.per_key = per_key
        self._free: dict[tuple, list[torch.Tensor]] = {}
        self._lock = threading.RLock()  # RLock: a Lease may be collected while held

    def get(self, shape, dtype, device) -> torch.Tensor:
        if device.type == "cpu":
            key = (dtype, math.prod(shape), torch.is_inference_mode_enabled())
            with self._lock:
                free = self._free.get(key)
                buf = free.pop() if free else None
            if buf is not None:
                return buf.view(shape)
        return torch.empty(shape, dtype=dtype, device=device)

    def put(self, t: torch.Tensor) -> None:
        if t.device.type != "cpu":
            return
        key = (t.dtype, t.numel(), t.is_inference())
        with self._lock:
            free = self._free.setdefault(key, [])
            if len(free) < self.per_key:
                free.append(t.view(-1))

    def clear(self) -> None:
        with self._lock:
            self._free.clear()


BUFFER_POOL = _BufferPool()


def clear_buffer_pool() -> None:
    """Release the recycled CPU work buffers (they are reallocated on demand)."""
    BUFFER_POOL.clear()


class Lease:
    """Returns a buffer to the pool when its owner (an autograd ctx) is freed."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __del__(self):
        try:
            BUFFER_POOL.put(self.tensor)
        except Exception:  # interpreter shutdown
            pass


# --------------------------------------------------------------------------- forward
# Fused path: batch rows per independently-run chunk (one thread each, see csrc/).
FUSED_CHUNK_ROWS = 16


def _use_fused(t: torch.Tensor) -> bool:
    """Run the loops in the fused C++ kernels (CPU float32/float64, when they built)?"""
    return (t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
            and _fused.available())


def fused_kernels(device) -> str | None:
    """Which loops a float32 step on ``device`` runs: the fused C++ kernels with their
    per-step products in oneDNN's brgemm micro-kernel ("brgemm") or in ATen/MKL
    ("aten"); None for the pure-torch path (CUDA, or kernels that did not build)."""
    if not (str(device).startswith("cpu") and _fused.available()):
        return None
    return "brgemm" if _fused.ops().brgemm_enabled() else "aten"


def _perm_rows(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """Gate blocks (r, z, n) → (n, r, z) along dim 0 (the gate slab's column order)."""
    return torch.cat((w[2 * hidden :], w[: 2 * hidden]), dim=0)


def _forward_core(x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh):
    """The forward recurrence, on time-major buffers. Returns ``(hbuf, s, x2d)``.

    ``hbuf`` (T+1, B, H), from the buffer pool: h0, then every step's hidden state.
    ``s`` (T, B, 4H), from the buffer pool: per step the columns
    ``[n | r | z | W_hn h + b_hn]``, what the backward needs besides ``hbuf``.
    ``x2d`` (T·B, I): the time-major inputs (for the input weight gradient).
    """
    B, T, I = x.shape
    H = weight_hh.shape[1]
    dt, dev = x.dtype, x.device

    # Gate slab s, columns [n | r | z | hn]: the input side (biases and the
    # trial-constant projection are added per step, below) and the recurrent
    # candidate term, which starts as b_hn.
    k = torch.empty(3 * H, dtype=dt, device=dev)  # per-trial constant part, columns n, r, z
    k[:H] = bias_ih[2 * H :]
    torch.add(bias_ih[: 2 * H], bias_hh[: 2 * H], out=k[H:])
    if const is not None:  # projected once per trial, not per step
        k = torch.addmm(k, const, _perm_rows(weight_ih[:, I:], H).t())
    s = BUFFER_POOL.get((T, B, 4 * H), dt, dev)
    # the input projections of all steps: one matmul
    x2d = x.transpose(0, 1).reshape(T * B, I)
    torch.mm(x2d, _perm_rows(weight_ih[:, :I], H).t(), out=s.view(T * B, 4 * H)[:, : 3 * H])

    hbuf = BUFFER_POOL.get((T + 1, B, H), dt, dev)
    hbuf[0].copy_(h0)
    if _use_fused(x):  # the whole loop in C++, one pass over memory per step
        _fused.ops().forward(s, hbuf, k.contiguous(), weight_hh.t().contiguous(),
                             bias_hh[2 * H :].contiguous(), True, FUSED_CHUNK_ROWS)
        return hbuf, s, x2d

    s[..., 3 * H :].copy_(bias_hh[2 * H :].expand(T, B, H))
    forward_through_time(s, hbuf, weight_hh.t(), k)
    return hbuf, s, x2d


def forward_through_time(s, hbuf, whh_t, k=None) -> None:
    """The pure-torch forward loop of one network or of N packed ones.

    One network: ``s`` (T, B, 4H) holds the input side of the gate slab
    ``[n | r | z | W_hn h + b_hn]`` (``k``, the per-trial constant part, (B, 3H) or
    (3H,), is added per step when given); ``hbuf`` (T + 1, B, H) holds h0 and gets
    every step's state; ``whh_t`` (H, 3H). N packed networks: a leading network axis
    on every tensor, ``whh_t`` (N, H, 3H), and a batched recurrent matmul."""
    packed = whh_t.dim() == 3
    ta = 1 if packed else 0  # time axis
    H = hbuf.shape[-1]
    flush = s.device.type == "cpu"
    tiny = torch.finfo(s.dtype).tiny
    # per-step views, made in bulk (cheaper than slicing inside the loop)
    s_in = s[..., : 3 * H].unbind(ta)
    s_rzh = s[..., H:].unbind(ta)
    s_rz = s[..., H : 3 * H].unbind(ta)
    s_a = s[..., :H].unbind(ta)
    s_r = s[..., H : 2 * H].unbind(ta)
    s_z = s[..., 2 * H : 3 * H].unbind(ta)
    s_hn = s[..., 3 * H :].unbind(ta)
    hs = hbuf.unbind(ta)
    for t in range(s.shape[ta]):
        h, ht = hs[t], hs[t + 1]
        if k is not None:
            s_in[t].add_(k)
        if packed:
            s_rzh[t].baddbmm_(h, whh_t)  # [rz pre-activation | W_hn h + b_hn]
        else:
            s_rzh[t].addmm_(h, whh_t)
        torch.sigmoid(s_rz[t], out=s_rz[t])
        a = s_a[t]
        a.addcmul_(s_r[t], s_hn[t])  # gi_n + r ⊙ (W_hn h + b_hn)
        a.relu_()  # n
        torch.lerp(a, h, s_z[t], out=ht)  # n + z ⊙ (h − n)
        if flush:  # decaying units would otherwise pass through (very slow) denormals
            _hardshrink_out(ht, tiny, out=ht)


# --------------------------------------------------------------------------- backward
def grad_scale(grad_out: torch.Tensor) -> float:
    """A power of two that lifts the largest incoming gradient to ~2**62 (CPU only).

    The backward is linear in the incoming gradient, so scaling it by a power of two
    and the results back is exact, except that products which would have underflowed
    into the (very slow on CPU) denormal range stay normal numbers.
    """
    if grad_out.device.type != "cpu":
        return 1.0
    lo, hi = torch.aminmax(grad_out)
    m = max(-float(lo), float(hi))
    if not (m > 0.0 and math.isfinite(m)):
        return 1.0
    return float(2.0 ** max(0, min(100, 62 - math.frexp(m)[1])))


BACKWARD_BLOCK = 32  # steps whose backward coefficients are computed together


def backward_through_time(go, s, hbuf, w_hh, g, dh0) -> None:
    """The pure-torch backward through time of one network or of N packed ones.

    One network: ``go`` (T, B, H), the incoming gradient, time-major (already scaled,
    see :func:`grad_scale`); ``s`` (T, B, 4H) and ``hbuf`` (T + 1, B, H) from the
    forward; ``w_hh`` (3H, H); fills ``g`` (T, B, 4H) with every step's gate gradients
    ``[dgi_n | dr | dz | dgh_n]`` and ``dh0`` (B, H). N packed networks
    (:mod:`instructnet.models.packed`): the same with a leading network axis on every
    tensor, ``w_hh`` (N, 3H, H); the recurrent matmul is then batched (``baddbmm_``).
    """
    packed = w_hh.dim() == 3
    ta = 1 if packed else 0  # time axis
    T, B, H = go.shape[ta], go.shape[ta + 1], go.shape[-1]
    lead = go.shape[:ta]
    dt, dev = g.dtype, g.device
    z = s[..., 2 * H : 3 * H]

    # Coefficients that do not depend on the incoming gradient. With dh the gradient
    # of a step's output h':
    #   dgh = dh ⊙ [c_r | c_z | c_hn]  (gradients of W_h· h + b_h·, gates r, z, n)
    #   dgi_n = dh ⊙ c_n,  dh_prev = dh ⊙ z + dgh W_hh
    # c_n = (1 − z) relu'(a), c_z = (h − n) z (1 − z) = (h' − n)(1 − z),
    # c_hn = c_n r, c_r = c_hn (W_hn h + b_hn)(1 − r). They are computed for a block
    # of steps at a time, just before the loop below needs them (still in cache).
    Tc = min(T, BACKWARD_BLOCK)
    coef_b = BUFFER_POOL.get((*lead, Tc, B, 3 * H), dt, dev)
    c_n_b = BUFFER_POOL.get((*lead, Tc, B, H), dt, dev)
    dh = BUFFER_POOL.get((*lead, T, B, H), dt, dev)
    dh.select(ta, T - 1).copy_(go.select(ta, T - 1))
    zs = z.unbind(ta)
    gh = g[..., H:].unbind(ta)
    gh3 = g[..., H:].unflatten(-1, (3, H)).unbind(ta)
    dhs = dh.unbind(ta)
    gos = go.unbind(ta)
    for t1 in range(T, 0, -Tc):
        t0 = max(0, t1 - Tc)
        coef, c_n = coef_b.narrow(ta, 0, t1 - t0), c_n_b.narrow(ta, 0, t1 - t0)
        c_r, c_z, c_hn = coef[..., :H], coef[..., H : 2 * H], coef[..., 2 * H :]
        sb = s.narrow(ta, t0, t1 - t0)
        torch.sub(1.0, sb[..., H : 3 * H], out=coef[..., : 2 * H])  # [1 − r | 1 − z]
        _threshold_backward(c_z, sb[..., :H], 0, grad_input=c_n)
        torch.mul(c_n, sb[..., H : 2 * H], out=c_hn)
        c_r.mul_(sb[..., 3 * H :]).mul_(c_hn)
        tmp = g.narrow(ta, t0, t1 - t0)[..., :H]  # scratch until dgi_n is written
        torch.sub(hbuf.narrow(ta, t0 + 1, t1 - t0), sb[..., :H], out=tmp)
        c_z.mul_(tmp)
        # backward through time over the block: three ops per step
        c3 = coef.unflatten(-1, (3, H)).unbind(ta)
        for t in range(t1 - 1, t0 - 1, -1):
            dht = dhs[t]
            torch.mul(c3[t - t0], dht.unsqueeze(-2), out=gh3[t])
            if t > 0:
                nxt = dhs[t - 1]
                torch.addcmul(gos[t - 1], dht, zs[t], out=nxt)
            else:
                nxt = dh0
                torch.mul(dht, zs[0], out=nxt)
            if packed:
                nxt.baddbmm_(gh[t], w_hh)
            else:
                nxt.addmm_(gh[t], w_hh)
        # dgi_n
        torch.mul(dh.narrow(ta, t0, t1 - t0), c_n, out=g.narrow(ta, t0, t1 - t0)[..., :H])
    for buf in (dh, coef_b, c_n_b):
        BUFFER_POOL.put(buf)


class ReluGRUFunction(torch.autograd.Function):
    """``apply(x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh) -> (B, T, H)``.

    x (B, T, I); const (B, C) or None; h0 (B, H); weight_ih (3H, I + C) with the
    sensory columns first; weight_hh (3H, H); biases (3H,). Gate order r, z, n.
    Gradients for every tensor argument; no double backward.
    """

    @staticmethod
    def forward(ctx, x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        hbuf, s, x2d = _forward_core(x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh)
        ctx.save_for_backward(x2d, const, weight_ih, weight_hh)
        ctx.x_shape = x.shape
        ctx.leases = (Lease(hbuf), Lease(s))  # internal; back to the pool with the graph
        return hbuf[1:].transpose(0, 1).contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x2d, const, weight_ih, weight_hh = ctx.saved_tensors
        hbuf, s = (lease.tensor for lease in ctx.leases)
        B, T, I = ctx.x_shape
        H = weight_hh.shape[1]
        dt, dev = x2d.dtype, x2d.device
        need_x, need_c, need_h0, need_wih, need_whh, need_bih, need_bhh = ctx.needs_input_grad

        # incoming gradient scaled by a power of two on CPU (see grad_scale)
        scale = grad_scale(grad_out)
        inv = 1.0 / scale
        # g[t]: the pre-activation gradients [dgi_n | dr | dz | dgh_n] of step t
        g = BUFFER_POOL.get((T, B, 4 * H), dt, dev)
        dh0 = torch.empty(B, H, dtype=dt, device=dev)
        if _use_fused(grad_out):  # the whole loop in C++; dk = Σ_t g[t] on the way
            dk = torch.empty(B, 4 * H, dtype=dt, device=dev)
            go = grad_out if grad_out.stride(-1) == 1 else grad_out.contiguous()
            _fused.ops().backward(go, scale, s, hbuf, weight_hh.contiguous(), g, dk, dh0,
                                  FUSED_CHUNK_ROWS)
        else:
            go = BUFFER_POOL.get((T, B, H), dt, dev)  # time-major, scaled
            torch.mul(grad_out.transpose(0, 1), scale, out=go)
            backward_through_time(go, s, hbuf, weight_hh, g, dh0)
            BUFFER_POOL.put(go)
            dk = None

        g2 = g.view(T * B, 4 * H)
        grad_x = grad_c = grad_h0 = grad_wih = grad_whh = grad_bih = grad_bhh = None
        if need_h0:
            grad_h0 = dh0.mul_(inv)
        if need_whh:
            m = torch.mm(hbuf[:T].reshape(T * B, H).t(), g2[:, H:])  # (H, 3H)
            grad_whh = torch.empty(3 * H, H, dtype=dt, device=dev)
            torch.mul(m.t(), inv, out=grad_whh)
        if need_bih or need_bhh or (const is not None and (need_c or need_wih)):
            if dk is None:
                dk = g.sum(0)  # (B, 4H): per trial Σ_t [dgi_n | dr | dz | dgh_n]
            db = dk.sum(0).mul_(inv)
            if need_bih:
                grad_bih = torch.cat((db[H : 3 * H], db[:H]))
            if need_bhh:
                grad_bhh = torch.cat((db[H : 3 * H], db[3 * H :]))
        if need_wih:
            gw = torch.empty_like(weight_ih)
            m = torch.mm(x2d.t(), g2[:, : 3 * H]).mul_(inv)  # (I, 3H), gate columns n, r, z
            gw[2 * H :, :I] = m[:, :H].t()
            gw[: 2 * H, :I] = m[:, H:].t()
            if const is not None:
                mc = torch.mm(dk[:, : 3 * H].t(), const).mul_(inv)
                gw[2 * H :, I:] = mc[:H]
                gw[: 2 * H, I:] = mc[H:]
            grad_wih = gw
        if need_c:
            grad_c = torch.mm(dk[:, : 3 * H], _perm_rows(weight_ih[:, I:], H)).mul_(inv)
        if need_x:
            gx = torch.mm(g2[:, : 3 * H], _perm_rows(weight_ih[:, :I], H)).mul_(inv)
            grad_x = gx.view(T, B, I).transpose(0, 1).contiguous()
        BUFFER_POOL.put(g)
        return grad_x, grad_c, grad_h0, grad_wih, grad_whh, grad_bih, grad_bhh


# --------------------------------------------------------------------------- public API
def _expand_h0(h0, x, hidden):
    if h0 is None:
        return torch.full((x.shape[0], hidden), H0_VALUE, dtype=x.dtype, device=x.device)
    if h0.dim() == 3 and h0.shape[0] == 1:  # torch.nn.GRU's (layers, B, H)
        h0 = h0[0]
    return h0.expand(x.shape[0], hidden)


def relu_gru(x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh) -> torch.Tensor:
    """Hidden states (B, T, H) of the ReLU GRU: the functional form of :class:`ReluGRU`
    (``h0`` None means 0.1 everywhere)."""
    h0 = _expand_h0(h0, x, weight_hh.shape[1])
    args = (x, const, h0, weight_ih, weight_hh, bias_ih, bias_hh)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
        return ReluGRUFunction.apply(*args)
    hbuf, s, _ = _forward_core(*args)
    out = hbuf[1:].transpose(0, 1).contiguous()
    BUFFER_POOL.put(s)
    BUFFER_POOL.put(hbuf)
    return out


class ReluGRU(nn.Module):
    """One-layer batch-first GRU with ReLU candidate activation.

    ``forward(x, const=None, h0=None)`` → hidden states (B, T, H), contiguous. ``x``
    (B, T, input_size); ``const`` (B, const_size): an input that is constant over the
    trial (the task vector), mathematically concatenated to every step's input;
    ``h0`` (B, H) or (H,), default 0.1 everywhere. ``weight_ih`` is (3H, input_size +
    const_size), the sensory columns first, then the constant-input columns.
    """

    def __init__(self, input_size: int, hidden_size: int, const_size: int = 0):
        super().__init__()
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.const_size = int(const_size)
        H = self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(3 * H, self.input_size + self.const_size))
        self.weight_hh = nn.Parameter(torch.empty(3 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(3 * H))
        self.bias_hh = nn.Parameter(torch.empty(3 * H))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Reference initialisation: weight_hh = 0.5·I in each gate block, weight_ih ~
        N(0, std 1/√fan_in) with fan_in = input_size + const_size, biases ~ N(0, 1);
        every draw from ``generator`` (the default generator when None)."""
        H = self.hidden_size
        fan_in = self.input_size + self.const_size
        eye = 0.5 * torch.eye(H, dtype=self.weight_hh.dtype, device=self.weight_hh.device)
        self.weight_hh.copy_(eye.repeat(3, 1))
        self.weight_ih.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        self.bias_ih.normal_(0.0, 1.0, generator=generator)
        self.bias_hh.normal_(0.0, 1.0, generator=generator)

    def forward(self, x: torch.Tensor, const: torch.Tensor | None = None, h0=None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.input_size or x.shape[1] == 0:
            raise ValueError(f"x must be (B, T ≥ 1, {self.input_size}), got {tuple(x.shape)}")
        if self.const_size:
            if const is None or tuple(const.shape) != (x.shape[0], self.const_size):
                got = None if const is None else tuple(const.shape)
                raise ValueError(f"const must be ({x.shape[0]}, {self.const_size}), got {got}")
        elif const is not None:
            raise ValueError("this ReluGRU has const_size=0 but a const input was given")
        return relu_gru(x, const, h0, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, const_size={self.const_size}"


def reference_forward(module: ReluGRU, x, const=None, h0=None) -> torch.Tensor:
    """The obviously-correct version: the constant input concatenated to every step and
    the gate equations run step by step under plain autograd. Returns (B, T, H)."""
    B, T, _ = x.shape
    if const is not None:
        x = torch.cat((x, const.unsqueeze(1).expand(B, T, const.shape[-1])), dim=-1)
    h = _expand_h0(h0, x, module.hidden_size)
    outs = []
    for t in range(T):
        gi = x[:, t] @ module.weight_ih.t() + module.bias_ih
        gh = h @ module.weight_hh.t() + module.bias_hh
        i_r, i_z, i_n = gi.chunk(3, 1)
        h_r, h_z, h_n = gh.chunk(3, 1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.relu(i_n + r * h_n)
        h = (1 - z) * n + z * h
        outs.append(h)
    return torch.stack(outs, dim=1)
