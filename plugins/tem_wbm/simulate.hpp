// TEM-style WBM over many sites: the work of the node `tem_wbm.simulate` without its Context, so that it
// can be unit-tested (inputs are Datasets/Tables, outputs Datasets). Sites are independent; they are
// split into fixed chunks run on std::threads, and each site's result depends only on its own inputs,
// so outputs are bit-identical for any thread count.
#pragma once

#include "tem_wbm/model.hpp"

#include <couplet/artifact.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

enum class FillPolicy { Error, Linear };

/// Fills runs of NaN of at most `max_gap` values by linear interpolation between the bracketing values
/// (a run at either end of the series takes the nearest value). Returns the index of the first value
/// that stays missing (a longer run, or a series without any value), or `n` when all are filled.
std::size_t fill_linear(double* v, std::size_t n, std::size_t max_gap);

struct SimulateConfig {
  Options options;   ///< fixed parameters and flags (§3.2)
  Params params;     ///< calibrated parameters used where the `params` table has no value
  Statics statics;   ///< elevation, texture, land used where the `statics` dataset has no value
  double lai = 1.0;  ///< LAI [m2 m-2] where the forcing has no LAI variable
  FillPolicy fill = FillPolicy::Error;
  std::size_t max_gap = 5;  ///< days (FillPolicy::Linear)
  bool spin_up = false;     ///< §18 on the first forcing year
  double spin_up_tol = 0.5;  ///< mm
  int spin_up_max = 50;      ///< cycles
  int threads = 1;
};

struct SimulateResult {
  std::shared_ptr<Dataset> fluxes;  ///< (site, time) float64
  std::shared_ptr<Dataset> layers;  ///< (site, time, layer) theta
  std::vector<std::string> warnings;
};

/// Runs every site of `forcing` (site, time: Pr, SWD, Tair, Vp, optional LAI; daily, contiguous).
/// `statics` (site: elevation, sand, silt, clay, land, lat) and `params` (columns site + §3.1 code names)
/// may be null. `between_chunks(done, total)` is called on the calling thread after each wave of chunks
/// (progress, cancellation: it may throw). Throws NodeError for bad inputs, naming site and date.
SimulateResult simulate(const Dataset& forcing, const Dataset* statics, const Table* params,
                        const SimulateConfig& cfg, const Slots& slots = {},
                        const std::function<void(std::size_t, std::size_t)>& between_chunks = {});

/// Names of the calibrated parameters accepted as `params` table columns (§3.1 code names).
const std::vector<std::string>& param_names();

}  // namespace couplet::tem_wbm
