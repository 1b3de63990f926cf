"""Many sensorimotor networks as one stacked computation (packed training).

A ReLU-GRU step on a batch of 64 trials is latency-bound on a GPU: one network uses a
tiny fraction of the device. :class:`PackedNetworks` holds the RNN and readout weights
of ``N`` independent networks stacked along a leading *network axis*, so that one
forward/backward runs all of them with batched matmuls (``bmm``/``baddbmm``): network
``n`` only ever touches slice ``n`` of every tensor, so its outputs and gradients are
those it would have alone (to float rounding).

Layout: inputs are time-major per network, ``x`` (N, T, B, I); the trial-constant
task vector ``const`` (N, B, C); hidden states come back as (N, T, B, H).

The recurrence is a custom :class:`torch.autograd.Function` with a hand-written
backward, the algorithm of :mod:`instructnet.models.gru` (gate slab
``[n | r | z | W_hn h + b_hn]``, the input projection of all steps in one matmul, weight
gradients as one matmul over all steps) with every matmul batched over the network
axis. The loops over time are gru.py's own, :func:`~instructnet.models.gru.forward_through_time`
and :func:`~instructnet.models.gru.backward_through_time`, run with the network axis;
it shares ``gru.py``'s recycled CPU buffers and power-of-two gradient scaling.
:func:`reference_packed_forward` is the plain autograd loop it is tested against. Plain torch ops only: CPU or CUDA, float32 or float64. On CPU, hidden states
below the smallest normal float are flushed to zero and the backward scales its
incoming gradient by a power of two (both for speed: denormal arithmetic is very slow
on CPU; neither changes values beyond the denormal range).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .gru import (
    BUFFER_POOL,
    H0_VALUE,
    Lease,
    backward_through_time,
    forward_through_time,
    grad_scale,
)

__all__ = [
    "H0_VALUE", "PackedNetworks", "PackedReluGRUFunction", "graph_packed", "packed_relu_gru",
    "reference_packed_forward",
]


# --------------------------------------------------------------------------- forward
def _gate_perm(w: torch.Tensor, hidden: int) -> torch.Tensor:
    """Gate blocks (r, z, n) → (n, r, z) along dim 1 of a stacked (N, 3H, ·) tensor."""
    return torch.cat((w[:, 2 * hidden :], w[:, : 2 * hidden]), dim=1)


def _forward(x, const, h0, w_ih, w_hh, b_ih, b_hh, pooled: bool):
    """The recurrence on network-major, time-major buffers. Returns ``(hbuf, s)``:
    ``hbuf`` (N, T+1, B, H) = h0 then every step's state; ``s`` (N, T, B, 4H) the
    columns ``[n | r | z | W_hn h + b_hn]`` of every step (what the backward needs)."""
    N, T, B, I = x.shape
    H = w_hh.shape[-1]
    dt, dev = x.dtype, x.device
    get = BUFFER_POOL.get if pooled else (lambda shape, dtype, device: torch.empty(shape, dtype=dtype, device=device))
    w_perm = _gate_perm(w_ih, H).transpose(1, 2)  # (N, I + C, 3H), columns n, r, z
    # per-trial constant part of the gate pre-activations, columns n, r, z
    k = torch.cat((b_ih[:, 2 * H :], b_ih[:, : 2 * H] + b_hh[:, : 2 * H]), dim=1).unsqueeze(1)
    if const is not None:
        k = torch.baddbmm(k, const, w_perm[:, I:])  # (N, B, 3H): projected once per trial
    s = get((N, T, B, 4 * H), dt, dev)
    gi = torch.bmm(x.reshape(N, T * B, I), w_perm[:, :I]).view(N, T, B, 3 * H)
    torch.add(gi, k.unsqueeze(1), out=s[..., : 3 * H])
    del gi
    s[..., 3 * H :].copy_(b_hh[:, 2 * H :].view(N, 1, 1, H).expand(N, T, B, H))

    hbuf = get((N, T + 1, B, H), dt, dev)
    hbuf[:, 0].copy_(h0)
    whh_t = w_hh.transpose(1, 2).contiguous()  # (N, H, 3H), columns r, z, n
    forward_through_time(s, hbuf, whh_t)  # gru.py's, batched over N
    return hbuf, s


class PackedReluGRUFunction(torch.autograd.Function):
    """``apply(x, const, h0, w_ih, w_hh, b_ih, b_hh) -> (N, T, B, H)``.

    x (N, T, B, I); const (N, B, C) or None; h0 (N, B, H); w_ih (N, 3H, I + C) with the
    sensory columns first; w_hh (N, 3H, H); biases (N, 3H). Gate order r, z, n.
    """

    @staticmethod
    def forward(ctx, x, const, h0, w_ih, w_hh, b_ih, b_hh):
        hbuf, s = _forward(x, const, h0, w_ih, w_hh, b_ih, b_hh, pooled=True)
        ctx.save_for_backward(x, const, w_ih, w_hh)
        ctx.leases = (Lease(hbuf), Lease(s))
        return hbuf[:, 1:]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, const, w_ih, w_hh = ctx.saved_tensors
        hbuf, s = (lease.tensor for lease in ctx.leases)
        N, T, B, I = x.shape
        H = w_hh.shape[-1]
        dt, dev = x.dtype, x.device
        need_x, need_c, need_h0, need_wih, need_whh, need_bih, need_bhh = ctx.needs_input_grad

        scale = grad_scale(grad_out)
        inv = 1.0 / scale
        go = BUFFER_POOL.get((N, T, B, H), dt, dev)
        torch.mul(grad_out, scale, out=go)
        g = BUFFER_POOL.get((N, T, B, 4 * H), dt, dev)  # [dgi_n | dr | dz | dgh_n] per step
        dh0 = torch.empty(N, B, H, dtype=dt, device=dev)
        backward_through_time(go, s, hbuf, w_hh, g, dh0)  # gru.py's, batched over N
        BUFFER_POOL.put(go)

        g2 = g.view(N, T * B, 4 * H)
        grad_x = grad_c = grad_h0 = grad_wih = grad_whh = grad_bih = grad_bhh = None
        if need_h0:
            grad_h0 = dh0.mul_(inv)
        if need_whh:
            h2 = hbuf[:, :T].reshape(N, T * B, H)
            grad_whh = torch.bmm(g2[..., H:].transpose(1, 2), h2).mul_(inv)  # (N, 3H, H)
        dk = None
        if need_bih or need_bhh or (const is not None and (need_c or need_wih)):
            dk = g.sum(1)  # (N, B, 4H): per trial Σ_t [dgi_n | dr | dz | dgh_n]
            db = dk.sum(1).mul_(inv)  # (N, 4H)
            if need_bih:
                grad_bih = torch.cat((db[:, H : 3 * H], db[:, :H]), dim=1)
            if need_bhh:
                grad_bhh = torch.cat((db[:, H : 3 * H], db[:, 3 * H :]), dim=1)
        w_perm = _gate_perm(w_ih, H)  # (N, 3H, I + C), rows n, r, z
        if need_wih:
            gw = torch.empty_like(w_ih)
            m = torch.bmm(g2[..., : 3 * H].transpose(1, 2), x.reshape(N, T * B, I)).mul_(inv)
            gw[:, 2 * H :, :I] = m[:, :H]
            gw[:, : 2 * H, :I] = m[:, H:]
            if const is not None:
                mc = torch.bmm(dk[..., : 3 * H].transpose(1, 2), const).mul_(inv)
                gw[:, 2 * H :, I:] = mc[:, :H]
                gw[:, : 2 * H, I:] = mc[:, H:]
            grad_wih = gw
        if need_c:
            grad_c = torch.bmm(dk[..., : 3 * H], w_perm[..., I:]).mul_(inv)
        if need_x:
            grad_x = torch.bmm(g2[..., : 3 * H], w_perm[..., :I]).mul_(inv).view(N, T, B, I)
        BUFFER_POOL.put(g)
        return grad_x, grad_c, grad_h0, grad_wih, grad_whh, grad_bih, grad_bhh


def _h0(x: torch.Tensor, hidden: int, h0=None) -> torch.Tensor:
    N, _, B, _ = x.shape
    if h0 is None:
        return torch.full((N, B, hidden), H0_VALUE, dtype=x.dtype, device=x.device)
    return h0.expand(N, B, hidden)


def packed_relu_gru(x, const, h0, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """Hidden states (N, T, B, H) of N stacked ReLU GRUs (``h0`` None: 0.1 everywhere).
    Under autograd the result is a view of an internal buffer (read it, do not write)."""
    h0 = _h0(x, w_hh.shape[-1], h0)
    args = (x, const, h0, w_ih, w_hh, b_ih, b_hh)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in args):
        return PackedReluGRUFunction.apply(*args)
    hbuf, _ = _forward(*args, pooled=False)
    return hbuf[:, 1:]


def reference_packed_forward(x, const, h0, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """The obviously-correct version: per network, the constant input concatenated to
    every step and the gate equations run step by step under plain autograd."""
    N, T, B, _ = x.shape
    H = w_hh.shape[-1]
    h0 = _h0(x, H, h0)
    outs = []
    for n in range(N):
        xn = x[n]
        if const is not None:
            xn = torch.cat((xn, const[n].unsqueeze(0).expand(T, B, const.shape[-1])), dim=-1)
        h, hs = h0[n], []
        for t in range(T):
            gi = xn[t] @ w_ih[n].t() + b_ih[n]
            gh = h @ w_hh[n].t() + b_hh[n]
            i_r, i_z, i_n = gi.chunk(3, 1)
            h_r, h_z, h_n = gh.chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1 - z) * torch.relu(i_n + r * h_n) + z * h
            hs.append(h)
        outs.append(torch.stack(hs))
    return torch.stack(outs)


# --------------------------------------------------------------------------- module
class PackedNetworks(nn.Module):
    """The RNN and readout of N sensorimotor networks, stacked on a leading axis.

    Parameters (names mirror :class:`~instructnet.models.network.SensorimotorModel`):
    ``weight_ih`` (N, 3H, 65 + 64), ``weight_hh`` (N, 3H, H), ``bias_ih``/``bias_hh``
    (N, 3H), ``readout_weight`` (N, 33, H), ``readout_bias`` (N, 33). Build it from
    per-network models with :meth:`from_models`, write slices back with
    :meth:`write_back`, drop finished networks with :meth:`select`.
    """

    RNN = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(self, weight_ih, weight_hh, bias_ih, bias_hh, readout_weight, readout_bias,
                 input_size: int):
        super().__init__()
        self.input_size = int(input_size)
        for name, value in zip(self.RNN + ("readout_weight", "readout_bias"),
                               (weight_ih, weight_hh, bias_ih, bias_hh, readout_weight, readout_bias)):
            setattr(self, name, nn.Parameter(value.detach().clone()))

    @property
    def networks(self) -> int:
        return self.weight_hh.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.weight_hh.shape[-1]

    @classmethod
    def from_models(cls, models: Sequence[nn.Module]) -> PackedNetworks:
        """Stack the ``rnn`` (ReluGRU) and ``readout`` (Linear) of each model."""
        if not models:
            raise ValueError("no networks to pack")
        shapes = {tuple(m.rnn.weight_ih.shape) + tuple(m.readout.weight.shape) for m in models}
        if len(shapes) != 1:
            raise ValueError(f"networks of different sizes cannot be packed: {sorted(shapes)}")
        stack = lambda get: torch.stack([get(m).detach() for m in models])  # noqa: E731
        return cls(*(stack(lambda m, n=n: getattr(m.rnn, n)) for n in cls.RNN),
                   stack(lambda m: m.readout.weight), stack(lambda m: m.readout.bias),
                   input_size=models[0].rnn.input_size)

    def tensors(self) -> list[nn.Parameter]:
        """The stacked parameters, in SensorimotorModel order (rnn, then readout)."""
        return [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                self.readout_weight, self.readout_bias]

    @torch.no_grad()
    def write_back(self, n: int, model: nn.Module) -> nn.Module:
        """Copy network ``n``'s slices into ``model.rnn`` and ``model.readout``."""
        for name in self.RNN:
            getattr(model.rnn, name).copy_(getattr(self, name)[n])
        model.readout.weight.copy_(self.readout_weight[n])
        model.readout.bias.copy_(self.readout_bias[n])
        return model

    @torch.no_grad()
    def select(self, keep: Sequence[int]) -> None:
        """Keep only networks ``keep`` (in that order); parameters are replaced."""
        idx = torch.as_tensor(list(keep), dtype=torch.long, device=self.weight_hh.device)
        for name in self.RNN + ("readout_weight", "readout_bias"):
            setattr(self, name, nn.Parameter(getattr(self, name).index_select(0, idx)))

    def forward(self, x: torch.Tensor, const: torch.Tensor | None = None):
        """x (N, T, B, 65), const (N, B, 64) → (outputs (N, T, B, 33), hidden (N, T, B, H))."""
        N, T, B, _ = x.shape
        if N != self.networks or x.shape[-1] != self.input_size:
            raise ValueError(f"x must be ({self.networks}, T, B, {self.input_size}), got {tuple(x.shape)}")
        hidden = packed_relu_gru(x, const, None, self.weight_ih, self.weight_hh,
                                 self.bias_ih, self.bias_hh)
        H = self.hidden_size
        logits = torch.baddbmm(self.readout_bias.unsqueeze(1), hidden.reshape(N, T * B, H),
                               self.readout_weight.transpose(1, 2))
        return torch.sigmoid(logits).view(N, T, B, -1), hidden


