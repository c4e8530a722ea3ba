// TEM-style WBM: richards_day_lanes for SSE2 (every x86-64), the soil gather and the run-time choice
// between this and the AVX2 build of the same kernel (richards_lanes_avx2.cpp).
#include "tem_wbm/richards_lanes.hpp"
#include "tem_wbm/vecmath.hpp"

#include <cstdint>
#include <cstring>

namespace couplet::tem_wbm {

namespace lanes_sse2 {
#include "tem_wbm/richards_lanes.inc"
}  // namespace lanes_sse2

#if defined(__x86_64__) && defined(COUPLET_LANES_AVX2)
namespace lanes_avx2 {
void run(Layers* const* theta, const double* W_in, const SoilLanes& s, int n, const Options& o, RichardsDay* out);
}
namespace {
const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
}
#else
namespace {
constexpr bool kHaveAvx2 = false;
}
#endif

SoilLanes gather_soil(const Soil* const* soil, int n) {
  SoilLanes g{};
  constexpr int N = kN - 1;
  for (int l = 0; l < kLanes; ++l) {
    const Soil& s = *soil[l < n ? l : 0];
    for (int i = 0; i < kN; ++i) {
      g.theta_sat[i][l] = s.theta_sat[i];
      g.inv_theta_sat[i][l] = s.inv_theta_sat[i];
      g.theta_res[i][l] = s.theta_res[i];
      g.dz[i][l] = s.dz[i];
      g.b[i][l] = s.b[i];
      g.psi_sat[i][l] = s.psi_sat[i];
    }
    for (int k = 0; k < N; ++k) {
      g.theta_sat_if[k][l] = s.theta_sat_if[k];
      g.inv_theta_sat_if[k][l] = s.inv_theta_sat_if[k];
      g.k_if[k][l] = s.k_if[k];
      g.k_exp_if[k][l] = s.k_exp_if[k];
      g.inv_d[k][l] = s.inv_d[k];
    }
    g.k_sat_top[l] = s.k_sat[0];
    g.k_sat_bottom[l] = s.k_sat[N];
    g.k_exp_bottom[l] = s.k_exp[N];
  }
  return g;
}

void richards_day_lanes(Layers* const* theta, const double* W_in, const SoilLanes& soil, int n, const Options& o,
                        RichardsDay* out) {
  if (n <= 0) return;
#if defined(__x86_64__) && defined(COUPLET_LANES_AVX2)
  if (kHaveAvx2) return lanes_avx2::run(theta, W_in, soil, n, o, out);
#endif
  lanes_sse2::run(theta, W_in, soil, n, o, out);
}

void richards_day_lanes_sse2(Layers* const* theta, const double* W_in, const SoilLanes& soil, int n,
                             const Options& o, RichardsDay* out) {
  if (n > 0) lanes_sse2::run(theta, W_in, soil, n, o, out);
}

const char* richards_lanes_isa() { return kHaveAvx2 ? "avx2" : "sse2"; }

}  // namespace couplet::tem_wbm
