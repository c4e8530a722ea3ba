// TEM-style WBM: richards_day_lanes compiled for AVX-512 with eight lanes (-mavx512f -ffp-contract=off, see
// CMakeLists.txt); chosen at run time by richards_lanes.cpp on machines that have it. Same bits as the SSE2
// and AVX2 builds: every lane does the same operations whatever the width.
#include "tem_wbm/richards_lanes.hpp"
#include "tem_wbm/vecmath.hpp"

#include <cstdint>
#include <cstring>

namespace couplet::tem_wbm::lanes_avx512 {
#define COUPLET_LANES_W 8  // kMaxLanes
#include "tem_wbm/richards_lanes.inc"
static_assert(kW == kMaxLanes);
}  // namespace couplet::tem_wbm::lanes_avx512
