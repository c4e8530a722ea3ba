// Plugin "tem_wbm": the node tem_wbm.simulate, a TEM-style daily water balance model (spec
// shared/specs/tem-wbm.md). The model is in types/kernels/richards/model.cpp; the work over sites in
// simulate.cpp. This file only maps the Context (parameters, ports, threads, progress) onto it.
#include "tem_wbm/calibrate.hpp"
#include "common/text.hpp"
#include "tem_wbm/enhance.hpp"
#include "tem_wbm/enkf.hpp"
#include "tem_wbm/inverse.hpp"
#include "tem_wbm/optimize.hpp"
#include "tem_wbm/simulate.hpp"

#include <couplet/sdk.hpp>
#include <couplet/seed.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <set>
#include <functional>
#include <memory>
#include <mutex>

using namespace couplet;
namespace tw = couplet::tem_wbm;

namespace {

// Fixed parameters of spec §3.2 exposed as node parameters (data-driven: name, member, units, doc).
struct FixedParam {
  const char* name;
  double tw::Options::*member;
  const char* units;
  const char* doc;
};
const FixedParam kFixed[] = {
    {"f_drain", &tw::Options::f_drain, "1", "bottom drainage switch, 1 free drainage, 0 impermeable (spec 3.2)"},
    {"g_bl", &tw::Options::g_bl, "m s-1", "leaf boundary-layer conductance per LAI"},
    {"g_cut", &tw::Options::g_cut, "m s-1", "cuticular conductance per LAI"},
    {"d_open", &tw::Options::D_open, "Pa", "VPD of no stomatal closure"},
    {"d_close", &tw::Options::D_close, "Pa", "VPD of full stomatal closure"},
    {"t_open", &tw::Options::T_open, "degC", "temperature of no stomatal closure"},
    {"t_close", &tw::Options::T_close, "degC", "temperature of full stomatal closure"},
    {"q50", &tw::Options::Q50, "W m-2", "visible radiation giving half-maximal stomatal conductance"},
    {"f_par", &tw::Options::f_par, "1", "visible fraction of shortwave"},
    {"alpha_veg", &tw::Options::alpha_veg, "1", "canopy shortwave albedo"},
    {"alpha_soil", &tw::Options::alpha_soil, "1", "bare-soil shortwave albedo"},
    {"alpha_snow", &tw::Options::alpha_snow, "1", "albedo of snow-covered ground"},
    {"alpha_pt", &tw::Options::alpha_pt, "1", "Priestley-Taylor coefficient"},
    {"psi_fc", &tw::Options::psi_fc, "mm", "matric potential at field capacity"},
    {"psi_wilt", &tw::Options::psi_wilt, "mm", "matric potential at wilting (beta_T = 0)"},
    {"psi_dry", &tw::Options::psi_dry, "mm", "air-dry potential defining theta_res"},
    {"beta_r", &tw::Options::beta_r, "1", "root distribution coefficient (Jackson et al. 1996)"},
    {"t_snow_lo", &tw::Options::T_snow_lo, "degC", "all snow below"},
    {"t_snow_hi", &tw::Options::T_snow_hi, "degC", "all rain above (= t_snow_lo: a step)"},
    {"t_melt", &tw::Options::T_melt, "degC", "melt threshold"},
    {"ddf", &tw::Options::ddf, "mm degC-1 d-1", "degree-day factor"},
    {"c_rad", &tw::Options::c_rad, "1", "radiation melt multiplier (0 = pure degree-day)"},
    {"h_pond", &tw::Options::h_pond, "mm", "maximum ponding depth on wetlands"},
    {"p_g", &tw::Options::p_G, "1", "Granberg profile exponent"},
    {"a_0", &tw::Options::a_0, "m3 m-3", "wetland surface water content coefficient"},
    {"c_0", &tw::Options::c_0, "1", "wetland surface water content exponent"},
    {"theta0_min", &tw::Options::theta0_min, "m3 m-3", "minimum wetland surface water content"},
    {"zwt_max_factor", &tw::Options::zwt_max_factor, "1", "deepest wetland water table, in column depths"},
    {"dt0", &tw::Options::dt0, "s", "initial Richards sub-step (spec 13.6)"},
    {"dt_max", &tw::Options::dt_max, "s", "largest Richards sub-step"},
    {"dt_min", &tw::Options::dt_min, "s", "smallest Richards sub-step"},
    {"dtheta_max", &tw::Options::dtheta_max, "m3 m-3", "largest water-content change per sub-step"},
    {"tol_theta", &tw::Options::tol_theta, "m3 m-3", "bound tolerance before a sub-step is rejected"},
    {"s_min", &tw::Options::s_min, "1", "relative saturation floor in psi(theta)"},
    {"psi_min", &tw::Options::psi_min, "mm", "matric potential floor"},
    {"f_k", &tw::Options::f_K, "m-1", "k_sat depth-decay rate (with ksat_depth_decay)"},
};

/// A Surrogate (from the model input) as the ET slot; calls are serialised (surrogates need not be
/// thread-safe), which keeps results independent of the thread count.
class SurrogateEt final : public tw::EtSlot {
 public:
  explicit SurrogateEt(std::shared_ptr<Surrogate> s) : s_(std::move(s)) {}
  void evaluate(const double* f, double* out) const override {
    const std::vector<double> in(f, f + kFeatures);
    std::lock_guard<std::mutex> lock(m_);
    const auto r = s_->evaluate(in, 1);
    out[0] = r.size() > 0 ? r[0] : tw::kNaN;
    out[1] = r.size() > 1 ? r[1] : tw::kNaN;
  }

 private:
  std::shared_ptr<Surrogate> s_;
  mutable std::mutex m_;
};

class SurrogateDrainage final : public tw::DrainageSlot {
 public:
  explicit SurrogateDrainage(std::shared_ptr<Surrogate> s) : s_(std::move(s)) {}
  double evaluate(const double* f) const override {
    const std::vector<double> in(f, f + kFeatures);
    std::lock_guard<std::mutex> lock(m_);
    const auto r = s_->evaluate(in, 1);
    return r.empty() ? tw::kNaN : r[0];
  }

 private:
  std::shared_ptr<Surrogate> s_;
  mutable std::mutex m_;
};

using text::join;

/// The Surrogate of input `port`, checked against what its consumer needs: counts always, names where both
/// sides have them (`features`/`outputs` names; empty = unnamed).
std::shared_ptr<Surrogate> checked_surrogate(Context& ctx, const std::string& port, const std::vector<std::string>& features,
                                             const std::vector<std::string>& outputs, const std::string& needs) {
  auto s = ctx.surrogate(ctx.model(port));
  if (!s) throw NodeError("input '" + port + "': the model provides no surrogate");
  if (s->n_features() != features.size() || s->n_outputs() != outputs.size())
    throw NodeError("input '" + port + "': the surrogate takes " + std::to_string(s->n_features()) +
                    " features and gives " + std::to_string(s->n_outputs()) + " outputs; " + needs + " needs " +
                    std::to_string(features.size()) + " and " + std::to_string(outputs.size()) + " (see the node doc)");
  auto check = [&](const std::vector<std::string>& have, const std::vector<std::string>& want, const char* what) {
    if (have.empty() || want.empty() || std::find(want.begin(), want.end(), "") != want.end() || have == want) return;
    throw NodeError("input '" + port + "': the surrogate's " + what + " are " + join(have) + "; " + needs +
                    " needs " + join(want) + ", in this order");
  };
  check(s->feature_names(), features, "features");
  check(s->output_names(), outputs, "outputs");
  return s;
}


}  // namespace

