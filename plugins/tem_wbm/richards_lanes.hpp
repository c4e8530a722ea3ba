// TEM-style WBM: the upland Richards day (§13.2–§13.7) for several cells at once, one cell per SIMD lane.
//
// The lanes advance in lockstep, one sub-step attempt per iteration; each lane keeps its own Δt, time,
// infiltration and counters, selects replace the branches of richards_day, and a lane whose day has ended
// takes the next one at once (LaneFeed). Every lane computes exactly
// the operations richards_day does for its cell, in the same order, so the results are bit-identical to
// richards_day's, whichever cells share the lanes (the thread count or the batching never changes a result).
// Compiled three times, for SSE2 and AVX2 (four lanes) and AVX-512 (eight), and chosen at run time; no fused
// multiply-add in any, so all give the same bits.
#pragma once

#include "tem_wbm/kernels.hpp"

namespace couplet::tem_wbm {

/// Cells per batch of the SSE2 and AVX2 builds: 4 doubles, one AVX2 register (two SSE2 ones).
inline constexpr int kLanes = 4;
/// Cells per batch of the AVX-512 build (8 doubles, one register), the most any build runs: size a feed's
/// per-lane arrays with kMaxLanes (a lane index is below the width of the build that runs, whichever that is).
inline constexpr int kMaxLanes = 8;

/// The soil constants the Richards day reads, for W cells: [layer or interface][lane] (the kernel's own
/// layout).
template <int W>
struct SoilLanesT {
  double theta_sat[kN][W], inv_theta_sat[kN][W], theta_res[kN][W], dz[kN][W];
  double neg_b[kN][W], psi_sat[kN][W];  // neg_b = −b: no negation per sub-step
  double theta_sat_if[kN - 1][W], inv_theta_sat_if[kN - 1][W], k_if[kN - 1][W];
  double k_exp_if[kN - 1][W], inv_d[kN - 1][W];
  double k_sat_top[W], k_sat_bottom[W], k_exp_bottom[W];
  alignas(32) float pow_exp[2 * kN][W];  // Soil::pow_exp
};
using SoilLanes = SoilLanesT<kLanes>;

/// Copies soil `soil`'s constants into lane l. Defined (for W = 4 and 8) in richards_lanes.cpp only, which
/// is compiled for SSE2: the AVX builds call that copy and never emit one of their own.
template <int W>
void set_lane(SoilLanesT<W>& lanes, int l, const Soil& soil);
extern template void set_lane<kLanes>(SoilLanesT<kLanes>&, int, const Soil&);
extern template void set_lane<kMaxLanes>(SoilLanesT<kMaxLanes>&, int, const Soil&);

/// One upland Richards day for a lane: the column's kN water contents (read at the start, written back at
/// the end), the water to infiltrate over the day (§13.2) and the soil. (A raw pointer: the AVX builds of the
/// kernel call no inline function a file without AVX could end up sharing.)
struct LaneDay {
  double* theta = nullptr;
  double W_in = 0;
  const Soil* soil = nullptr;
};

/// What keeps the lanes busy: next() is called for each lane at the start (done = nullptr) and whenever
/// the lane's day has ended (done = its result; the column has been written back). Fill `day` and return
/// true to start another day in that lane, false to leave it idle. Lanes are refilled independently, so
/// a lane whose day took few sub-steps goes on with another day (of its cell or another) instead of
/// waiting for the slowest lane.
class LaneFeed {
 public:
  virtual ~LaneFeed() = default;
  virtual bool next(int lane, const RichardsDay* done, LaneDay& day) = 0;
};

/// The builds of the kernel. Best: the widest this machine has (AVX-512, else AVX2, else SSE2), which
/// the environment variable COUPLET_LANES_ISA=avx2 or sse2 can cap. All give the same bits.
enum class LanesIsa { Best, Sse2, Avx2, Avx512 };
/// Whether this machine (and this build of couplet) can run `isa`.
bool richards_lanes_supported(LanesIsa isa);

/// Runs Richards days (no bottom-flux slot) in SIMD lanes until the feed has no more. Every day is
/// bit-identical to richards_day on the same column, water and soil. An `isa` the machine cannot run is
/// std::invalid_argument.
void richards_lanes_stream(LaneFeed& feed, const Options& o, LanesIsa isa = LanesIsa::Best);

/// richards_day for n cells at once (no bottom-flux slot), a lane set at a time: theta[c], W_in[c], soil[c]
/// → out[c]; bit-identical to richards_day(*theta[c], W_in[c], *soil[c], o) for every c.
void richards_day_lanes(Layers* const* theta, const double* W_in, const Soil* const* soil, int n, const Options& o,
                        RichardsDay* out, LanesIsa isa = LanesIsa::Best);

/// The instruction set LanesIsa::Best runs on this machine: "avx512", "avx2" or "sse2".
const char* richards_lanes_isa();
/// The lanes LanesIsa::Best runs on this machine: kMaxLanes with AVX-512, else kLanes.
int richards_lanes_width();

}  // namespace couplet::tem_wbm
