// Fused CPU loops of the ReLU GRU recurrence (instructnet.models.gru).
//
// Two operators, registered as torch.ops.instructnet_relu_gru.{forward,backward}:
// each runs the whole loop over time steps in C++, running the per-step recurrent
// matmul into a preallocated buffer (oneDNN's brgemm for float32, see small_gemm,
// else ATen/MKL) and doing all gate arithmetic
// of a step in one vectorised pass (the pure-torch path needs 7 ops per step forward
// and ~6 backward, each a Python call and a pass over memory).
//
// Gate order r, z, n (PyTorch's). Layouts (all contiguous, time-major):
//   s     (T, B, 4H)  in:  columns [x_n | x_r | x_z | -]: the input projection of x
//                     out: columns [n | r | z | W_hn h + b_hn]   (what backward needs)
//   hbuf  (T+1, B, H) hbuf[0] = h0 in; hbuf[t+1] = h after step t out
//   whh_t (H, 3H)     W_hh transposed, contiguous (gate columns r | z | n)
//   k     (B, 3H)     per-trial constant of the input side, columns [n | r | z]
//                     (or (3H,), the same for every trial)
//                     (input biases, recurrent r/z biases, projected task vector)
//   g     (T, B, 4H)  backward out: [dgi_n | dr | dz | dgh_n] pre-activation gradients
//
// Values: float32 and float64. The elementwise passes run with the CPU's
// flush-to-zero / denormals-are-zero modes on (restored afterwards), so no denormal
// float (very slow on x86) is ever produced or consumed by them; the hidden state is
// additionally flushed below the smallest normal number, exactly like the pure-torch
// path. Every reduction is sequential: results are bit-identical between runs (and
// between thread counts, see the chunking below).
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/empty.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <xmmintrin.h>
#define IRG_HAVE_MXCSR 1
#endif

