// Maps for the run report: a (lat, lon) variable drawn as an SVG heat map with a colour bar.
#pragma once

#include <couplet/artifact.hpp>

#include <string>
#include <vector>

namespace couplet::report {

/// SVG of `v` (dims exactly (lat, lon), row-major) on cell centres `lat`, `lon`: one rectangle per cell,
/// north up (whatever the order of `lat`), the viridis palette between the finite minimum and maximum
/// (a diverging blue–white–red one symmetric about 0 when `diverging`), NaN cells left blank; title,
/// colour bar with its limits, axis extents. Deterministic text (same values → same bytes).
std::string map_svg(const Variable& v, const std::vector<double>& lat, const std::vector<double>& lon,
                    const std::string& title, bool diverging);

/// True for a variable a report can draw: two dimensions named lat and lon, numeric.
bool is_map(const Variable& v);

}  // namespace couplet::report
