// TEM-style WBM over many sites: the work of the node `tem_wbm.simulate` without its Context, so that it
// can be unit-tested (inputs are Datasets/Tables, outputs Datasets). Sites are independent; they are
// split into fixed chunks run on std::threads, and each site's result depends only on its own inputs,
// so outputs are bit-identical for any thread count.
#pragma once

#include "tem_wbm/model.hpp"

#include <couplet/artifact.hpp>
#include <couplet/series.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

enum class FillPolicy { Error, Linear };

struct SimulateConfig {
  Options options;   ///< fixed parameters and flags (§3.2)
  Params params;     ///< calibrated parameters used where the `params` table has no value
  Statics statics;   ///< elevation, texture, land used where the `statics` dataset has no value
  double lai = 1.0;  ///< LAI [m2 m-2] where neither the forcing (LAI series) nor statics (LAI per site) has one
  FillPolicy fill = FillPolicy::Error;
  std::size_t max_gap = 5;  ///< days (FillPolicy::Linear)
  bool spin_up = false;     ///< §18 on the first forcing year
  double spin_up_tol = 0.5;  ///< mm
  int spin_up_max = 50;      ///< cycles
  int threads = 1;
  std::vector<std::string> outputs;  ///< `fluxes` variables to produce (empty: all, see flux_names())
  bool layer_output = true;          ///< produce the (site, time, layer) theta of `layers`
};

struct SimulateResult {
  std::shared_ptr<Dataset> fluxes;  ///< (site, time) float64
  std::shared_ptr<Dataset> layers;  ///< (site, time, layer) theta
  std::vector<std::string> warnings;
};

/// A run's inputs, site by site: forcing checked and gap-filled per the fill policy, statics and
/// calibrated parameters resolved (node-parameter fallbacks reported in `warnings`, once).
struct SiteInputs {
  std::vector<std::string> sites;
  std::vector<double> time;  ///< days since 1970-01-01, daily and contiguous
  std::vector<int> doy;
  std::vector<series::SiteSeries> forcing;  ///< Pr, SWD, Tair, Vp[, LAI]
  bool has_lai = false;
  std::vector<double> lai;  ///< per site when the forcing has no LAI (statics' LAI, else the node parameter); else empty
  std::vector<Statics> statics;
  std::vector<Params> params;
  std::vector<std::string> warnings;

  Forcing day(std::size_t s, std::size_t t) const {
    return Forcing{forcing[0].row(s)[t], forcing[1].row(s)[t], forcing[2].row(s)[t], forcing[3].row(s)[t],
                   has_lai ? forcing[4].row(s)[t] : lai[s], doy[t]};
  }
};

/// §18 spin-up of `cell` on site s's first forcing year (at most 365 days) with `slots`, as simulate() does.
SpinUpResult spin_up_first_year(Cell& cell, const SiteInputs& in, std::size_t s, const SimulateConfig& cfg,
                                const Slots& slots = {});

/// Reads and checks what simulate() needs (see SiteInputs); throws NodeError naming site and date.
SiteInputs prepare_inputs(const Dataset& forcing, const Dataset* statics, const Table* params,
                          const SimulateConfig& cfg);

/// Calls run_site(s) for every site on `threads` threads in fixed chunks (so results never depend on
/// the thread count), and between_chunks(done, total) on the calling thread after each wave.
void for_each_site(std::size_t ns, int threads, const std::function<void(std::size_t)>& run_site,
                   const std::function<void(std::size_t, std::size_t)>& between_chunks = {});

/// Runs every site of `forcing` (site, time: Pr, SWD, Tair, Vp, optional LAI; daily, contiguous).
/// `statics` (site: elevation, sand, silt, clay, land, lat) and `params` (columns site + §3.1 code names)
/// may be null. `progress(done, total)` is called on the calling thread as it takes up a site (done =
/// the sites taken up before it) and once at the end (progress, cancellation: it may throw, and the other
/// threads then stop taking up sites). Throws NodeError for bad inputs, naming site and date.
SimulateResult simulate(const Dataset& forcing, const Dataset* statics, const Table* params,
                        const SimulateConfig& cfg, const Slots& slots = {},
                        const std::function<void(std::size_t, std::size_t)>& progress = {});

/// Names of the `fluxes` output variables, in order.
const std::vector<std::string>& flux_names();
/// The output schema, for writers that stream the outputs (the node) and for simulate() itself:
/// attributes of a `fluxes` variable (throws NodeError for an unknown name), of the `fluxes` Dataset,
/// the `layers` coordinates (layer, z_top, dz) and the attributes of `theta`.
Attributes flux_attributes(const std::string& name);
Attributes flux_dataset_attributes();
std::vector<Variable> layer_coordinates(const Options& o);
Attributes theta_attributes();
/// Names of the calibrated parameters accepted as `params` table columns (§3.1 code names).
const std::vector<std::string>& param_names();
/// The member of `p` a §3.1 code name denotes, or nullptr.
double* param_slot(Params& p, const std::string& name);

}  // namespace couplet::tem_wbm