namespace {

// RAII: flush-to-zero + denormals-are-zero on this thread, restored on exit.
struct NoDenormals {
#ifdef IRG_HAVE_MXCSR
  unsigned int saved;
  NoDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
  ~NoDenormals() { _mm_setcsr(saved); }
#endif
};

// Branch-free exp for float (Cephes-style range reduction + degree-6 polynomial,
// ~1 ulp), written so that the compiler vectorises the loops that call it.
static inline float exp_f(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // NaN passes through
  float fx = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - fx * 0.693359375f;
  r = r + fx * 2.12194440e-4f;
  float r2 = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r2 + r + 1.0f;
  union { int32_t i; float f; } p;  // 2^fx
  p.i = (static_cast<int32_t>(fx) + 127) << 23;
  return y * p.f;
}

template <typename T> static inline T sigmoid(T x);
template <> inline float sigmoid<float>(float x) { return 1.0f / (1.0f + exp_f(-x)); }
template <> inline double sigmoid<double>(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// One forward step's gate arithmetic. gh (B, 3H) = h W_hh^T, columns [r | z | n].
template <typename T>
void forward_gates(T* __restrict s, const T* __restrict gh, const T* __restrict k,
                   const T* __restrict bhn, const T* __restrict h, T* __restrict hn_out,
                   int64_t B, int64_t H, int64_t k_stride, T tiny) {
  for (int64_t b = 0; b < B; ++b) {
    T* sb = s + b * 4 * H;
    const T* ghb = gh + b * 3 * H;
    const T* kb = k + b * k_stride;
    const T* hb = h + b * H;
    T* ob = hn_out + b * H;
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      T r = sigmoid<T>(sb[H + j] + kb[H + j] + ghb[j]);
      T z = sigmoid<T>(sb[2 * H + j] + kb[2 * H + j] + ghb[H + j]);
      T hn = ghb[2 * H + j] + bhn[j];
      T a = sb[j] + kb[j] + r * hn;
      T n = a <= T(0) ? T(0) : a;  // relu; NaN propagates like torch.relu
      T hp = n + z * (hb[j] - n);
      hp = std::abs(hp) < tiny ? T(0) : hp;
      sb[j] = n;
      sb[H + j] = r;
      sb[2 * H + j] = z;
      sb[3 * H + j] = hn;
      ob[j] = hp;
    }
  }
}

// One backward step's gate arithmetic. dh (B, H): gradient of this step's output;
// go_prev: the incoming gradient of the previous step's output (strided rows) or
// null; writes g (B, 4H), nxt = go_prev·scale + dh ⊙ z (the recurrent matmul term is
// added afterwards) and accumulates dk += g.
template <typename T>
void backward_gates(const T* __restrict s, const T* __restrict h, const T* __restrict dh,
                    const T* __restrict go_prev, int64_t go_stride, T scale,
                    T* __restrict g, T* __restrict nxt, T* __restrict dk, int64_t B, int64_t H) {
  for (int64_t b = 0; b < B; ++b) {
    const T* sb = s + b * 4 * H;
    const T* hb = h + b * H;
    const T* dhb = dh + b * H;
    T* gb = g + b * 4 * H;
    T* nb = nxt + b * H;
    T* kb = dk + b * 4 * H;
#pragma GCC ivdep
    for (int64_t j = 0; j < H; ++j) {
      T n = sb[j], r = sb[H + j], z = sb[2 * H + j], hn = sb[3 * H + j];
      T d = dhb[j];
      T dn = n <= T(0) ? T(0) : d * (T(1) - z);  // relu'(a) = 0 where n = 0
      T dghn = dn * r;
      T dr = dghn * hn * (T(1) - r);
      T dz = d * (hb[j] - n) * z * (T(1) - z);
      gb[j] = dn;
      gb[H + j] = dr;
      gb[2 * H + j] = dz;
      gb[3 * H + j] = dghn;
      kb[j] += dn;
      kb[H + j] += dr;
      kb[2 * H + j] += dz;
      kb[3 * H + j] += dghn;
      nb[j] = d * z;
    }
    if (go_prev != nullptr) {
      const T* gp = go_prev + b * go_stride;
#pragma GCC ivdep
      for (int64_t j = 0; j < H; ++j) nb[j] += gp[j] * scale;
    }
  }
}

void check_cpu_contig(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// The per-step recurrent products are small (e.g. 32×256 by 256×768). float32 ones go
// to oneDNN's batch-reduce GEMM micro-kernel (at::native::cpublas::brgemm): as fast as
// MKL's sgemm on one thread, and, unlike MKL's, it keeps that speed when the chunk
// threads below run their products at the same time (measured on a 2-core Xeon: MKL
// ~64 µs alone, ~80 µs each for two concurrent threads; brgemm ~63 µs in both cases).
// It is probed once (it needs an x86-64 CPU with AVX2 or better and a oneDNN-enabled
// torch); where it is unusable, and for float64, the products go through ATen (MKL).
static bool probe_brgemm() {
  try {
    constexpr int64_t M = 3, N = 5, K = 4;
    float a[M * K], b[K * N], c[M * N];
    for (int64_t i = 0; i < M * K; ++i) a[i] = 0.25f * static_cast<float>(i % 7) - 0.5f;
    for (int64_t i = 0; i < K * N; ++i) b[i] = 0.125f * static_cast<float>(i % 5) + 0.25f;
    at::native::cpublas::brgemm(M, N, K, K, N, N, false, a, b, c, false);
    at::native::cpublas::brgemm_release(false);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float want = 0.0f;
        for (int64_t q = 0; q < K; ++q) want += a[i * K + q] * b[q * N + j];
        if (!(std::abs(c[i * N + j] - want) <= 1e-5f)) return false;
      }
    return true;
  } catch (...) {
    return false;
  }
}

static bool use_brgemm() {
  static const bool ok = probe_brgemm();  // thread-safe one-time initialisation
  return ok;
}

// C (M×N, ldc) [+]= A (M×K, lda) · B (K×N, ldb), row-major; float32 only (callers use
// it only where use_brgemm() holds for a float32 problem).
static void small_gemm(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc,
                       bool add, const float* a, const float* b, float* c) {
  at::native::cpublas::brgemm(M, N, K, lda, ldb, ldc, add, a, b, c, false);
}
static void small_gemm(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool,
                       const double*, const double*, double*) {
  TORCH_CHECK(false, "relu_gru: the brgemm path is float32 only");
}

// Batch rows are independent through the whole recurrence, so the rows are split into
// fixed chunks of ``rows`` rows, each chunk running all its steps on one thread
// (at::parallel_for over chunks; the per-step matmuls then run single-threaded, with
// no synchronisation between threads inside the loop). The chunking depends only on
// B and ``rows``, never on the thread count, and every chunk's arithmetic is
// sequential: results are bit-identical for any number of threads.
static int64_t n_chunks(int64_t B, int64_t rows) { return (B + rows - 1) / rows; }

// forward(s, hbuf, k, whh_t, bhn, flush, rows): runs all T steps, filling s and hbuf.
// whh_t (H, 3H) is W_hh transposed *and contiguous* (MKL's small products are ~40 %
// faster without a transposed operand).
void relu_gru_forward(at::Tensor s, at::Tensor hbuf, const at::Tensor& k,
                      const at::Tensor& whh_t, const at::Tensor& bhn, bool flush, int64_t rows) {
  check_cpu_contig(s, "s");
  check_cpu_contig(hbuf, "hbuf");
  check_cpu_contig(k, "k");
  check_cpu_contig(bhn, "bhn");
  check_cpu_contig(whh_t, "whh_t");
  TORCH_CHECK(rows > 0, "rows must be positive");
  const int64_t T = s.size(0), B = s.size(1), H = hbuf.size(2);
  TORCH_CHECK(s.size(2) == 4 * H && hbuf.size(0) == T + 1 && hbuf.size(1) == B, "bad shapes");
  TORCH_CHECK(whh_t.size(0) == H && whh_t.size(1) == 3 * H, "whh_t must be (H, 3H)");
  TORCH_CHECK(k.numel() == 3 * H || (k.dim() == 2 && k.size(0) == B && k.size(1) == 3 * H),
              "k must be (3H,) or (B, 3H)");
  TORCH_CHECK(s.scalar_type() == hbuf.scalar_type() && s.scalar_type() == k.scalar_type() &&
              s.scalar_type() == whh_t.scalar_type() && s.scalar_type() == bhn.scalar_type(),
              "all tensors must have one dtype");
  const int64_t k_stride = k.numel() == 3 * H ? 0 : 3 * H;
  const bool brg = s.scalar_type() == at::kFloat && use_brgemm();
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "relu_gru_forward", [&] {
    const scalar_t tiny = flush ? std::numeric_limits<scalar_t>::min() : scalar_t(0);
    scalar_t* sp = s.data_ptr<scalar_t>();
    scalar_t* hp = hbuf.data_ptr<scalar_t>();
    const scalar_t* kp = k.data_ptr<scalar_t>();
    const scalar_t* bp = bhn.data_ptr<scalar_t>();
    const scalar_t* wp = whh_t.data_ptr<scalar_t>();
    at::parallel_for(0, n_chunks(B, rows), 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = c * rows, nb = std::min(rows, B - b0);
        at::Tensor gh = at::empty({nb, 3 * H}, s.options());
        scalar_t* ghp = gh.data_ptr<scalar_t>();
        for (int64_t t = 0; t < T; ++t) {
          if (brg)  // gh = h W_hh^T
            small_gemm(nb, 3 * H, H, H, 3 * H, 3 * H, false, hp + (t * B + b0) * H, wp, ghp);
          else
            at::mm_out(gh, hbuf.select(0, t).narrow(0, b0, nb), whh_t);
          NoDenormals guard;
          forward_gates<scalar_t>(sp + (t * B + b0) * 4 * H, ghp, kp + b0 * k_stride, bp,
                                  hp + (t * B + b0) * H, hp + ((t + 1) * B + b0) * H, nb, H,
                                  k_stride, tiny);
        }
      }
      if (brg) at::native::cpublas::brgemm_release(false);
    });
  });
}

