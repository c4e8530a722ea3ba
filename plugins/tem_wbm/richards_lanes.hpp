// TEM-style WBM: the upland Richards day (§13.2–§13.7) for several cells at once, one cell per SIMD lane.
//
// The lanes advance in lockstep, one sub-step attempt per iteration; each lane keeps its own Δt, time,
// infiltration and counters, selects replace the branches of richards_day, and a lane whose day has ended
// takes the next one at once (LaneFeed). Every lane computes exactly
// the operations richards_day does for its cell, in the same order, so the results are bit-identical to
// richards_day's, whichever cells share the lanes (the thread count or the batching never changes a result).
// Compiled twice, for SSE2 and for AVX2, and chosen at run time; no fused multiply-add in either, so both
// give the same bits.
#pragma once

#include "tem_wbm/kernels.hpp"

namespace couplet::tem_wbm {

/// Cells per batch: 4 doubles, one AVX2 register (two SSE2 ones).
inline constexpr int kLanes = 4;

/// The soil constants the Richards day reads, for kLanes cells: [layer or interface][lane] (the kernel's
/// own layout).
struct SoilLanes {
  double theta_sat[kN][kLanes], inv_theta_sat[kN][kLanes], theta_res[kN][kLanes], dz[kN][kLanes];
  double neg_b[kN][kLanes], psi_sat[kN][kLanes];  // neg_b = −b: no negation per sub-step
  double theta_sat_if[kN - 1][kLanes], inv_theta_sat_if[kN - 1][kLanes], k_if[kN - 1][kLanes];
  double k_exp_if[kN - 1][kLanes], inv_d[kN - 1][kLanes];
  double k_sat_top[kLanes], k_sat_bottom[kLanes], k_exp_bottom[kLanes];
  alignas(32) float pow_exp[2 * kN][kLanes];  // Soil::pow_exp
};

/// Copies soil `soil`'s constants into lane l.
void set_lane(SoilLanes& lanes, int l, const Soil& soil);

/// One upland Richards day for a lane: the column's kN water contents (read at the start, written back at
/// the end), the water to infiltrate over the day (§13.2) and the soil. (A raw pointer: the AVX2 build of the
/// kernel calls no inline function a file without AVX2 could end up sharing.)
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

/// Runs Richards days (no bottom-flux slot) in kLanes SIMD lanes until the feed has no more. Every day is
/// bit-identical to richards_day on the same column, water and soil.
void richards_lanes_stream(LaneFeed& feed, const Options& o);
/// The same on SSE2 whatever the machine has (for the test that both builds give the same bits).
void richards_lanes_stream_sse2(LaneFeed& feed, const Options& o);

/// richards_day for n cells at once (no bottom-flux slot), kLanes at a time: theta[c], W_in[c], soil[c]
/// → out[c]; bit-identical to richards_day(*theta[c], W_in[c], *soil[c], o) for every c.
void richards_day_lanes(Layers* const* theta, const double* W_in, const Soil* const* soil, int n, const Options& o,
                        RichardsDay* out, bool sse2 = false);

/// The instruction set richards_day_lanes runs on this machine: "avx2" or "sse2".
const char* richards_lanes_isa();

}  // namespace couplet::tem_wbm
