// TEM-style WBM: the upland Richards day (§13.2–§13.7) for several cells at once, one cell per SIMD lane.
//
// The cells advance in lockstep, one sub-step attempt per iteration; each lane keeps its own Δt, time,
// infiltration and counters, and selects replace the branches of richards_day. Every lane computes exactly
// the operations richards_day does for its cell, in the same order, so the results are bit-identical to
// richards_day's, whichever cells share the lanes (the thread count or the batching never changes a result).
// Compiled twice, for SSE2 and for AVX2, and chosen at run time; no fused multiply-add in either, so both
// give the same bits.
#pragma once

#include "tem_wbm/kernels.hpp"

namespace couplet::tem_wbm {

/// Cells per batch: 4 doubles, one AVX2 register (two SSE2 ones).
inline constexpr int kLanes = 4;

/// The soil constants the Richards day reads, for kLanes cells: [layer or interface][lane].
struct SoilLanes {
  double theta_sat[kN][kLanes], inv_theta_sat[kN][kLanes], theta_res[kN][kLanes], dz[kN][kLanes];
  double b[kN][kLanes], psi_sat[kN][kLanes];
  double theta_sat_if[kN - 1][kLanes], inv_theta_sat_if[kN - 1][kLanes], k_if[kN - 1][kLanes];
  double k_exp_if[kN - 1][kLanes], inv_d[kN - 1][kLanes];
  double k_sat_top[kLanes], k_sat_bottom[kLanes], k_exp_bottom[kLanes];
};

/// The lanes of n ≤ kLanes cells' soils; lanes n.. repeat cell 0 (they run, idle, and are never read).
SoilLanes gather_soil(const Soil* const* soil, int n);

/// richards_day (no bottom-flux slot) for n ≤ kLanes cells: theta[c], W_in[c] with the soil of lane c →
/// out[c]. Bit-identical to richards_day(*theta[c], W_in[c], soil c, o) for every c.
void richards_day_lanes(Layers* const* theta, const double* W_in, const SoilLanes& soil, int n, const Options& o,
                        RichardsDay* out);

/// richards_day_lanes on SSE2 whatever the machine has (for the test that both builds give the same bits).
void richards_day_lanes_sse2(Layers* const* theta, const double* W_in, const SoilLanes& soil, int n,
                             const Options& o, RichardsDay* out);

/// The instruction set richards_day_lanes runs on this machine: "avx2" or "sse2".
const char* richards_lanes_isa();

}  // namespace couplet::tem_wbm