// backward(grad_out, scale, s, hbuf, whh, g, dk, dh0, rows): grad_out (B, T, H) is
// the gradient of the outputs (any strides with a unit last stride), multiplied by
// ``scale`` on the fly; writes g (T, B, 4H), dk (B, 4H) = Σ_t g[t] and dh0 (B, H).
void relu_gru_backward(const at::Tensor& grad_out, double scale, const at::Tensor& s,
                       const at::Tensor& hbuf, const at::Tensor& whh, at::Tensor g,
                       at::Tensor dk, at::Tensor dh0, int64_t rows) {
  check_cpu_contig(s, "s");
  check_cpu_contig(hbuf, "hbuf");
  check_cpu_contig(whh, "whh");
  check_cpu_contig(g, "g");
  check_cpu_contig(dk, "dk");
  check_cpu_contig(dh0, "dh0");
  TORCH_CHECK(rows > 0, "rows must be positive");
  const int64_t T = s.size(0), B = s.size(1), H = hbuf.size(2);
  TORCH_CHECK(grad_out.dim() == 3 && grad_out.size(0) == B && grad_out.size(1) == T &&
              grad_out.size(2) == H && grad_out.stride(2) == 1, "bad grad_out");
  TORCH_CHECK(g.sizes() == s.sizes() && dk.size(0) == B && dk.size(1) == 4 * H &&
              dh0.size(0) == B && dh0.size(1) == H, "bad shapes");
  for (const at::Tensor* t : {&grad_out, &hbuf, &whh, static_cast<const at::Tensor*>(&g),
                              static_cast<const at::Tensor*>(&dk),
                              static_cast<const at::Tensor*>(&dh0)})
    TORCH_CHECK(t->scalar_type() == s.scalar_type(), "all tensors must have one dtype");
  const bool brg = s.scalar_type() == at::kFloat && use_brgemm();
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "relu_gru_backward", [&] {
    const scalar_t* wp = whh.data_ptr<scalar_t>();
    const scalar_t sc = static_cast<scalar_t>(scale);
    const scalar_t* gop = grad_out.data_ptr<scalar_t>();
    const int64_t go_sb = grad_out.stride(0), go_st = grad_out.stride(1);
    const scalar_t* sp = s.data_ptr<scalar_t>();
    const scalar_t* hp = hbuf.data_ptr<scalar_t>();
    scalar_t* gp = g.data_ptr<scalar_t>();
    scalar_t* kp = dk.data_ptr<scalar_t>();
    at::parallel_for(0, n_chunks(B, rows), 1, [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t b0 = c * rows, nb = std::min(rows, B - b0);
        at::Tensor bufs = at::empty({2, nb, H}, s.options());
        at::Tensor dh0c = dh0.narrow(0, b0, nb);
        std::fill(kp + b0 * 4 * H, kp + (b0 + nb) * 4 * H, scalar_t(0));
        at::Tensor dh = bufs.select(0, 0);  // last step: its incoming gradient, scaled
        {
          NoDenormals guard;
          scalar_t* d = dh.data_ptr<scalar_t>();
          for (int64_t b = 0; b < nb; ++b) {
            const scalar_t* src = gop + (b0 + b) * go_sb + (T - 1) * go_st;
            for (int64_t j = 0; j < H; ++j) d[b * H + j] = src[j] * sc;
          }
        }
        for (int64_t t = T - 1; t >= 0; --t) {
          at::Tensor nxt = t > 0 ? bufs.select(0, (T - t) % 2) : dh0c;
          {
            NoDenormals guard;
            backward_gates<scalar_t>(
                sp + (t * B + b0) * 4 * H, hp + (t * B + b0) * H, dh.data_ptr<scalar_t>(),
                t > 0 ? gop + b0 * go_sb + (t - 1) * go_st : nullptr, go_sb, sc,
                gp + (t * B + b0) * 4 * H, nxt.data_ptr<scalar_t>(), kp + b0 * 4 * H, nb, H);
          }
          // dh_prev += [dr | dz | dgh_n] W_hh
          if (brg)
            small_gemm(nb, H, 3 * H, 4 * H, H, H, true, gp + (t * B + b0) * 4 * H + H, wp,
                       nxt.data_ptr<scalar_t>());
          else
            nxt.addmm_(g.select(0, t).narrow(0, b0, nb).narrow(1, H, 3 * H), whh);
          dh = nxt;
        }
      }
      if (brg) at::native::cpublas::brgemm_release(false);
    });
  });
}