namespace {

// Model configuration parameters shared by tem_wbm.simulate and tem_wbm.calibrate.
void declare_model_params(NodeBuilder& node) {
  node
      .param(param_bool("spin_up", false, "repeat the first forcing year until year-end storage changes < 0.5 mm "
                                          "(max 50 cycles) before the run (spec 18)"))
      .param(param_string("fill", "error", "missing forcing: \"error\" (names site and date) or \"linear\"")
                 .one_of({"error", "linear"}))
      .param(param_int("max_gap", 5, "longest gap [days] that fill = \"linear\" interpolates").bounds(0, 3650))
      .param(param_float("lai", 1.0, "LAI where the forcing has no LAI").bounds(0, 15).in_units("m2 m-2"))
      .param(param_float("elevation", 0.0, "elevation where statics have none").bounds(-500, 9000).in_units("m"))
      .param(param_float("sand", 0.4, "sand fraction where statics have none").bounds(0, 1))
      .param(param_float("silt", 0.4, "silt fraction where statics have none").bounds(0, 1))
      .param(param_float("clay", 0.2, "clay fraction where statics have none").bounds(0, 1))
      .param(param_int("land", 0, "land type where statics have none: 0 upland, 1 wetland").bounds(0, 1))
      .param(param_float("i_rmax", 0.041, "rain interception coefficient (fraction per LAI; with "
                                          "interception_form = capacity, i_rmax_capacity is used)")
                 .bounds(0, 1))
      .param(param_float("i_rmax_capacity", 0.2, "interception capacity per LAI (interception_form = capacity)")
                 .bounds(0, 5).in_units("mm d-1"))
      .param(param_float("g_max", 0.005, "maximum stomatal conductance per leaf area").bounds(0, 0.1).in_units("m s-1"))
      .param(param_float("e_r", 0.5, "canopy radiation extinction coefficient").bounds(0.01, 2))
      .param(param_float("q_drmax", 3.0, "maximum wetland drainage rate").bounds(0, 1000).in_units("mm d-1"))
      .param(param_string("pedotransfer", "table5", "Cosby et al. (1984) table: table5 (univariate) or table4")
                 .one_of({"table5", "table4"}))
      .param(param_string("interception_form", "fraction", "I = min(R, i_rmax*R*LAI) (fraction) or "
                                                            "min(R, i_rmax_capacity*LAI) (capacity)")
                 .one_of({"fraction", "capacity"}))
      .param(param_string("et_method", "PM", "transpiration: Penman-Monteith (PM) or Priestley-Taylor (PT)")
                 .one_of({"PM", "PT"}))
      .param(param_string("soil_evap", "PT", "soil evaporation: Priestley-Taylor (PT) or Penman-Monteith with "
                                             "bare-soil resistance (PM)")
                 .one_of({"PT", "PM"}))
      .param(param_bool("theta0_relative", false, "wetland surface water content relative to theta_sat (spec 14.1)"))
      .param(param_bool("ksat_depth_decay", false, "k_sat decays with depth, exp(-f_k z) (spec 3.2)"))
      .param(param_floats("dz", std::vector<double>{50, 50, 100, 200, 400, 700}, "six layer thicknesses")
                 .in_units("mm"));
  for (const auto& fp : kFixed)
    node.param(param_float(fp.name, tw::Options{}.*fp.member, fp.doc).in_units(fp.units));
}

tw::SimulateConfig config_from(Context& ctx) {
  tw::SimulateConfig cfg;
  tw::Options& o = cfg.options;
  for (const auto& fp : kFixed) o.*fp.member = ctx.param<double>(fp.name);
  const auto dz = ctx.param<std::vector<double>>("dz");
  if (dz.size() != static_cast<std::size_t>(tw::kN))
    throw NodeError("parameter 'dz' needs " + std::to_string(tw::kN) + " values, has " + std::to_string(dz.size()));
  for (int i = 0; i < tw::kN; ++i) {
    if (!(dz[i] > 0)) throw NodeError("parameter 'dz': thicknesses must be positive");
    o.dz[i] = dz[i];
  }
  o.pedotransfer = ctx.param<std::string>("pedotransfer") == "table4" ? tw::Pedotransfer::Table4 : tw::Pedotransfer::Table5;
  const bool capacity = ctx.param<std::string>("interception_form") == "capacity";
  o.interception = capacity ? tw::InterceptionForm::Capacity : tw::InterceptionForm::Fraction;
  o.et_method = ctx.param<std::string>("et_method") == "PT" ? tw::EtMethod::PT : tw::EtMethod::PM;
  o.soil_evap = ctx.param<std::string>("soil_evap") == "PM" ? tw::SoilEvap::PM : tw::SoilEvap::PT;
  o.theta0_relative = ctx.param<bool>("theta0_relative");
  o.ksat_depth_decay = ctx.param<bool>("ksat_depth_decay");
  o.mb_throw = false;  // flagged and reported in a warning; outputs carry mb_residual

  cfg.params.i_rmax = capacity ? ctx.param<double>("i_rmax_capacity") : ctx.param<double>("i_rmax");
  cfg.params.g_max = ctx.param<double>("g_max");
  cfg.params.e_r = ctx.param<double>("e_r");
  cfg.params.q_drmax = ctx.param<double>("q_drmax");
  cfg.statics.elev = ctx.param<double>("elevation");
  cfg.statics.sand = ctx.param<double>("sand");
  cfg.statics.silt = ctx.param<double>("silt");
  cfg.statics.clay = ctx.param<double>("clay");
  cfg.statics.land = ctx.param<std::int64_t>("land") == 1 ? tw::Land::Wetland : tw::Land::Upland;
  cfg.lai = ctx.param<double>("lai");
  cfg.fill = ctx.param<std::string>("fill") == "linear" ? tw::FillPolicy::Linear : tw::FillPolicy::Error;
  cfg.max_gap = static_cast<std::size_t>(ctx.param<std::int64_t>("max_gap"));
  cfg.spin_up = ctx.param<bool>("spin_up");
  cfg.threads = ctx.threads();
  return cfg;
}

/// The site inputs of a node that runs the model per site, as tem_wbm.simulate reads them (forcing,
/// optional statics and params); the reader's warnings are logged.
tw::SiteInputs read_site_inputs(Context& ctx, const tw::SimulateConfig& cfg) {
  const Dataset* statics = ctx.has_input("statics") ? &ctx.dataset("statics") : nullptr;
  const Table* params = ctx.has_input("params") ? &ctx.table("params") : nullptr;
  tw::SiteInputs in = tw::prepare_inputs(ctx.dataset("forcing"), statics, params, cfg);
  for (const auto& w : in.warnings) ctx.warn(w);
  return in;
}

/// Input `observation`'s `variable` on the forcing's sites and days (site-major, NaN where missing).
std::vector<double> observation_on(Context& ctx, const tw::SiteInputs& in) {
  try {
    return series::align(series::read_site_series(ctx.dataset("observation"), ctx.param<std::string>("variable")),
                         in.sites, in.time, "observations", "forcing");
  } catch (const NodeError& e) {
    throw NodeError(std::string("input 'observation': ") + e.what());
  }
}

/// run_site(s) for every site on `threads` threads (tw::for_each_site: thread-count independent), with
/// progress and cancellation; a site whose model rejects its inputs (std::invalid_argument, spec §17) fails
/// the node, naming the first such site.
void run_sites(Context& ctx, const tw::SiteInputs& in, int threads, const std::function<void(std::size_t)>& run_site) {
  const std::size_t ns = in.sites.size();
  std::vector<std::string> errors(ns);
  tw::for_each_site(
      ns, threads,
      [&](std::size_t s) {
        try {
          run_site(s);
        } catch (const std::invalid_argument& e) {
          errors[s] = e.what();
        }
      },
      [&](std::size_t done, std::size_t) {
        ctx.check_cancelled();
        ctx.progress(static_cast<double>(done), static_cast<double>(ns), "sites");
      });
  for (std::size_t s = 0; s < ns; ++s)
    if (!errors[s].empty()) throw NodeError("site '" + in.sites[s] + "': " + errors[s]);
}

/// The §18 spin-up on site s's first forcing year for every candidate run, many candidates at once (their
/// spin-ups together in the SIMD lanes, spin_up_cells); empty without spin_up.
tw::PrepareCells spin_up_cells_hook(const tw::SiteInputs& in, std::size_t s, const tw::SimulateConfig& cfg) {
  if (!cfg.spin_up || in.time.empty()) return {};
  return [&in, s, &cfg](tw::Cell* const* cells, std::size_t n) {
    const std::size_t year = std::min<std::size_t>(365, in.time.size());
    tw::spin_up_cells(cells, n, year, [&](std::size_t, std::size_t t) { return in.day(s, t); }, {}, cfg.spin_up_tol,
                      cfg.spin_up_max);
  };
}

/// The observation window of a node that fits to observed SSM per site: `variable`, `start`, `end`, `warmup_days`.
void declare_window_params(NodeBuilder& node, int warmup_default) {
  node.param(param_string("variable", "SSM", "observed variable in `observation`"))
      .param(param_date("start", "", "first day scored (empty: the forcing's first day after warm-up)"))
      .param(param_date("end", "", "last day scored and simulated (empty: the forcing's last day)"))
      .param(param_int("warmup_days", warmup_default, "days at the start of the forcing that are simulated but not scored")
                 .bounds(0, 100000)
                 .in_units("d"));
}

struct ScoredWindow {
  std::size_t first, n_days;  ///< days [first, n_days) of the forcing are scored; [0, n_days) are simulated
};

ScoredWindow scored_window(Context& ctx, const tw::SiteInputs& in) {
  const std::size_t nt = in.time.size();
  if (nt == 0) throw NodeError("input 'forcing' has no days");
  const auto warmup = static_cast<std::size_t>(ctx.param<std::int64_t>("warmup_days"));
  auto index_of = [&](const std::string& param, std::size_t fallback) {
    const auto text = ctx.param<std::string>(param);
    if (text.empty()) return fallback;
    const double day = static_cast<double>(parse_date(text));
    if (nt == 0 || day < in.time.front() || day > in.time.back())
      throw NodeError("parameter '" + param + "' (" + text + ") is outside the forcing's period " +
                      format_date(static_cast<std::int64_t>(in.time.front())) + " .. " +
                      format_date(static_cast<std::int64_t>(in.time.back())));
    return static_cast<std::size_t>(day - in.time.front());
  };
  const std::size_t first = std::max(warmup, index_of("start", 0));
  const std::size_t n_days = index_of("end", nt ? nt - 1 : 0) + 1;
  if (first >= n_days)
    throw NodeError("nothing to score: the scored window starts after it ends (check start, end and warmup_days)");
  return {first, n_days};
}

}  // namespace

