// TEM-style WBM: the daily driver (spec §15), wetland day (§14.3), mass checks (§16), spin-up (§18).
#include "tem_wbm/model.hpp"

#include <cstring>
#include <stdexcept>

namespace couplet::tem_wbm {

const std::vector<std::string>& EtSlot::feature_names() {
  static const std::vector<std::string> n{"Tair", "VPD", "SW_d", "LAI", "A_c", "A_g", "t_dry", "t_day", "beta_T",
                                          "rel_theta1", "snow", "P"};
  return n;
}
const std::vector<std::string>& EtSlot::output_names() {
  static const std::vector<std::string> n{"T_dem", "ES_dem"};
  return n;
}

namespace {

double column_water(const Layers& th, const Soil& s) {
  double w = 0;
  for (int i = 0; i < kN; ++i) w += th[i] * s.dz[i];
  return w;
}

/// §16: round-off can leave values like −1e-14; clip negatives larger than −1e-12 to 0.
double clip_roundoff(double x) { return x < 0 && x > -1e-12 ? 0.0 : x; }

/// Drainage slot as the bottom boundary of §13.3 (upland); dq/dθ_N by a forward difference.
struct SlotBottom final : BottomFlux {
  const DrainageSlot* slot;
  explicit SlotBottom(const DrainageSlot* s) : slot(s) {}
  double at(double th, const Soil& s, const Options& o) const {
    constexpr int N = kN - 1;
    double psi, dpsi;
    psi_of_theta(th, s.theta_sat[N], s.psi_sat[N], s.b[N], o.s_min, o.psi_min, psi, dpsi);
    const double f[DrainageSlot::kFeatures] = {0.0, th, s.theta_sat[N], s.k_sat[N], s.b[N], psi};
    return slot->evaluate(f);
  }
  void flux(double th, const Soil& s, const Options& o, double& q, double& dq) const override {
    constexpr double h = 1e-6;
    q = at(th, s, o);
    dq = (at(th + h, s, o) - q) / h;
  }
};

}  // namespace

Cell::Cell(const Statics& st, const Params& p, const Options& o) : statics_(st), params_(p), opt_(o) {
  soil_ = derive_soil(statics_, params_, opt_);
  const std::string bad = check_soil(soil_);
  if (!bad.empty()) throw std::invalid_argument("invalid soil parameters: " + bad);
  pressure_ = air_pressure(statics_.elev);
  tan_lat_ = tan_latitude(statics_.lat);
  reset();
}

void Cell::reset() {
  state_ = State{};
  state_.theta = soil_.theta_fc;
  state_.z_wt = 100.0;
  state_.W = wetland_water(100.0, soil_.w_theta_sat, soil_.Z, opt_);
  if (statics_.land == Land::Upland) state_.z_wt = kNaN;
  state_.SWE = 0;
}

void Cell::set_state(const State& s) {
  state_ = s;
  if (statics_.land == Land::Wetland) {
    state_.W = clamp(s.W, soil_.w_min, soil_.w_max);
    state_.z_wt = wetland_zwt(state_.W, soil_, opt_);
  } else {
    for (int i = 0; i < kN; ++i) state_.theta[i] = clamp(s.theta[i], soil_.theta_res[i], soil_.theta_sat[i]);
  }
  state_.SWE = std::max(0.0, s.SWE);
}

double Cell::water() const {
  return statics_.land == Land::Upland ? column_water(state_.theta, soil_) : state_.W;
}

// Embedded ET slot: features per model.hpp; returns T_dem, sets the ES demand.
double Cell::et_slot(const Slots& slots, DayOut& d, const Forcing& f, double theta1, double& es_demand) const {
  const double feat[EtSlot::kFeatures] = {f.T,      d.met.D,  d.met.SW_d, f.LAI,
                                          d.A_c,    d.A_g,    d.t_dry,    d.met.t_day,
                                          d.beta_T, theta1 / soil_.theta_fc[0], d.snow_covered ? 1.0 : 0.0,
                                          d.met.P};
  double out[EtSlot::kOutputs] = {0, 0};
  slots.et->evaluate(feat, out);
  if (!std::isfinite(out[0]) || !std::isfinite(out[1])) d.flags |= kFlagSlot;
  es_demand = std::isfinite(out[1]) ? std::max(0.0, out[1]) : 0.0;
  return std::isfinite(out[0]) ? std::max(0.0, out[0]) : 0.0;
}

DayOut Cell::advance(const Forcing& f, const Slots& slots) {
  DayOut d;
  DayStart p;
  begin_day(d, p, f, slots);
  if (statics_.land == Land::Upland) {
    SlotBottom slot_bottom(slots.drainage);
    const RichardsDay r = richards_day(state_.theta, d.W_in, soil_, opt_, slots.drainage ? &slot_bottom : nullptr);
    end_upland_day(d, p, r);
  } else {
    wetland_day(d, f, slots);
  }
  end_day(d, p, f);
  return d;
}

CellBatch::CellBatch(Cell* const* cells, int n) : n_(n) {
  if (n < 0 || n > kLanes)
    throw std::invalid_argument("CellBatch takes 0 to " + std::to_string(kLanes) + " cells, not " + std::to_string(n));
  for (int c = 0; c < n_; ++c) cells_[c] = cells[c];
}

void CellBatch::advance(const Forcing* f, DayOut* out, const Slots& slots) {
  // one day of each cell: run_cells' lanes (uplands), wetlands and the drainage-slot fallback as there
  run_cells(
      cells_, static_cast<std::size_t>(n_), 1, {}, [&](std::size_t c, std::size_t) { return f[c]; },
      [&](std::size_t c, std::size_t, const DayOut& d) { out[c] = d; }, slots);
}

// The lanes' feed for run_cells: each lane runs one upland cell's days in order, then takes the next cell;
// wetland cells, and every cell when a drainage surrogate is slotted (it is called inside the Richards
// sub-steps), are run whole with Cell::advance when their turn comes.
class CellFeed final : public LaneFeed {
 public:
  CellFeed(Cell* const* cells, std::size_t n, std::atomic<std::size_t>& next_cell, std::size_t n_days,
           const std::function<void(std::size_t)>& before_first, const std::function<Forcing(std::size_t, std::size_t)>& day,
           const std::function<void(std::size_t, std::size_t, const DayOut&)>& done, const Slots& slots)
      : cells_(cells), n_(n), n_days_(n_days), next_cell_(next_cell), before_first_(before_first), day_(day),
        done_(done), slots_(slots) {}