// Diagnostics: how many threads at::parallel_for really used for n chunks (1 when the
// file was compiled without OpenMP: the header template then runs everything on the
// calling thread), and whether float32 products go to brgemm.
int64_t parallel_threads(int64_t n) {
  std::vector<int64_t> owner(static_cast<size_t>(std::max<int64_t>(n, 0)), -1);
  at::parallel_for(0, n, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) owner[c] = at::get_thread_num();
  });
  std::sort(owner.begin(), owner.end());
  return std::unique(owner.begin(), owner.end()) - owner.begin();
}

bool brgemm_enabled() { return use_brgemm(); }

}  // namespace

TORCH_LIBRARY(instructnet_relu_gru, m) {
  m.def("forward(Tensor(a!) s, Tensor(b!) hbuf, Tensor k, Tensor whh_t, Tensor bhn, bool flush, "
        "int rows) -> ()",
        &relu_gru_forward);
  m.def("backward(Tensor grad_out, float scale, Tensor s, Tensor hbuf, Tensor whh, "
        "Tensor(a!) g, Tensor(b!) dk, Tensor(c!) dh0, int rows) -> ()",
        &relu_gru_backward);
  m.def("parallel_threads(int n) -> int", &parallel_threads);
  m.def("brgemm_enabled() -> bool", &brgemm_enabled);
}
