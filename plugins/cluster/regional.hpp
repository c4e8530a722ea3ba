// Regional prediction around the cluster models (science.md B, docs/models/cluster.md): the initial SSM
// window with gaps filled from neighbouring cells, per-cluster linear post-calibration, and per-cell
// evaluation against a gridded reference with the paper's eligibility rule and weighting. Pure code.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace couplet::cluster {

/// For each cell, up to `k` other cells ordered by great-circle distance (nearest first), within max_km.
std::vector<std::vector<std::size_t>> nearest_cells(const std::vector<double>& lat, const std::vector<double>& lon,
                                                    std::size_t k, double max_km, int threads);

/// Fills the NaNs of values[c * nt + t] for t in [t0, t1) from the nearest neighbour (in `neighbours[c]` order)
/// that has a value on the same day. Returns the cell-days still missing.
std::size_t fill_from_neighbours(std::vector<double>& values, std::size_t nt, std::size_t t0, std::size_t t1,
                                 const std::vector<std::vector<std::size_t>>& neighbours, std::size_t* filled = nullptr);

struct LinearFit {
  double intercept = 0, slope = 1, r2 = 0;
  std::size_t cells = 0, pairs = 0;
  bool fitted = false;
};

/// Ordinary least squares reference = intercept + slope · prediction over the pairs of the cells in
/// `use` (cells × nt, site-major) where both are finite.
LinearFit fit_linear(const std::vector<double>& pred, const std::vector<double>& ref, std::size_t nt,
                     const std::vector<std::size_t>& use);

struct CellScore {
  std::size_t n = 0;          ///< days with both values
  double valid_ratio = 0;     ///< days with a reference value / days
  double ref_std = 0;         ///< sd of the reference over its valid days
  double rmse = 0, r = 0;     ///< r is NaN unless eligible
  bool eligible = false;      ///< valid_ratio ≥ min_valid_ratio and ref_std ≥ min_std (and n ≥ 3)
};

CellScore score_cell(const double* pred, const double* ref, std::size_t nt, double min_valid_ratio, double min_std);

}  // namespace couplet::cluster
