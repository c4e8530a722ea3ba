// TEM-style WBM: richards_day_lanes compiled for AVX2 (-mavx2 -ffp-contract=off, see CMakeLists.txt); chosen
// at run time by richards_lanes.cpp on machines that have it. Same bits as the SSE2 build.
#include "tem_wbm/richards_lanes.hpp"
#include "tem_wbm/vecmath.hpp"

#include <cstdint>
#include <cstring>

namespace couplet::tem_wbm::lanes_avx2 {
#define COUPLET_LANES_W 4  // kLanes
#include "tem_wbm/richards_lanes.inc"
static_assert(kW == kLanes);
}  // namespace couplet::tem_wbm::lanes_avx2
