// TEM-style WBM: single-precision power laws p^e = exp(e·ln p) on arrays, for the Richards column (§5, §13.3).
//
// Written with GCC vector extensions and only + − × ÷, comparisons, conversions and bit operations, never
// a fused multiply-add, so every lane gives the same bits whatever the instruction set the including file
// is compiled for (SSE2, AVX2 or AVX-512): the one-cell Richards day and the multi-cell one
// (richards_lanes.inc) agree bit for bit, and so do machines with and without AVX. Cephes' polynomials (S. L. Moshier), relative
// error ~1e-7 — far below the time-stepping error of the sub-steps (~1e-3).
//
// Internal linkage on purpose: files compiled with -mavx2 and -mavx512f include this too, and the linker
// must never pick their copy for a caller compiled without.
#pragma once

#include <cstdint>
#include <cstring>

namespace couplet::tem_wbm {
namespace {

typedef float vf8 __attribute__((vector_size(32)));
typedef std::int32_t vi8 __attribute__((vector_size(32)));
typedef float vf16 __attribute__((vector_size(64)));  // used where AVX-512 is on (pow_inplace)
typedef std::int32_t vi16 __attribute__((vector_size(64)));
template <class VF> struct IntOf;
template <> struct IntOf<vf8> { using type = vi8; };
template <> struct IntOf<vf16> { using type = vi16; };

// Vectors never cross a function boundary by value here (in place on float arrays or by reference): a
// 32-byte vector argument in a file compiled without AVX would have an ABI of its own.
#define COUPLET_SPLAT(x) (VF{} + (x))

/// x ← std::max(x, c) and x ← std::min(x, c) (x NaN stays NaN): under AVX one vmaxps / vminps with the
/// operands swapped (the same selection, NaN included), which GCC 12 does not find for these forms.
inline void max8(vf8& x, const vf8& c) {
#ifdef __AVX__
  x = __builtin_ia32_maxps256(c, x);
#else
  x = x < c ? c : x;
#endif
}
inline void min8(vf8& x, const vf8& c) {
#ifdef __AVX__
  x = __builtin_ia32_minps256(c, x);
#else
  x = c < x ? c : x;
#endif
}
#ifdef __AVX512F__
inline void max8(vf16& x, const vf16& c) { x = __builtin_ia32_maxps512_mask(c, x, x, -1, 4); }  // 4: current rounding
inline void min8(vf16& x, const vf16& c) { x = __builtin_ia32_minps512_mask(c, x, x, -1, 4); }
#endif

/// ln x for x in [FLT_MIN, FLT_MAX] (smaller x, zero and negatives included, give ln FLT_MIN ≈ −87.3: the
/// power laws that use it underflow either way); NaN gives NaN. Not for +infinity.
template <class VF>
inline void log8r(VF& x) {
  using VI = typename IntOf<VF>::type;
  const VF in = x;
  max8(x, COUPLET_SPLAT(1.17549435e-38f));
  VI bits;
  std::memcpy(&bits, &x, sizeof bits);
  VI e = (bits >> 23) - 126;  // x = m·2^e, m in [0.5, 1)
  bits = (bits & 0x007fffff) | 0x3f000000;
  VF m;
  std::memcpy(&m, &bits, sizeof m);
  const VI small = m < COUPLET_SPLAT(0.707106781186547524f);  // m in [√½, √2) after the shift below
  e = e + small;                                           // small is −1 where true
  const VF add = small ? m : COUPLET_SPLAT(0.0f);
  const VF f = (m - 1.0f) + add;
  const VF z = f * f;
  // the polynomial by Estrin's scheme (independent pairs, then powers of f): a third of Horner's latency
  const VF z2 = z * z;
  const VF p78 = f * -2.4999993993e-1f + 3.3333331174e-1f;
  const VF p56 = f * -1.6668057665e-1f + 2.0000714765e-1f;
  const VF p34 = f * -1.2420140846e-1f + 1.4249322787e-1f;
  const VF p12 = f * -1.1514610310e-1f + 1.1676998740e-1f;
  VF y = ((p78 + z * p56) + z2 * (p34 + z * p12)) + (z2 * z2) * 7.0376836292e-2f;
  y = y * f * z;
  const VF ef = __builtin_convertvector(e, VF);
  y = y + ef * -2.12194440e-4f;
  y = y - z * 0.5f;
  x = (f + y) + ef * 0.693359375f;
  x = in != in ? in : x;  // NaN stays NaN (the bit tricks above would make it finite)
}

/// e^x for x in [−87, 88]; outside, x is clamped there (−∞ gives e^−87 ≈ 1.6e-38, never 0 or infinity).
template <class VF>
inline void exp8r(VF& x) {
  using VI = typename IntOf<VF>::type;
  max8(x, COUPLET_SPLAT(-87.0f));
  min8(x, COUPLET_SPLAT(88.0f));
  // n = round(x / ln 2): truncation of x·log2(e) ± 0.5 toward zero
  const VF t = x * 1.44269504088896341f;
  const VF half = t < COUPLET_SPLAT(0.0f) ? COUPLET_SPLAT(-0.5f) : COUPLET_SPLAT(0.5f);
  const VI n = __builtin_convertvector(t + half, VI);
  const VF nf = __builtin_convertvector(n, VF);
  const VF r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
  const VF z = r * r;
  // Estrin's scheme, as in log8r
  const VF q45 = r * 1.6666665459e-1f + 5.0000001201e-1f;
  const VF q23 = r * 8.3334519073e-3f + 4.1665795894e-2f;
  const VF q01 = r * 1.9875691500e-4f + 1.3981999507e-3f;
  VF y = (q45 + z * q23) + (z * z) * q01;
  y = (y * z + r) + 1.0f;
  // 2^n with n in [−126, 127] (the clamps): a normal float built from its exponent field
  const VI pow2_bits = (n + 127) << 23;
  VF pow2;
  std::memcpy(&pow2, &pow2_bits, sizeof pow2);
  x = y * pow2;
}

/// p_k ← exp(e_k · ln p_k), the power law p^e, over n floats (n a multiple of 8): the product in single
/// precision, between the log and the exp without leaving the registers.
template <class VF>
inline void pow_block(float* p, const float* e) {
  VF x, y;
  std::memcpy(&x, p, sizeof x);
  std::memcpy(&y, e, sizeof y);
  log8r(x);
  x = x * y;
  exp8r(x);
  std::memcpy(p, &x, sizeof x);
}
inline void pow_inplace(float* p, const float* e, int n) {
  int k = 0;
#ifdef __AVX512F__
  for (; k + 16 <= n; k += 16) pow_block<vf16>(p + k, e + k);  // the same operations per float, 16 at once
#endif
  for (; k < n; k += 8) pow_block<vf8>(p + k, e + k);
}

#undef COUPLET_SPLAT

}  // namespace
}  // namespace couplet::tem_wbm