# --------------------------------------------------------------------------- CUDA graphs
class _PackedOutputs(nn.Module):
    """``packed(x, const)``'s outputs alone (what a training step differentiates)."""

    def __init__(self, packed: PackedNetworks):
        super().__init__()
        self.packed = packed

    def forward(self, x: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
        return self.packed(x, const)[0]


def graph_packed(packed: PackedNetworks, x: torch.Tensor, const: torch.Tensor,
                 warmup: int = 3):
    """``f(x, const) -> outputs (N, T, B, 33)`` for the packed networks, its forward and
    its backward each captured once as a CUDA graph and replayed at every call
    (``torch.cuda.make_graphed_callables``): the ~1,300 small kernels of the 150-step
    recurrence then cost one launch each way instead of one Python dispatch each.

    ``x`` is the input buffer the caller fills before each call (any tensor of its
    shape works, at the price of a copy); ``const`` is a sample of the task vectors
    (shape only). Gradients reach the packed parameters and ``const`` (so trainable
    encoders learn) exactly as in the eager call. The graphs read the parameters in
    place: an optimiser that updates them in place is fine; replacing them (e.g.
    :meth:`PackedNetworks.select`) needs a new graph.
    """
    if x.device.type != "cuda":
        raise ValueError("CUDA graphs need CUDA tensors")
    sample = (x.detach(), const.detach().clone().requires_grad_(True))
    core = _PackedOutputs(packed)
    return torch.cuda.make_graphed_callables(core, sample, num_warmup_iters=warmup)