  bool next(int l, const RichardsDay* finished, LaneDay& next_day) override {
    Lane& ln = lanes_[l];
    if (finished) {  // book the day that ended
      Cell& cell = *cells_[ln.cell];
      cell.end_upland_day(ln.out, ln.start, *finished);
      cell.end_day(ln.out, ln.start, ln.f);
      done_(ln.cell, ln.t, ln.out);
      ++ln.t;
    }
    bool current = finished != nullptr;  // the lane holds a cell
    for (;;) {
      if (current && ln.t < n_days_) {  // the cell's next day
        Cell& cell = *cells_[ln.cell];
        ln.f = day_(ln.cell, ln.t);
        ln.out = DayOut{};
        cell.begin_day(ln.out, ln.start, ln.f, slots_);
        next_day = {cell.state_.theta.data(), ln.out.W_in, &cell.soil_};
        return true;
      }
      const std::size_t c = next_cell_.fetch_add(1, std::memory_order_relaxed);
      if (c >= n_) return false;
      if (before_first_) before_first_(c);
      Cell& cell = *cells_[c];
      if (cell.statics_.land != Land::Upland || slots_.drainage) {
        for (std::size_t t = 0; t < n_days_; ++t) done_(c, t, cell.advance(day_(c, t), slots_));
        continue;
      }
      ln.cell = c;
      ln.t = 0;
      current = true;
    }
  }

