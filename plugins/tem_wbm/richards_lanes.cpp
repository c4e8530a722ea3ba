// TEM-style WBM: the lanes kernel for SSE2 (every x86-64), the run-time choice between it and the AVX2 and
// AVX-512 builds of the same kernel (richards_lanes_avx2.cpp, richards_lanes_avx512.cpp), and
// richards_day_lanes on top of them.
#include "tem_wbm/richards_lanes.hpp"
#include "tem_wbm/vecmath.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace couplet::tem_wbm {

namespace lanes_sse2 {
#define COUPLET_LANES_W 4  // kLanes
#include "tem_wbm/richards_lanes.inc"
}  // namespace lanes_sse2

#if defined(__x86_64__) && defined(COUPLET_LANES_AVX2)
namespace lanes_avx2 {
void run(LaneFeed& feed, const Options& o);
}
namespace lanes_avx512 {
void run(LaneFeed& feed, const Options& o);
}
namespace {
// COUPLET_LANES_ISA=sse2 or avx2 caps the default choice (the same bits; for measuring, or for processors
// that slow their clock under 512-bit instructions); avx512 or unset: no cap. Read once, when the plugin
// code is loaded. 0: sse2, 1: avx2, 2: no cap.
int isa_cap() {
  const char* v = std::getenv("COUPLET_LANES_ISA");
  if (!v || !*v || std::strcmp(v, "avx512") == 0) return 2;
  if (std::strcmp(v, "avx2") == 0) return 1;
  if (std::strcmp(v, "sse2") == 0) return 0;
  std::fprintf(stderr, "couplet: COUPLET_LANES_ISA=%s ignored (expected sse2, avx2 or avx512)\n", v);
  return 2;
}
const int kIsaCap = isa_cap();
// LanesIsa::Best on this machine: the widest build it has, under the cap
const LanesIsa kBest = kIsaCap >= 2 && __builtin_cpu_supports("avx512f") ? LanesIsa::Avx512
                       : kIsaCap >= 1 && __builtin_cpu_supports("avx2")  ? LanesIsa::Avx2
                                                                         : LanesIsa::Sse2;
}  // namespace
#else
namespace {
constexpr LanesIsa kBest = LanesIsa::Sse2;
}  // namespace
#endif

static_assert(lanes_sse2::kW == kLanes);

template <int W>
void set_lane(SoilLanesT<W>& g, int l, const Soil& s) {
  constexpr int N = kN - 1;
  for (int i = 0; i < kN; ++i) {
    g.theta_sat[i][l] = s.theta_sat[i];
    g.inv_theta_sat[i][l] = s.inv_theta_sat[i];
    g.theta_res[i][l] = s.theta_res[i];
    g.dz[i][l] = s.dz[i];
    g.neg_b[i][l] = -s.b[i];
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
  for (int j = 0; j < 2 * kN; ++j) g.pow_exp[j][l] = s.pow_exp[j];
}
template void set_lane<kLanes>(SoilLanesT<kLanes>&, int, const Soil&);
template void set_lane<kMaxLanes>(SoilLanesT<kMaxLanes>&, int, const Soil&);

bool richards_lanes_supported(LanesIsa isa) {
  switch (isa) {
    case LanesIsa::Best:
    case LanesIsa::Sse2: return true;
#if defined(__x86_64__) && defined(COUPLET_LANES_AVX2)
    case LanesIsa::Avx2: return __builtin_cpu_supports("avx2");
    case LanesIsa::Avx512: return __builtin_cpu_supports("avx512f");
#else
    case LanesIsa::Avx2:
    case LanesIsa::Avx512: return false;
#endif
  }
  return false;
}

void richards_lanes_stream(LaneFeed& feed, const Options& o, LanesIsa isa) {
  if (isa == LanesIsa::Best) isa = kBest;
  if (!richards_lanes_supported(isa))
    throw std::invalid_argument("richards_lanes_stream: this machine cannot run the requested instruction set");
#if defined(__x86_64__) && defined(COUPLET_LANES_AVX2)
  if (isa == LanesIsa::Avx512) return lanes_avx512::run(feed, o);
  if (isa == LanesIsa::Avx2) return lanes_avx2::run(feed, o);
#endif
  lanes_sse2::run(feed, o);
}

namespace {
// Each of n columns once, in order.
class OneDayEach final : public LaneFeed {
 public:
  OneDayEach(Layers* const* theta, const double* W_in, const Soil* const* soil, int n, RichardsDay* out)
      : theta_(theta), W_in_(W_in), soil_(soil), n_(n), out_(out) {}
  bool next(int lane, const RichardsDay* done, LaneDay& day) override {
    if (done) out_[running_[lane]] = *done;
    if (next_ >= n_) return false;
    running_[lane] = next_;
    day = {theta_[next_]->data(), W_in_[next_], soil_[next_]};
    ++next_;
    return true;
  }

 private:
  Layers* const* theta_;
  const double* W_in_;
  const Soil* const* soil_;
  int n_, next_ = 0;
  RichardsDay* out_;
  int running_[kMaxLanes] = {};
};
}  // namespace

void richards_day_lanes(Layers* const* theta, const double* W_in, const Soil* const* soil, int n, const Options& o,
                        RichardsDay* out, LanesIsa isa) {
  OneDayEach feed(theta, W_in, soil, n, out);
  richards_lanes_stream(feed, o, isa);
}

const char* richards_lanes_isa() {
  return kBest == LanesIsa::Avx512 ? "avx512" : kBest == LanesIsa::Avx2 ? "avx2" : "sse2";
}

int richards_lanes_width() { return kBest == LanesIsa::Avx512 ? kMaxLanes : kLanes; }

}  // namespace couplet::tem_wbm