COUPLET_PLUGIN("tem_wbm", "0.1.0") {
  auto node = plugin.node("tem_wbm.simulate");
  node.version("6")  // 2: outputs streamed in blocks; 3: LAI per site from statics; 4: beta_s of theta_1/theta_fc,1 (last-bit changes)
                     // 5: own single-precision log/exp, Illinois z_wt; 6: tridiagonal solve by continuants (last-bit changes)
      .summary("TEM-style daily soil water balance: upland six-layer Richards column or two-zone wetland")
      .doc("Implements shared/specs/tem-wbm.md v1.0 cell by cell (sites are independent): degree-day snow, "
           "canopy interception (I_RMAX), Beer's-law radiation partition (E_R), Penman-Monteith transpiration "
           "with light-integrated stomatal conductance (g_max), Priestley-Taylor soil evaporation; upland "
           "(land 0): six layers (50, 50, 100, 200, 400, 700 mm), implicit Richards redistribution with "
           "adaptive sub-steps, free drainage and a mass-conserving projection; wetland (land 1): total water W "
           "is prognostic, water table diagnosed from a Granberg profile, drainage limited by Q_DRMAX. Soil "
           "hydraulics from texture (Cosby et al. 1984) unless the `params` table gives calibrated values.\n\n"
           "Missing forcing is an error naming the site and date unless fill = \"linear\" (gaps of at most "
           "max_gap days interpolated; gaps at the series ends take the nearest value). Statics or LAI that the "
           "inputs do not give come from the node parameters, reported in one warning.\n\n"
           "Embedded slots: `et_surrogate` replaces the transpiration and soil-evaporation demands. Its "
           "feature vector (12) is Tair [degC], VPD [Pa], daytime shortwave SW_d [W m-2], LAI, canopy "
           "energy A_c [W m-2], ground energy A_g [W m-2], canopy-dry time t_dry [s], daylight t_day [s], "
           "soil water stress beta_T, theta_1/theta_fc, snow cover (0/1), air pressure [Pa]; outputs (2): "
           "transpiration demand and soil-evaporation demand [mm d-1]. `drainage_surrogate` (6 features, "
           "1 output) replaces drainage: upland features (0, theta_6, theta_sat, k_sat [mm s-1], b, psi_6 [mm]) "
           "-> bottom flux [mm s-1] in every Richards sub-step; wetland features (1, z_wt [mm], W - W_min "
           "[mm], Z [mm], theta_sat, Q_DRMAX [mm d-1]) -> drainage capacity [mm d-1]. Physics keeps the "
           "caps that close the water budget (wilting caps, supply caps, W_min) and ES = 0 under snow.\n\n"
           "Sites run in parallel on the node's threads with a static partition: outputs are bit-identical "
           "for any thread count.")
      .input("forcing", ArtifactKind::Dataset,
             "(site, time), daily: Pr [mm d-1], SWD [W m-2], Tair [degC], Vp [hPa], optional LAI [m2 m-2]")
      .optional_input("statics", ArtifactKind::Dataset,
                      "(site): elevation [m], sand, silt, clay [0-1], land (0 upland, 1 wetland), lat [deg], LAI [m2 m-2] (used where the forcing has no LAI)")
      .optional_input("params", ArtifactKind::Table,
                      "per-site calibrated parameters: column site + any of theta_sat, k_sat [mm s-1], psi_sat "
                      "[mm], b, i_rmax, g_max [m s-1], e_r, q_drmax [mm d-1]")
      .optional_input("et_surrogate", ArtifactKind::Model, "a model whose Surrogate fills the ET slot (12 -> 2)")
      .optional_input("drainage_surrogate", ArtifactKind::Model,
                      "a model whose Surrogate fills the drainage slot (6 -> 1)")
      .output("fluxes", ArtifactKind::Dataset,
              "(site, time) float64: IF, EV, ES, DR, RO, EI, ET_total, rain, snowfall, melt, SSM, SWE, W_soil, "
              "z_wt, beta_T, G_s, mb_residual, n_substeps, n_rejected, n_projections, flags")
      .output("layers", ArtifactKind::Dataset,
              "(site, time, layer): theta [m3 m-3] (only the layer coordinates when layer_output = false)")
      .param(param_strings("outputs", std::vector<std::string>{},
                           "fluxes variables to produce; empty: all (a large run may want only SSM)")
                 .one_of(tw::flux_names()))
      .param(param_bool("layer_output", true, "produce theta per layer in `layers`"))
      .param(param_int("block_sites", 256, "sites simulated, read and written per block (memory: one block of "
                                            "forcing and outputs at a time)").bounds(1, 1e9));
  declare_model_params(node);
  node.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    cfg.outputs = ctx.param<std::vector<std::string>>("outputs");
    cfg.layer_output = ctx.param<bool>("layer_output");

    std::unique_ptr<SurrogateEt> et;
    std::unique_ptr<SurrogateDrainage> drainage;
    tw::Slots slots;
    if (ctx.has_input("et_surrogate")) {
      et = std::make_unique<SurrogateEt>(
          checked_surrogate(ctx, "et_surrogate", tw::EtSlot::feature_names(), tw::EtSlot::output_names(), "the ET slot"));
      slots.et = et.get();
    }
    if (ctx.has_input("drainage_surrogate")) {
      drainage = std::make_unique<SurrogateDrainage>(
          checked_surrogate(ctx, "drainage_surrogate", std::vector<std::string>(tw::DrainageSlot::kFeatures),
                            std::vector<std::string>(1), "the drainage slot"));
      slots.drainage = drainage.get();
    }

    const Dataset* statics = ctx.has_input("statics") ? &ctx.dataset("statics") : nullptr;
    const Table* params = ctx.has_input("params") ? &ctx.table("params") : nullptr;
    ctx.check_cancelled();

    // Sites stream through in blocks: the forcing is read (when its producer streamed it) and the outputs
    // written block by block, so a global run never holds more than one block of either.
    const Chunking chunking = ctx.input_chunking("forcing");
    if (chunking.streamed() && chunking.dim != "site")
      throw NodeError("input 'forcing' is streamed along '" + chunking.dim + "'; tem_wbm.simulate needs it along 'site'");
    std::shared_ptr<const Dataset> head;
    const Dataset* whole = nullptr;
    if (chunking.streamed()) {
      head = ctx.input_header("forcing");
    } else {
      whole = &ctx.dataset("forcing");
    }
    const Dataset& header = whole ? *whole : *head;
    const std::vector<std::string> sites = series::site_names(header);
    const std::vector<double> time = series::time_days(header);
    const std::size_t ns = sites.size(), nt = time.size();
    const auto block = static_cast<std::size_t>(ctx.param<std::int64_t>("block_sites"));

    if (ns == 0) throw NodeError("input 'forcing' has no sites");

    // Output layouts: the coordinates whole, the model's variables streamed along site.
    ChunkedLayout fl{"site", ns, {}, {}}, ll{"site", ns, {}, {}};
    fl.header.attrs = tw::flux_dataset_attributes();
    fl.header.add(series::site_coord(sites));
    fl.header.add(series::time_coord(time));
    for (const auto& name : cfg.outputs.empty() ? tw::flux_names() : cfg.outputs)
      fl.variables.push_back({name, {"site", "time"}, {nt}, DType::Float64, tw::flux_attributes(name)});
    ll.header.add(series::site_coord(sites));
    ll.header.add(series::time_coord(time));
    for (auto& v : tw::layer_coordinates(cfg.options)) ll.header.add(std::move(v));
    if (cfg.layer_output)
      ll.variables.push_back({"theta", {"site", "time", "layer"}, {nt, std::size_t{tw::kN}}, DType::Float64,
                              tw::theta_attributes()});
    else  // nothing to stream: the coordinates alone
      ctx.set_output("layers", std::make_shared<Dataset>(ll.header));
    auto flux_out = ctx.chunked_output("fluxes", fl);
    auto layer_out = cfg.layer_output ? ctx.chunked_output("layers", ll) : nullptr;

    std::vector<std::string> warnings;
    std::set<std::string> seen;
    const std::size_t n_blocks = (ns + block - 1) / block;
    for (std::size_t b = 0; b < ns; b += block) {
      const std::size_t n = std::min(block, ns - b);
      const std::shared_ptr<const Dataset> rows =
          whole ? std::make_shared<const Dataset>(series::slice_rows(*whole, "site", b, n)) : ctx.input_rows("forcing", b, n);
      auto result = tw::simulate(*rows, statics, params, cfg, slots, [&](std::size_t done, std::size_t) {
        ctx.check_cancelled();
        ctx.progress(static_cast<double>(b + done), static_cast<double>(ns), "sites");
      });
      for (const auto& w : result.warnings) {
        const std::string msg = n_blocks == 1 || w.rfind("node parameters used", 0) == 0
                                    ? w
                                    : "sites " + std::to_string(b + 1) + "-" + std::to_string(b + n) + ": " + w;
        if (seen.insert(msg).second) warnings.push_back(msg);
      }
      Dataset fx, ly;
      for (const auto& spec : fl.variables) fx.add(result.fluxes->var(spec.name));
      for (const auto& spec : ll.variables) ly.add(result.layers->var(spec.name));
      flux_out->write(b, fx);
      if (layer_out) layer_out->write(b, ly);
    }
    for (const auto& w : warnings) ctx.warn(w);
    flux_out->close();
    if (layer_out) layer_out->close();
  });

  auto cal = plugin.node("tem_wbm.calibrate");
  cal.version("7")  // 2: per-site seeds from derive_seed; 3: LAI per site from statics; 4: beta_s last-bit change;
                    // 5: spin_up honoured (it was ignored), first guess from `inverse`, trace and evals_to_1pct
                    // 6: own single-precision log/exp, Illinois z_wt; 7: tridiagonal solve by continuants (last-bit changes)
      .summary("Calibrates the water balance model per site against observed SSM (DE search + LM polish)")
      .doc("Estimates, per site, the spec's section 3.1 parameters within their bounds: upland theta_sat, "
           "k_sat, psi_sat, b, i_rmax, g_max, e_r; wetland q_drmax, i_rmax, g_max, e_r. k_sat, psi_sat and "
           "q_drmax are searched in log10. Objective: RMSE of simulated vs observed SSM on the days in "
           "[start, end] after the first `warmup_days` of the forcing. Every candidate runs from the first "
           "forcing day, from the spec's initial state or, with spin_up, after the section 18 spin-up with the "
           "candidate's own parameters (as tem_wbm.simulate will run them; 1.5-2 times slower). Search: "
           "differential evolution (DE/rand/1/bin, Latin-hypercube start), then a bounded Levenberg-Marquardt "
           "polish on the SSM residuals. Each site gets its own seed from the node seed and its name, so results "
           "do not depend on the thread count or on which other sites are calibrated. A site whose calibrated "
           "set does not beat its starting parameters keeps them. Feed `params` to tem_wbm.simulate.\n\n"
           "Warm start (model solution, Shen & Zhang's method 6): with `inverse`, a learned inverse (learn.surrogate "
           "trained on tem_wbm.sample_inverse's samples: signature features -> u_<parameter>) predicts each "
           "upland site's parameters from its observed SSM signature, climate and texture; the prediction is "
           "member 0 of the search and a share `guess_share` of the population is drawn around it (sd "
           "`guess_spread` in unit coordinates); the rest keeps the Latin-hypercube start. Wetland sites and sites "
           "whose signature is incomplete start cold (warning). `trace` records every improvement of the best "
           "RMSE with the model runs it took, so cold and warm starts can be compared (eval.convergence).")
      .input("forcing", ArtifactKind::Dataset, "(site, time), daily: Pr, SWD, Tair, Vp, optional LAI (as simulate)")
      .input("observation", ArtifactKind::Dataset, "(site, time): observed SSM [m3 m-3] (NaN = missing)")
      .optional_input("statics", ArtifactKind::Dataset, "(site): elevation, sand, silt, clay, land, lat, LAI (as simulate)")
      .optional_input("params", ArtifactKind::Table, "starting parameters per site (as simulate's params)")
      .optional_input("inverse", ArtifactKind::Model,
                      "a learned inverse whose Surrogate maps tem_wbm.sample_inverse's signature features to the "
                      "upland parameters' u_ columns: the search's first guess")
      .output("params", ArtifactKind::Table,
              "per site: site, land, the eight parameter columns (NaN where not calibrated for the land type), "
              "rmse_before, rmse_guess, rmse_after [m3 m-3], n_obs, evaluations, evals_to_1pct")
      .output("trace", ArtifactKind::Table,
              "per site and improvement: site, evaluation (model runs so far; 0 = the starting parameters), rmse "
              "(best so far)")
      .param(param_int("max_evaluations", 800, "model runs per site for the global search").bounds(20, 10000000))
      .param(param_int("population", 0, "differential-evolution population (0: 10 x parameters)").bounds(0, 100000))
      .param(param_bool("polish", true, "polish the best candidate with Levenberg-Marquardt"))
      .param(param_int("polish_iterations", 8, "Levenberg-Marquardt iterations").bounds(0, 1000))
      .param(param_int("min_obs", 30, "sites with fewer scored observations are not calibrated (warning)")
                 .bounds(1, 100000))
      .param(param_float("guess_share", 0.5, "with `inverse`: share of the population drawn around the first guess")
                 .bounds(0, 1))
      .param(param_float("guess_spread", 0.1, "with `inverse`: sd of those draws in unit coordinates").bounds(0, 1));
  declare_window_params(cal, 365);
  declare_model_params(cal);
  cal.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    const tw::SiteInputs in = read_site_inputs(ctx, cfg);
    const std::size_t ns = in.sites.size(), nt = in.time.size();
    const std::vector<double> o = observation_on(ctx, in);
    const auto [first, n_days] = scored_window(ctx, in);

    tw::CalibrationOptions copt;
    copt.search.max_evaluations = static_cast<int>(ctx.param<std::int64_t>("max_evaluations"));
    copt.search.population = static_cast<int>(ctx.param<std::int64_t>("population"));
    copt.search.initial_share = ctx.param<double>("guess_share");
    copt.search.initial_spread = ctx.param<double>("guess_spread");
    copt.polish = ctx.param<bool>("polish");
    copt.polish_options.max_iterations = static_cast<int>(ctx.param<std::int64_t>("polish_iterations"));
    const auto min_obs = static_cast<std::size_t>(ctx.param<std::int64_t>("min_obs"));

    // First guesses from the learned inverse: the observed signature -> unit coordinates -> parameters.
    const auto& upland = tw::calibrated_params(tw::Land::Upland);
    std::vector<std::vector<double>> guess(ns);
    if (ctx.has_input("inverse")) {
      std::vector<std::string> outputs;
      for (const auto& c : upland) outputs.push_back(tw::unit_column(c.name));
      const auto inverse = checked_surrogate(ctx, "inverse", tw::signature_names(), outputs, "tem_wbm.calibrate");
      std::vector<tw::optimize::Bound> bounds;
      for (const auto& c : upland) bounds.push_back(c.bound);
      std::vector<std::string> cold;
      for (std::size_t s = 0; s < ns; ++s) {
        if (in.statics[s].land != tw::Land::Upland) {
          cold.push_back(in.sites[s] + " (wetland)");
          continue;
        }
        auto day = [&](std::size_t t) { return in.day(s, t); };
        const std::vector<double> sig = tw::ssm_signature(o.data() + s * nt, first, n_days, day, in.statics[s]);
        bool complete = true;
        for (double v : sig) complete = complete && std::isfinite(v);
        std::vector<double> u = complete ? inverse->evaluate(sig, 1) : std::vector<double>{};
        for (double& v : u) complete = complete && std::isfinite(v), v = std::clamp(v, 0.0, 1.0);
        if (!complete) {
          cold.push_back(in.sites[s] + " (incomplete signature)");
          continue;
        }
        guess[s] = tw::optimize::from_unit(u, bounds);
      }
      if (!cold.empty())
        ctx.warn(std::to_string(cold.size()) + " of " + std::to_string(ns) + " sites start cold: " + join(cold));
    }

    std::vector<tw::SiteCalibration> results(ns);
    std::vector<char> skipped(ns, 0);
    tw::for_each_site(
        ns, ctx.threads(),
        [&](std::size_t s) {
          tw::CalibrationOptions site_opt = copt;
          // By name: independent of thread count and of which other sites are in the run.
          site_opt.search.seed = derive_seed(ctx.seed(), in.sites[s]);
          site_opt.search.initial = guess[s];
          const double* obs_s = o.data() + s * nt;
          std::size_t n_obs = 0;
          for (std::size_t t = first; t < n_days; ++t) n_obs += !std::isnan(obs_s[t]);
          if (n_obs < min_obs) {
            skipped[s] = 1;
            results[s].params = in.params[s];
            results[s].n_obs = n_obs;
            return;
          }
          auto day = [&](std::size_t t) { return in.day(s, t); };
          results[s] = tw::calibrate_site(in.statics[s], in.params[s], cfg.options, day, n_days, obs_s, first, site_opt,
                                          {}, spin_up_cells_hook(in, s, cfg));
        },
        [&](std::size_t done, std::size_t total) {
          ctx.check_cancelled();
          ctx.progress(static_cast<double>(done), static_cast<double>(total), "sites calibrated");
        });

    std::size_t n_skipped = 0;
    for (char k : skipped) n_skipped += k;
    if (n_skipped)
      ctx.warn(std::to_string(n_skipped) + " of " + std::to_string(ns) + " sites have fewer than " +
               std::to_string(min_obs) + " scored observations and keep their starting parameters");

    auto table = std::make_shared<Table>();
    table->add_column("site", in.sites);
    std::vector<double> land(ns);
    for (std::size_t s = 0; s < ns; ++s) land[s] = in.statics[s].land == tw::Land::Wetland ? 1 : 0;
    table->add_column("land", land, "1", "0 upland, 1 wetland");
    for (const auto& name : tw::param_names()) {
      std::vector<double> col(ns, tw::kNaN);
      for (std::size_t s = 0; s < ns; ++s) {
        if (skipped[s]) continue;
        for (const auto& c : tw::calibrated_params(in.statics[s].land))
          if (c.name == name) col[s] = *tw::param_slot(results[s].params, name);
      }
      table->add_column(name, col);
    }
    std::vector<double> before(ns), at_guess(ns), after(ns), n_obs(ns), evals(ns), to_1pct(ns);
    std::vector<std::string> trace_site;
    std::vector<double> trace_eval, trace_rmse;
    for (std::size_t s = 0; s < ns; ++s) {
      const auto& r = results[s];
      before[s] = r.rmse_before;
      at_guess[s] = r.rmse_guess;
      after[s] = r.rmse_after;
      n_obs[s] = static_cast<double>(r.n_obs);
      evals[s] = r.evaluations;
      const int k = r.trace.empty() ? -1 : r.evaluations_to(r.rmse_after, 0.01);
      to_1pct[s] = k < 0 ? tw::kNaN : k;
      for (const auto& [e, v] : r.trace) trace_site.push_back(in.sites[s]), trace_eval.push_back(e), trace_rmse.push_back(v);
    }
    table->add_column("rmse_before", before, "m3 m-3", "SSM RMSE with the starting parameters");
    table->add_column("rmse_guess", at_guess, "m3 m-3", "SSM RMSE with the learned inverse's first guess (NaN: cold start)");
    table->add_column("rmse_after", after, "m3 m-3", "SSM RMSE with the calibrated parameters");
    table->add_column("n_obs", n_obs, "d", "days scored");
    table->add_column("evaluations", evals, "1", "model runs");
    table->add_column("evals_to_1pct", to_1pct, "1", "model runs until the best RMSE was within 1 % of rmse_after");
    auto trace = std::make_shared<Table>();
    trace->add_column("site", std::move(trace_site));
    trace->add_column("evaluation", std::move(trace_eval), "1", "model runs so far (0: the starting parameters)");
    trace->add_column("rmse", std::move(trace_rmse), "m3 m-3", "best SSM RMSE so far");
    ctx.set_output("params", table);
    ctx.set_output("trace", trace);
  });

  auto inv = plugin.node("tem_wbm.sample_inverse");
  inv.version("3")  // 2: own single-precision log/exp, Illinois z_wt; 3: tridiagonal solve by continuants (last-bit changes)
      .summary("Training samples for a learned inverse (model solution): random parameter sets simulated at each "
               "site, their SSM signature against the parameters")
      .doc("For Shen & Zhang's method 6 in its smallest form: the model's own simulations teach a regression the "
           "inverse map from what a site shows to its parameters. Per upland site, `draws` parameter sets "
           "(Latin hypercube over tem_wbm.calibrate's bounds, in its unit coordinates: log10 for k_sat and psi_sat) "
           "are simulated like tem_wbm.calibrate's candidates (from the first forcing day, or after a spin-up with "
           "the set's own parameters); the simulated SSM is kept on the days the site's `observation` has a value "
           "in the scored window, plus normal noise of sd `obs_noise` (the observation error), and summarised "
           "into the signature: SSM mean, sd, 5/50/95 % quantiles, persistence (correlation of successive values "
           "at most 3 days apart), dry-down (mean daily change between such values with < 1 mm rain between) and "
           "wetting (SSM gained per mm of rain between such values with >= 5 mm), mean Pr, Tair, SWD, Vp, LAI over "
           "the window, sand and clay. Only the observation's gaps are used, never its values: the inverse can be "
           "trained at the sites it is applied to without seeing their data. Rejected sets (invalid, aborted "
           "days) are left out; wetland sites are skipped (warning). Train learn.surrogate with features = the "
           "signature names and outputs = the u_ columns; give the model to tem_wbm.calibrate's `inverse`.")
      .input("forcing", ArtifactKind::Dataset, "(site, time), daily: as tem_wbm.simulate")
      .input("observation", ArtifactKind::Dataset, "(site, time): observed SSM; only its gaps (NaN) are used")
      .optional_input("statics", ArtifactKind::Dataset, "(site): as tem_wbm.simulate")
      .optional_input("params", ArtifactKind::Table, "starting parameters per site (the members not drawn)")
      .output("samples", ArtifactKind::Table,
              "one row per simulated set: site, draw, the signature (ssm_mean, ssm_sd, ssm_p05, ssm_p50, ssm_p95, "
              "ssm_persistence, ssm_drydown, ssm_wetting, pr_mean, tair_mean, swd_mean, vp_mean, lai_mean, sand, "
              "clay), u_theta_sat, u_k_sat, u_psi_sat, u_b, u_i_rmax, u_g_max, u_e_r")
      .output("observed", ArtifactKind::Table,
              "per site: site and the signature of its observed SSM (what tem_wbm.calibrate's `inverse` is given)")
      .param(param_int("draws", 100, "parameter sets per site").bounds(1, 1000000))
      .param(param_float("prior_spread", 0.0, "0: Latin hypercube over the whole calibration box; > 0: normal around "
                                              "the site's starting parameters (Cosby values from its texture where "
                                              "`params` gives none) with this sd in unit coordinates")
                 .bounds(0, 10))
      .param(param_float("obs_noise", 0.0, "sd of the noise added to the simulated SSM (the observation error)")
                 .bounds(0, 1).in_units("m3 m-3"));
  declare_window_params(inv, 365);
  declare_model_params(inv);
  inv.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    const tw::SiteInputs in = read_site_inputs(ctx, cfg);
    const std::size_t ns = in.sites.size(), nt = in.time.size();
    const std::vector<double> o = observation_on(ctx, in);
    const auto [first, n_days] = scored_window(ctx, in);
    const int draws = static_cast<int>(ctx.param<std::int64_t>("draws"));
    const double noise = ctx.param<double>("obs_noise"), prior_spread = ctx.param<double>("prior_spread");
    std::vector<std::vector<tw::InverseSample>> rows(ns);
    std::vector<std::string> wet;
    for (std::size_t s = 0; s < ns; ++s)
      if (in.statics[s].land != tw::Land::Upland) wet.push_back(in.sites[s]);
    run_sites(ctx, in, ctx.threads(), [&](std::size_t s) {
      if (in.statics[s].land != tw::Land::Upland) return;
      auto day = [&](std::size_t t) { return in.day(s, t); };
      rows[s] = tw::sample_inverse(in.statics[s], in.params[s], cfg.options, day, n_days, o.data() + s * nt, first, draws,
                                   prior_spread, noise, derive_seed(ctx.seed(), in.sites[s]), spin_up_cells_hook(in, s, cfg));
    });
    if (!wet.empty()) ctx.warn(std::to_string(wet.size()) + " wetland sites skipped: " + join(wet));
    const auto& names = tw::signature_names();
    const auto& spec = tw::calibrated_params(tw::Land::Upland);
    std::vector<std::string> site;
    std::vector<double> draw;
    std::vector<std::vector<double>> sig(names.size()), unit(spec.size());
    std::size_t rejected = 0, incomplete = 0;
    for (std::size_t s = 0; s < ns; ++s) {
      if (in.statics[s].land != tw::Land::Upland) continue;
      rejected += static_cast<std::size_t>(draws) - rows[s].size();
      for (std::size_t i = 0; i < rows[s].size(); ++i) {
        const auto& r = rows[s][i];
        site.push_back(in.sites[s]);
        draw.push_back(static_cast<double>(i));
        bool complete = true;
        for (std::size_t j = 0; j < names.size(); ++j) sig[j].push_back(r.signature[j]), complete = complete && std::isfinite(r.signature[j]);
        incomplete += !complete;
        for (std::size_t j = 0; j < spec.size(); ++j) unit[j].push_back(r.unit[j]);
      }
    }
    if (site.empty()) throw NodeError("no samples: no upland site, or every parameter set was rejected");
    if (rejected) ctx.warn(std::to_string(rejected) + " parameter sets were rejected by the model and left out");
    if (incomplete)
      ctx.warn(std::to_string(incomplete) + " samples have an incomplete signature (too few observed days or pairs); "
               "learn.surrogate drops them");
    auto table = std::make_shared<Table>();
    table->add_column("site", std::move(site));
    table->add_column("draw", std::move(draw), "1", "index of the kept set at its site");
    for (std::size_t j = 0; j < names.size(); ++j) table->add_column(names[j], std::move(sig[j]), "", "signature feature");
    for (std::size_t j = 0; j < spec.size(); ++j)
      table->add_column(tw::unit_column(spec[j].name), std::move(unit[j]), "1",
                        "position of " + spec[j].name + " in tem_wbm.calibrate's bounds" + (spec[j].bound.log ? " (log10)" : ""));
    ctx.info(std::to_string(table->rows()) + " samples from " + std::to_string(ns - wet.size()) + " sites");
    ctx.set_output("samples", table);
    auto observed = std::make_shared<Table>();
    observed->add_column("site", in.sites);
    std::vector<std::vector<double>> osig(names.size(), std::vector<double>(ns));
    for (std::size_t s = 0; s < ns; ++s) {
      auto day = [&](std::size_t t) { return in.day(s, t); };
      const auto f = tw::ssm_signature(o.data() + s * nt, first, n_days, day, in.statics[s]);
      for (std::size_t j = 0; j < names.size(); ++j) osig[j][s] = f[j];
    }
    for (std::size_t j = 0; j < names.size(); ++j) observed->add_column(names[j], std::move(osig[j]), "", "signature feature");
    ctx.set_output("observed", observed);
  });
  auto enkf = plugin.node("assim.enkf");
  enkf.version("3")  // 2: own single-precision log/exp, Illinois z_wt; 3: tridiagonal solve by continuants (last-bit changes)
      .summary("Ensemble Kalman filter: the water balance model driven day by day, surface soil moisture assimilated "
               "into the layer states; analysis and open loop")
      .doc("Data assimilation (Shen & Zhang's method 5, model adjustment) through tem_wbm's stepping interface. Per "
           "site, `members` copies of the model (spun up together when spin_up is set, then optionally given "
           "perturbed k_sat: log10 sd `ksat_sd`) run two ensembles with identical perturbed forcing — precipitation "
           "× lognormal (log sd `precip_sd`, mean 1), shortwave × (1 + `swd_sd`·z), Tair + `tair_sd`·z — the open "
           "loop, never updated, and the analysis: on each day with an observation (NaN = none) that "
           "`assimilate_every` selects (day index % k = 0, by day: with a revisit that is a multiple of k all observations "
           "fall on one side; the others are held out and reported), a stochastic "
           "EnKF update with perturbed observations of the six layer water contents, x_m += K (y + e_m - SSM_m), "
           "K = cov(theta, SSM) / (var(SSM) + R), R = obs_error^2, e_m ~ N(0, R); SSM is the model's top-100-mm "
           "mean (linear in theta, so with obs_error = 0 every member's SSM equals the observation, unless clamping "
           "binds). Updated "
           "layers are clamped to [theta_res, theta_sat] (the physical range) and the water the update adds is "
           "reported (`increment`): the model's own mass balance holds between updates, not across them. Upland "
           "sites only (a wetland site is an error naming it). Random draws come from the node seed and the site "
           "name, so results do not depend on the thread count.")
      .input("forcing", ArtifactKind::Dataset, "(site, time), daily: Pr, SWD, Tair, Vp, optional LAI (as tem_wbm.simulate)")
      .input("observation", ArtifactKind::Dataset, "(site, time): the observed SSM (gappy; NaN = none) of every forcing site")
      .optional_input("statics", ArtifactKind::Dataset, "(site): as tem_wbm.simulate")
      .optional_input("params", ArtifactKind::Table, "per-site calibrated parameters, as tem_wbm.simulate")
      .output("analysis", ArtifactKind::Dataset,
              "(site, time): SSM (analysis ensemble mean after the day's update), SSM_sd, SSM_openloop, SSM_openloop_sd, "
              "increment [mm], assimilated (1 assimilated, 0 held out, NaN no observation), heldout_obs (the "
              "observations not assimilated: score the analysis on them)")
      .output("layers", ArtifactKind::Dataset, "(site, time, layer): theta, the analysis ensemble mean")
      .param(param_string("variable", "SSM", "the observed variable in `observation`"))
      .param(param_int("members", 32, "ensemble size").bounds(2, 10000))
      .param(param_float("obs_error", 0.04, "observation error sd (0: exact observations)").bounds(0, 1).in_units("m3 m-3"))
      .param(param_float("precip_sd", 0.3, "sd of the log of the multiplicative precipitation error").bounds(0, 5))
      .param(param_float("swd_sd", 0.1, "relative sd of the shortwave error").bounds(0, 1))
      .param(param_float("tair_sd", 1.0, "sd of the air temperature error").bounds(0, 20).in_units("degC"))
      .param(param_float("ksat_sd", 0.0, "sd of log10 k_sat across members (0: one parameter set)").bounds(0, 3))
      .param(param_int("assimilate_every", 1, "assimilate the observations of every k-th day; the others are held out").bounds(1, 3650));
  declare_model_params(enkf);
  enkf.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    const tw::SiteInputs in = read_site_inputs(ctx, cfg);
    const std::size_t ns = in.sites.size(), nt = in.time.size();
    const std::vector<double> obs = observation_on(ctx, in);
    tw::EnkfConfig ec;
    ec.members = ctx.param<int>("members");
    ec.obs_error = ctx.param<double>("obs_error");
    ec.precip_sd = ctx.param<double>("precip_sd");
    ec.swd_sd = ctx.param<double>("swd_sd");
    ec.tair_sd = ctx.param<double>("tair_sd");
    ec.ksat_sd = ctx.param<double>("ksat_sd");
    ec.assimilate_every = ctx.param<int>("assimilate_every");
    ec.spin_up = cfg.spin_up;
    ec.spin_up_tol = cfg.spin_up_tol;
    ec.spin_up_max = cfg.spin_up_max;
    std::vector<tw::EnkfSite> res(ns);
    run_sites(ctx, in, cfg.threads, [&](std::size_t s) {
      tw::Cell base(in.statics[s], in.params[s], cfg.options);
      std::vector<tw::Forcing> days(nt);
      for (std::size_t t = 0; t < nt; ++t) days[t] = in.day(s, t);
      res[s] = tw::run_enkf(base, days.data(), nt, obs.data() + s * nt, ec, derive_seed(ctx.seed(), in.sites[s]));
    });
    auto join_rows = [&](std::vector<double> tw::EnkfSite::*member) {
      std::vector<double> v;
      v.reserve(ns * nt);
      for (auto& r : res) v.insert(v.end(), (r.*member).begin(), (r.*member).end());
      return v;
    };
    auto out = std::make_shared<Dataset>();
    out->add(series::site_coord(in.sites));
    out->add(series::time_coord(in.time));
    auto add = [&](const char* name, std::vector<double> v, const char* units, const char* what) {
      out->add(Variable(name, {"site", "time"}, {ns, nt}, std::move(v), {{"units", units}, {"long_name", what}}));
    };
    add("SSM", join_rows(&tw::EnkfSite::ssm), "m3 m-3", "surface soil moisture, analysis ensemble mean");
    add("SSM_sd", join_rows(&tw::EnkfSite::ssm_sd), "m3 m-3", "analysis ensemble spread");
    add("SSM_openloop", join_rows(&tw::EnkfSite::open_ssm), "m3 m-3", "surface soil moisture, open-loop ensemble mean");
    add("SSM_openloop_sd", join_rows(&tw::EnkfSite::open_sd), "m3 m-3", "open-loop ensemble spread");
    add("increment", join_rows(&tw::EnkfSite::increment), "mm", "mean water added to the column by the update");
    auto assimilated = join_rows(&tw::EnkfSite::assimilated);
    std::vector<double> held(ns * nt, std::numeric_limits<double>::quiet_NaN());
    std::size_t n_use = 0, n_held = 0, aborted = 0;
    for (std::size_t i = 0; i < held.size(); ++i) {
      if (assimilated[i] == 0) held[i] = obs[i], ++n_held;
      n_use += assimilated[i] == 1;
    }
    for (auto& r : res) aborted += r.aborted;
    add("assimilated", std::move(assimilated), "1", "1: observation assimilated, 0: held out, NaN: none");
    add("heldout_obs", std::move(held), "m3 m-3", "observations not assimilated (score the analysis on them)");
    ctx.set_output("analysis", out);
    auto layers = std::make_shared<Dataset>();
    layers->add(series::site_coord(in.sites));
    layers->add(series::time_coord(in.time));
    for (auto& v : tw::layer_coordinates(cfg.options)) layers->add(std::move(v));
    layers->add(Variable("theta", {"site", "time", "layer"}, {ns, nt, std::size_t{tw::kN}}, join_rows(&tw::EnkfSite::theta),
                         tw::theta_attributes()));
    ctx.set_output("layers", layers);
    ctx.info(std::to_string(n_use) + " observations assimilated, " + std::to_string(n_held) + " held out, " +
             std::to_string(ec.members) + " members, " + std::to_string(ns) + " sites");
    if (aborted) ctx.warn(std::to_string(aborted) + " member-days aborted by the model (state kept)");
  });
  auto sample = plugin.node("tem_wbm.sample_et");
  sample.version("3")  // 2: own single-precision log/exp, Illinois z_wt; 3: tridiagonal solve by continuants (last-bit changes)
      .summary("Samples the evapotranspiration slot: the model run over the forcing, each cell-day's slot inputs and "
               "the physics' outputs as training pairs for an emulator")
      .doc("Runs the model like tem_wbm.simulate (same inputs and parameters) with the built-in ET physics in the "
           "slot, and records for every cell-day its 12 slot features (Tair, VPD, SW_d, LAI, A_c, A_g, t_dry, t_day, "
           "beta_T, rel_theta1, snow, P; see tem_wbm.simulate) and the physics' 2 outputs (T_dem, ES_dem [mm d-1]): "
           "the forcing and state space the model visits. Days in [start, end] only; then `samples` rows drawn "
           "without replacement (seeded by the node seed; 0 = all), in their run order. Learn an emulator from them "
           "with learn.surrogate and put it in tem_wbm.simulate's `et_surrogate`.")
      .input("forcing", ArtifactKind::Dataset, "(site, time), daily: as tem_wbm.simulate")
      .optional_input("statics", ArtifactKind::Dataset, "(site): as tem_wbm.simulate")
      .optional_input("params", ArtifactKind::Table, "per-site calibrated parameters, as tem_wbm.simulate")
      .output("samples", ArtifactKind::Table, "one row per sampled cell-day: site, time, the 12 features, T_dem, ES_dem")
      .param(param_int("samples", 0, "rows kept, drawn at random (0 = every cell-day)").at_least(0))
      .param(param_date("start", "", "first sampled day (YYYY-MM-DD); empty = the first"))
      .param(param_date("end", "", "last sampled day (YYYY-MM-DD); empty = the last"));
  declare_model_params(sample);
  sample.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    const tw::SiteInputs in = read_site_inputs(ctx, cfg);
    const std::size_t ns = in.sites.size(), nt = in.time.size();
    const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
    const double first = start.empty() ? -1e300 : static_cast<double>(series::date_param("start", start));
    const double last = end.empty() ? 1e300 : static_cast<double>(series::date_param("end", end));
    // Each site records into its own rows, joined in site order: the table does not depend on the threads.
    struct Recorder : tw::EtSlot {
      tw::PhysicsEtSlot physics;
      std::vector<double>* rows = nullptr;
      std::vector<double>* days = nullptr;
      double day = 0;
      bool on = false;
      Recorder(const tw::Params& p, const tw::Options& o) : physics(p, o) {}
      mutable std::vector<double> pending;  // the day's row, kept once the day is known not to be aborted
      void evaluate(const double* x, double* out) const override {
        physics.evaluate(x, out);
        if (!on) return;
        pending.assign(x, x + tw::EtSlot::kFeatures);
        pending.insert(pending.end(), out, out + tw::EtSlot::kOutputs);
      }
      void commit() {
        if (pending.empty()) return;
        rows->insert(rows->end(), pending.begin(), pending.end());
        days->push_back(day);
        pending.clear();
      }
    };
    constexpr std::size_t kW = tw::EtSlot::kFeatures + tw::EtSlot::kOutputs;
    std::vector<std::vector<double>> rows(ns);
    std::vector<std::vector<double>> days_of(ns);
    run_sites(ctx, in, cfg.threads, [&](std::size_t s) {
      tw::Cell cell(in.statics[s], in.params[s], cfg.options);
      Recorder rec(in.params[s], cfg.options);
      rec.rows = &rows[s];
      rec.days = &days_of[s];
      tw::Slots slots;
      slots.et = &rec;
      if (cfg.spin_up && nt > 0) tw::spin_up_first_year(cell, in, s, cfg, slots);
      for (std::size_t t = 0; t < nt; ++t) {
        rec.on = in.time[t] >= first && in.time[t] <= last;
        rec.day = in.time[t];
        const tw::DayOut d = cell.advance(in.day(s, t), slots);
        if (d.flags & (tw::kFlagSubstepLimit | tw::kFlagNonFinite | tw::kFlagDeficit | tw::kFlagSlot)) rec.pending.clear();
        rec.commit();
      }
    });
    std::vector<std::pair<std::size_t, std::size_t>> index;  // (site, row within site)
    for (std::size_t s = 0; s < ns; ++s)
      for (std::size_t r = 0; r < rows[s].size() / kW; ++r) index.emplace_back(s, r);
    if (index.empty()) throw NodeError("no cell-day in the period " + (start.empty() ? std::string("start") : start) + " .. " +
                                       (end.empty() ? std::string("end") : end));
    const auto want = static_cast<std::size_t>(ctx.param<std::int64_t>("samples"));
    if (want > 0 && want < index.size()) {
      // Partial Fisher–Yates on the raw engine output (the same draw with every standard library), then run order.
      std::mt19937_64 rng(ctx.seed());
      for (std::size_t i = 0; i < want; ++i) std::swap(index[i], index[i + rng() % (index.size() - i)]);
      index.resize(want);
      std::sort(index.begin(), index.end());
    }
    std::vector<std::string> names = tw::EtSlot::feature_names();
    for (const auto& n : tw::EtSlot::output_names()) names.push_back(n);
    static const char* const kUnits[kW] = {"degC", "Pa", "W m-2", "m2 m-2", "W m-2", "W m-2", "s", "s", "1", "1", "1", "Pa",
                                           "mm d-1", "mm d-1"};
    auto table = std::make_shared<Table>();
    std::vector<std::string> site;
    std::vector<double> time;
    for (auto [s, r] : index) site.push_back(in.sites[s]), time.push_back(days_of[s][r]);
    table->add_column("site", std::move(site), "", "the cell");
    table->add_column("time", std::move(time), "days since 1970-01-01", "the day");
    for (std::size_t j = 0; j < kW; ++j) {
      std::vector<double> v;
      v.reserve(index.size());
      for (auto [s, r] : index) v.push_back(rows[s][r * kW + j]);
      table->add_column(names[j], std::move(v), kUnits[j], j < tw::EtSlot::kFeatures ? "ET slot feature" : "ET physics output");
    }
    ctx.info(std::to_string(index.size()) + " samples from " + std::to_string(ns) + " sites");
    ctx.set_output("samples", table);
  });
  auto enh = plugin.node("tem_wbm.enhance_et");
  enh.version("3")  // 2: own single-precision log/exp, Illinois z_wt; 3: tridiagonal solve by continuants (last-bit changes)
      .summary("Learns an ET enhancer against observed SSM through the model: the ET physics times log-linear factors "
               "of the slot's features, fitted by differential evolution on the training sites")
      .doc("The enhancer form of model replacement (Shen & Zhang method 4): the ET slot's physics (with this node's "
           "g_max, e_r and ET options) with its transpiration demand multiplied by exp(b_T + w_T . z_T) (z_T: the "
           "standardised Tair, VPD, SW_d, LAI, beta_T) and its soil-evaporation demand by exp(b_E + w_E . z_E) (Tair, "
           "A_g, theta_1/theta_fc). The 10 coefficients are learnt from observations *through the model*: each "
           "candidate runs the water balance over every site of `forcing` from the record's first day (spun up with "
           "the candidate in the slot when spin_up is set, as tem_wbm.simulate does) to train_end, and differential "
           "evolution (seeded by the node "
           "seed, coefficients in [-bound, bound], `max_evaluations` runs) minimises the mean over sites of the SSM "
           "RMSE from train_start + `warmup_days` (a site that fails rejects the candidate). The plain physics (all "
           "coefficients 0) is kept when nothing better is found; coefficients of features constant over the training "
           "days stay 0. Per-site g_max or e_r in `params` are an error (the wrapped physics has one of each). "
           "Feature standardisation: mean and sd over the training cell-days. Output Model type tem_wbm.et_enhancer "
           "(a Surrogate for tem_wbm.simulate's `et_surrogate`); score it on other sites or days.")
      .input("forcing", ArtifactKind::Dataset, "(site, time): the training sites, as tem_wbm.simulate")
      .input("observation", ArtifactKind::Dataset, "(site, time): observed SSM of those sites")
      .optional_input("statics", ArtifactKind::Dataset, "(site): as tem_wbm.simulate")
      .optional_input("params", ArtifactKind::Table, "per-site calibrated parameters, as tem_wbm.simulate")
      .output("model", ArtifactKind::Model, "tem_wbm.et_enhancer: the wrapped physics' settings, feature statistics, coefficients")
      .output("fit", ArtifactKind::Table, "objective before (plain physics) and after, model runs, coefficients")
      .param(param_string("variable", "SSM", "the observed variable"))
      .param(param_date("train_start", "", "first training day (YYYY-MM-DD); empty = the first"))
      .param(param_date("train_end", "", "last training day (YYYY-MM-DD); empty = the last"))
      .param(param_int("warmup_days", 90, "days after train_start not scored").bounds(0, 3650))
      .param(param_int("max_evaluations", 400, "model runs of the search (population: a quarter of it, 10 to 100)").bounds(40, 1000000))
      .param(param_float("bound", 1.0, "|coefficient| limit (a factor of e^bound per standard deviation)").bounds(0.01, 5));
  declare_model_params(enh);
  enh.run([](Context& ctx) {
    tw::SimulateConfig cfg = config_from(ctx);
    // The enhancer wraps the physics with one g_max and e_r (the node's): per-site values would make the
    // slot's physics differ from each site's own.
    if (ctx.has_input("params"))
      for (const char* c : {"g_max", "e_r"})
        if (ctx.table("params").has(c))
          throw NodeError(std::string("input 'params' has a per-site '") + c + "': the enhancer wraps the ET physics with the "
                          "node's g_max and e_r; set them as node parameters instead");
    const tw::SiteInputs in = read_site_inputs(ctx, cfg);
    const std::size_t ns = in.sites.size(), nt = in.time.size();
    const std::vector<double> obs = observation_on(ctx, in);
    const auto start = ctx.param<std::string>("train_start"), end = ctx.param<std::string>("train_end");
    std::size_t t0 = 0, t1 = nt;
    if (!start.empty()) while (t0 < nt && in.time[t0] < static_cast<double>(series::date_param("train_start", start))) ++t0;
    if (!end.empty()) while (t1 > t0 && in.time[t1 - 1] > static_cast<double>(series::date_param("train_end", end))) --t1;
    const auto warm = static_cast<std::size_t>(ctx.param<int>("warmup_days"));
    if (t0 + warm >= t1) throw NodeError("the training period holds no day after the " + std::to_string(warm) + " warm-up days");
    // Spun-up start states (plain physics, once) and the feature statistics of the training cell-days.
    tw::EtEnhancer base;
    base.params.g_max = cfg.params.g_max, base.params.e_r = cfg.params.e_r;
    base.options = cfg.options;
    std::vector<tw::State> start_state(ns);
    std::vector<std::array<double, 2 * tw::EtSlot::kFeatures + 1>> moments(ns);
    struct Stats : tw::EtSlot {
      tw::PhysicsEtSlot physics;
      std::array<double, 2 * tw::EtSlot::kFeatures + 1>* m = nullptr;
      bool on = false;
      Stats(const tw::Params& p, const tw::Options& o) : physics(p, o) {}
      void evaluate(const double* x, double* out) const override {
        physics.evaluate(x, out);
        if (!on) return;
        for (std::size_t j = 0; j < kFeatures; ++j) (*m)[j] += x[j], (*m)[kFeatures + j] += x[j] * x[j];
        (*m)[2 * kFeatures] += 1;
      }
    };
    run_sites(ctx, in, cfg.threads, [&](std::size_t s) {
      tw::Cell cell(in.statics[s], in.params[s], cfg.options);
      if (cfg.spin_up && nt > 0) tw::spin_up_first_year(cell, in, s, cfg);
      start_state[s] = cell.state();
      Stats st(base.params, cfg.options);
      st.m = &moments[s];
      tw::Slots slots;
      slots.et = &st;
      for (std::size_t t = 0; t < t1; ++t) {
        st.on = t >= t0;
        cell.advance(in.day(s, t), slots);
      }
    });
    std::array<bool, tw::EtSlot::kFeatures> is_constant{};
    {
      std::array<double, 2 * tw::EtSlot::kFeatures + 1> tot{};
      for (auto& m : moments)
        for (std::size_t j = 0; j < tot.size(); ++j) tot[j] += m[j];
      const double n = tot[2 * tw::EtSlot::kFeatures];
      for (std::size_t j = 0; j < tw::EtSlot::kFeatures; ++j) {
        base.mean[j] = tot[j] / n;
        const double var = tot[tw::EtSlot::kFeatures + j] / n - base.mean[j] * base.mean[j];
        is_constant[j] = !(var > 1e-20);
        base.sd[j] = is_constant[j] ? 1.0 : std::sqrt(var);
      }
    }
    // A feature constant over the training cell-days (e.g. LAI from one `lai` value) carries no information:
    // its coefficient stays 0 instead of an arbitrary value the flat objective would leave it at.
    std::vector<char> active(tw::kEnhanceCoefficients, 1);
    std::string constant;
    for (std::size_t k = 0; k < tw::kEnhanceT.size(); ++k)
      if (is_constant[static_cast<std::size_t>(tw::kEnhanceT[k])])
        active[1 + k] = 0, constant += std::string(constant.empty() ? "" : ", ") + "transpiration x feature " + std::to_string(tw::kEnhanceT[k]);
    for (std::size_t k = 0; k < tw::kEnhanceE.size(); ++k)
      if (is_constant[static_cast<std::size_t>(tw::kEnhanceE[k])])
        active[2 + tw::kEnhanceT.size() + k] = 0,
            constant += std::string(constant.empty() ? "" : ", ") + "soil evaporation x feature " + std::to_string(tw::kEnhanceE[k]);
    if (!constant.empty()) ctx.warn("features constant over the training days, their coefficients kept at 0: " + constant);
    auto masked = [&](std::vector<double> w) {
      for (std::size_t j = 0; j < w.size(); ++j)
        if (!active[j]) w[j] = 0;
      return w;
    };
    // The objective: mean over sites of the SSM RMSE of a model run with these coefficients.
    auto objective = [&](const std::vector<double>& w) {
      tw::EnhancedEtSlot slot(base);
      slot.enhancer.w = masked(w);
      tw::Slots slots;
      slots.et = &slot;
      std::vector<double> rmse(ns, std::numeric_limits<double>::quiet_NaN());
      tw::for_each_site(ns, cfg.threads, [&](std::size_t s) {
        tw::Cell cell(in.statics[s], in.params[s], cfg.options);
        // Spun up with the candidate in the slot, as tem_wbm.simulate does with the enhancer.
        if (cfg.spin_up && nt > 0) tw::spin_up_first_year(cell, in, s, cfg, slots);
        else cell.set_state(start_state[s]);
        double se = 0, n = 0;
        for (std::size_t t = 0; t < t1; ++t) {
          const tw::DayOut d = cell.advance(in.day(s, t), slots);
          const double o = obs[s * nt + t];
          if (t >= t0 + warm && std::isfinite(o) && std::isfinite(d.SSM)) se += (d.SSM - o) * (d.SSM - o), n += 1;
        }
        if (n > 0) rmse[s] = std::sqrt(se / n);
      });
      double sum = 0;
      for (double r : rmse) {
        if (!std::isfinite(r)) return std::numeric_limits<double>::infinity();  // a failing site rejects the candidate
        sum += r;
      }
      return sum / static_cast<double>(ns);
    };
    const std::vector<double> zero(tw::kEnhanceCoefficients, 0.0);
    const double before = objective(zero);
    if (!std::isfinite(before)) throw NodeError("input 'observation' has no value in the training period after the warm-up");
    const double bound = ctx.param<double>("bound");
    std::vector<tw::optimize::Bound> bounds(tw::kEnhanceCoefficients, tw::optimize::Bound{-bound, bound, false});
    tw::optimize::DEOptions de;
    de.max_evaluations = ctx.param<int>("max_evaluations");
    de.population = std::clamp(de.max_evaluations / 4, 10, 100);  // so that max_evaluations bounds the runs
    de.seed = ctx.seed();
    int evals = 0;
    auto r = tw::optimize::differential_evolution(
        [&](const std::vector<double>& w) {
          ctx.check_cancelled();
          ctx.progress(++evals, de.max_evaluations, "model runs");
          return objective(w);
        },
        bounds, de);
    tw::EtEnhancer best = base;
    const bool improved = r.f < before;
    best.w = improved ? masked(r.x) : zero;
    ctx.info("mean SSM RMSE over " + std::to_string(ns) + " training sites: " + std::to_string(before) + " (physics) -> " +
             std::to_string(improved ? r.f : before) + " in " + std::to_string(r.evaluations) + " model runs");
    auto fit = std::make_shared<Table>();
    fit->add_column("objective_before", std::vector<double>{before}, "m3 m-3", "mean SSM RMSE over the sites, plain physics");
    fit->add_column("objective_after", std::vector<double>{improved ? r.f : before}, "m3 m-3", "the same with the enhancer");
    fit->add_column("evaluations", std::vector<double>{static_cast<double>(r.evaluations + 1)}, "1", "model runs");
    static const char* const kCoef[] = {"bias_T", "T_Tair", "T_VPD", "T_SW_d", "T_LAI", "T_beta_T",
                                        "bias_ES", "ES_Tair", "ES_A_g", "ES_rel_theta1"};
    for (std::size_t j = 0; j < tw::kEnhanceCoefficients; ++j)
      fit->add_column(kCoef[j], std::vector<double>{best.w[j]}, "1", "log-factor coefficient");
    ctx.set_output("model", std::make_shared<Model>(tw::to_model(best)));
    ctx.set_output("fit", fit);
  });

  plugin.model_type({tw::kEnhancerType, {}, [](const Model& m) -> std::shared_ptr<Surrogate> {
                       struct S final : Surrogate {
                         tw::EtEnhancer e;
                         std::size_t n_features() const override { return tw::EtSlot::kFeatures; }
                         std::size_t n_outputs() const override { return tw::EtSlot::kOutputs; }
                         std::vector<std::string> feature_names() const override { return tw::EtSlot::feature_names(); }
                         std::vector<std::string> output_names() const override { return tw::EtSlot::output_names(); }
                         std::vector<double> evaluate(const std::vector<double>& x, std::size_t n) const override {
                           std::vector<double> out(n * 2);
                           for (std::size_t i = 0; i < n; ++i) e.evaluate(&x[i * tw::EtSlot::kFeatures], &out[i * 2]);
                           return out;
                         }
                       };
                       auto s = std::make_shared<S>();
                       s->e = tw::enhancer_from_model(m);
                       return s;
                     }, {}});
}