 private:
  struct Lane {
    std::size_t cell = 0, t = 0;
    Forcing f;
    DayOut out;
    Cell::DayStart start;
  };
  Cell* const* cells_;
  std::size_t n_, n_days_;
  std::atomic<std::size_t>& next_cell_;  // the next unclaimed cell, maybe shared with other threads' feeds
  const std::function<void(std::size_t)>& before_first_;
  const std::function<Forcing(std::size_t, std::size_t)>& day_;
  const std::function<void(std::size_t, std::size_t, const DayOut&)>& done_;
  const Slots& slots_;
  Lane lanes_[kMaxLanes];
};

void run_cells_shared(Cell* const* cells, std::size_t n, std::atomic<std::size_t>& next, std::size_t n_days,
                      const std::function<void(std::size_t)>& before_first,
                      const std::function<Forcing(std::size_t, std::size_t)>& day,
                      const std::function<void(std::size_t, std::size_t, const DayOut&)>& done, const Slots& slots) {
  if (n == 0) return;
  CellFeed feed(cells, n, next, n_days, before_first, day, done, slots);
  richards_lanes_stream(feed, cells[0]->options());
}

void run_cells(Cell* const* cells, std::size_t n, std::size_t n_days, const std::function<void(std::size_t)>& before_first,
               const std::function<Forcing(std::size_t, std::size_t)>& day,
               const std::function<void(std::size_t, std::size_t, const DayOut&)>& done, const Slots& slots) {
  std::atomic<std::size_t> next{0};
  run_cells_shared(cells, n, next, n_days, before_first, day, done, slots);
}

void Cell::begin_day(DayOut& d, DayStart& p, const Forcing& f, const Slots& slots) {
  p.state = state_;
  p.W = water();
  p.SWE = state_.SWE;

  // §15 steps 1–4: met, snow, energy, canopy
  d.met = derived_met_at(pressure_, f.T, f.Vp, f.SWD, tan_lat_, f.doy);
  const Snow sn = snow_step(f.Pr, f.T, f.SWD, state_.SWE, opt_);
  d.rain = sn.rain;
  d.snowfall = sn.snowfall;
  d.melt = sn.melt;
  d.snow_covered = sn.covered;
  const double LAI = std::max(0.0, f.LAI);
  const Canopy c = canopy_step(d.met, sn.rain, LAI, sn.covered, params_, opt_);
  d.f_c = c.f_c;
  d.A_c = c.A_c;
  d.A_g = c.A_g;
  d.I = c.I;
  d.EI = c.EI;
  d.drip = c.drip;
  d.E_wet = c.E_wet;
  d.t_dry = c.t_dry;
  d.W_in = (sn.rain - c.I) + c.drip + sn.melt;  // step 9

  if (statics_.land == Land::Upland) {
    Layers& th = state_.theta;
    // §15 steps 5–8 from the start-of-day θ
    evapotranspiration(d, f, th, LAI, slots);
    // §13.1 Stage 1: sinks
    for (int i = 0; i < kN; ++i) th[i] -= d.e[i] / soil_.dz[i];
    th[0] -= d.ES / soil_.dz[0];
    p.W_after_sinks = column_water(th, soil_);
  }
}

void Cell::end_upland_day(DayOut& d, const DayStart& p, const RichardsDay& r) {
  // §13.2 Stage 2 done (r): book it
  const Layers& th = state_.theta;
  d.flags |= r.flags;
  d.n_substeps = r.n_substeps;
  d.n_rejected = r.n_rejected;
  d.n_projections = r.n_projections;
  const double W_end = column_water(th, soil_);
  const double RO_inf = d.W_in - r.IF_acc;
  d.IF = clip_roundoff(r.IF_acc - r.RO_sat);
  d.RO = clip_roundoff(RO_inf + r.RO_sat);
  d.DR = clip_roundoff((p.W_after_sinks + r.IF_acc - r.RO_sat) - W_end);  // storage-based, authoritative
  d.res_DR = d.DR - r.DR_flux;
  d.SSM = upland_ssm(th, soil_);
  d.theta = th;
}

void Cell::end_day(DayOut& d, const DayStart& p, const Forcing& f) {
  // §16 mass checks
  d.SWE = state_.SWE;
  d.W_soil = water();
  d.ET_total = d.EI + d.EV + d.ES;
  d.res_soil = (d.W_soil - p.W) - (d.IF - d.EV - d.ES - d.DR);
  d.res_cell = (d.W_soil + d.SWE) - (p.W + p.SWE) - (f.Pr - d.EI - d.EV - d.ES - d.RO - d.DR);
  const double outs[] = {d.IF, d.EV, d.ES, d.DR, d.RO, d.EI, d.SSM, d.SWE, d.W_soil, d.res_cell, d.res_soil};
  for (double v : outs)
    if (!std::isfinite(v)) d.flags |= kFlagNonFinite;
  if (std::fabs(d.res_soil) > opt_.mb_tolerance || std::fabs(d.res_cell) > opt_.mb_tolerance ||
      std::fabs(d.res_DR) > opt_.mb_tolerance)
    d.flags |= kFlagMassBalance;
  if (d.flags & (kFlagSubstepLimit | kFlagNonFinite | kFlagDeficit | kFlagSlot)) {
    state_ = p.state;  // abort the cell-day (§17): keep the start-of-day state
  }
  if ((d.flags & kFlagMassBalance) && opt_.mb_throw)
    throw std::runtime_error("mass balance violated: res_soil " + std::to_string(d.res_soil) + " mm, res_cell " +
                             std::to_string(d.res_cell) + " mm, res_DR " + std::to_string(d.res_DR) + " mm");
}

// §15 steps 6–8, shared by both land types: stresses, conductance, transpiration with its layer
// allocation and soil evaporation, from the start-of-day layer water contents `th`.
void Cell::evapotranspiration(DayOut& d, const Forcing& f, const Layers& th, double LAI, const Slots& slots) const {
  const Stress st = stress_factors(d.met, f.T, th, soil_, opt_);
  d.f_D = st.f_D;
  d.f_T = st.f_T;
  d.beta_T = st.beta_T;
  d.w = st.w;
  d.G_s = canopy_conductance(d.met, st, LAI, params_, opt_);
  d.ES_pot = soil_evap_potential(d.met, d.A_g, opt_);
  d.beta_s = soil_evap_factor(th[0], soil_.theta_fc[0]);
  double es_demand = d.ES_pot * d.beta_s, t_dem_override = -1;
  if (slots.et) t_dem_override = et_slot(slots, d, f, th[0], es_demand);
  const Canopy c{d.f_c, d.A_c, d.A_g, d.I, LAI >= 1e-6 ? opt_.g_bl * LAI : 0.0, d.E_wet, d.EI, d.drip, d.t_dry};
  const Transpiration tr = transpiration(d.met, c, st, d.G_s, LAI, th, soil_, params_, opt_, t_dem_override);
  d.G_t = tr.G_t;
  d.T_dem = tr.T_dem;
  d.e = tr.e;
  d.EV = tr.EV;
  d.ES = soil_evap(es_demand, d.snow_covered, th[0], d.e[0], soil_);
}

void Cell::wetland_day(DayOut& d, const Forcing& f, const Slots& slots) {
  const Soil& s = soil_;
  const double LAI = std::max(0.0, f.LAI);
  double& W = state_.W;
  // §14.3.1 layer means from z_wt^n
  const Layers th = wetland_layers_at(state_.z_wt);
  evapotranspiration(d, f, th, LAI, slots);

  // §14.3.2 column cap on the evaporative sinks (allocation by layer is diagnostic only)
  const double avail = W - s.w_min;
  if (d.EV + d.ES > avail) {
    const double k = std::max(0.0, avail) / (d.EV + d.ES);
    d.EV *= k;
    d.ES *= k;
    for (double& e : d.e) e *= k;
  }
  // §14.3.3 drainage [R]
  double cap_dr;
  if (slots.drainage) {
    const double feat[DrainageSlot::kFeatures] = {1.0, state_.z_wt, W - s.w_min, s.Z, s.w_theta_sat, params_.q_drmax};
    cap_dr = slots.drainage->evaluate(feat);
    if (!std::isfinite(cap_dr)) {
      d.flags |= kFlagSlot;
      cap_dr = 0;
    }
    cap_dr = std::max(0.0, cap_dr);
  } else {
    const double g_D = state_.z_wt <= 0 ? 1.0 : std::max(0.0, (s.Z - state_.z_wt) / s.Z);
    cap_dr = params_.q_drmax * g_D;
  }
  d.DR = std::min(cap_dr, std::max(0.0, W - s.w_min - d.EV - d.ES));
  // §14.3.4 infiltration and runoff
  d.IF = std::max(0.0, std::min(d.W_in, std::min(s.k_sat[0] * kDaySeconds, s.w_max - (W - d.EV - d.ES - d.DR))));
  d.RO = clip_roundoff(d.W_in - d.IF);
  // §14.3.5 update and diagnose
  W = W + d.IF - d.EV - d.ES - d.DR;
  state_.z_wt = wetland_zwt(W, s, opt_);
  d.z_wt = state_.z_wt;
  d.SSM = wetland_ssm(state_.z_wt, s, opt_);
  d.theta = wetland_layers_at(state_.z_wt);
}

const Layers& Cell::wetland_layers_at(double z_wt) {
  if (std::memcmp(&z_wt, &wl_zwt_, sizeof z_wt) != 0) {
    wl_theta_ = wetland_layers(z_wt, soil_, opt_);
    wl_zwt_ = z_wt;
  }
  return wl_theta_;
}

std::vector<SpinUpResult> spin_up_cells(Cell* const* cells, std::size_t n, std::size_t n_days,
                                        const std::function<Forcing(std::size_t, std::size_t)>& day,
                                        const Slots& slots, double tol, int max_cycles) {
  std::vector<SpinUpResult> r(n);
  if (n_days == 0) return r;
  std::vector<double> W_prev(n), SWE_prev(n);
  std::vector<std::size_t> active(n);
  for (std::size_t c = 0; c < n; ++c) {
    W_prev[c] = cells[c]->water();
    SWE_prev[c] = cells[c]->state().SWE;
    active[c] = c;
  }
  // Each cycle runs the cells not yet converged through the year together (run_cells: bit-identical to
  // advancing each alone; a single cell goes alone, a lone lane would cost more), then checks each one's
  // year-end change.
  std::vector<Cell*> ptr;
  std::vector<std::size_t> still;
  const std::function<void(std::size_t)> none;
  const std::function<void(std::size_t, std::size_t, const DayOut&)> ignore = [](std::size_t, std::size_t, const DayOut&) {};
  for (int cycle = 1; cycle <= max_cycles && !active.empty(); ++cycle) {
    if (active.size() == 1) {
      for (std::size_t t = 0; t < n_days; ++t) cells[active[0]]->advance(day(active[0], t), slots);
    } else {
      ptr.clear();
      for (std::size_t c : active) ptr.push_back(cells[c]);
      run_cells(ptr.data(), ptr.size(), n_days, none,
                [&](std::size_t k, std::size_t t) { return day(active[k], t); }, ignore, slots);
    }
    still.clear();
    for (std::size_t c : active) {
      const Cell& cell = *cells[c];
      r[c].cycles = cycle;
      r[c].dW = cell.water() - W_prev[c];
      r[c].dSWE = cell.state().SWE - SWE_prev[c];
      if (std::fabs(r[c].dW) < tol && std::fabs(r[c].dSWE) < tol) {
        r[c].converged = true;
        continue;
      }
      W_prev[c] = cell.water();
      SWE_prev[c] = cell.state().SWE;
      still.push_back(c);
    }
    active.swap(still);
  }
  return r;
}

SpinUpResult spin_up(Cell& cell, const Forcing* days, std::size_t n_days, const Slots& slots, double tol,
                     int max_cycles) {
  Cell* one = &cell;
  return spin_up_cells(&one, 1, n_days, [days](std::size_t, std::size_t t) { return days[t]; }, slots, tol,
                       max_cycles)
      .front();
}

}  // namespace couplet::tem_wbm
