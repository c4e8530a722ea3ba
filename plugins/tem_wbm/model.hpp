// TEM-style WBM: one cell stepped day by day (spec §15), mass checks (§16), spin-up (§18), and the
// embedded process slots through which a learned component can replace a physics sub-process.
//
// Stepping interface (for an outer node, e.g. data assimilation): construct a Cell (initialise),
// advance() one day at a time, and read or overwrite its State between days with state()/set_state().
#pragma once

#include "tem_wbm/kernels.hpp"
#include "tem_wbm/richards_lanes.hpp"
#include "tem_wbm/types.hpp"

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

/// Embedded evapotranspiration slot (§11–§12 demands). Feature vector = the slot's inputs, in order:
///   0 Tair [°C]   1 VPD D [Pa]   2 SW_d daytime-mean shortwave [W m-2]   3 LAI [m2 m-2]
///   4 A_c canopy available energy [W m-2]   5 A_g ground available energy [W m-2]
///   6 t_dry canopy-dry time [s]   7 t_day daylight time [s]   8 β_T soil water stress [–]
///   9 θ_1/θ_fc,1 relative top-layer wetness [–]   10 snow_covered (0/1)   11 air pressure P [Pa]
/// Outputs: 0 transpiration demand T_dem [mm d-1], 1 soil evaporation demand [mm d-1] (before the supply
/// cap). Physics then applies what keeps the budget closed: the allocation to layers with wilting caps
/// (§11.4; none when β_T = 0), the top-layer supply cap (§12), the wetland column cap (§14.3), and the
/// §7 rule ES = 0 under snow; negative demands become 0, a non-finite one aborts the cell-day.
struct EtSlot {
  static constexpr std::size_t kFeatures = 12, kOutputs = 2;
  /// The names tem_wbm.sample_et gives them (and a learned surrogate of the slot carries).
  static const std::vector<std::string>& feature_names();
  static const std::vector<std::string>& output_names();
  virtual ~EtSlot() = default;
  virtual void evaluate(const double* features, double* out) const = 0;
};

/// Embedded drainage slot. Feature vector (6 values; the first says which form):
///   upland  (land 0): 0 land=0  1 θ_N [m3 m-3]  2 θ_sat,N  3 k_sat,N [mm s-1]  4 b_N  5 ψ(θ_N) [mm]
///                     → output: bottom flux q_{N+½} [mm s-1] (physics: f_drain·K(θ_N), §13.3), called in
///                       every Richards sub-step; its derivative is taken by a forward difference.
///   wetland (land 1): 0 land=1  1 z_wt [mm]  2 W − W_min [mm]  3 Z [mm]  4 θ_sat  5 Q_DRMAX [mm d-1]
///                     → output: drainage capacity [mm d-1] (physics: Q_DRMAX·g_D, §14.3), then capped
///                       by the water available above W_min.
struct DrainageSlot {
  static constexpr std::size_t kFeatures = 6;
  virtual ~DrainageSlot() = default;
  virtual double evaluate(const double* features) const = 0;
};

/// The built-in physics in the ET slot (kernels' et_slot_physics with fixed parameters and options): gives
/// bit-identical results to the empty slot; samples the physics for emulator training.
struct PhysicsEtSlot : EtSlot {
  PhysicsEtSlot(const Params& p, const Options& o) : params(p), options(o) {}
  void evaluate(const double* features, double* out) const override { et_slot_physics(features, params, options, out); }
  Params params;
  Options options;
};

struct Slots {
  const EtSlot* et = nullptr;              ///< null: physics (§11–§12)
  const DrainageSlot* drainage = nullptr;  ///< null: physics (§13.3 / §14.3)
};

class Cell {
 public:
  /// Initialise (§18): derives soil quantities (§4–§5), checks them (§17; throws std::invalid_argument
  /// naming the violation) and sets the initial state.
  Cell(const Statics& st, const Params& p, const Options& o = {});

  /// Initial state of §18: upland θ_i = θ_fc,i; wetland z_wt = 100 mm → W = W(100); SWE = 0.
  void reset();
  /// One day (§15). If the returned flags include an abort flag (sub-step limit, non-finite value,
  /// unresolvable deficit, slot failure) the cell-day is aborted and the state left at the start of day.
  DayOut advance(const Forcing& f, const Slots& slots = {});

  const State& state() const { return state_; }
  /// Overwrites the state (e.g. an analysis update). Wetland: W is authoritative; z_wt is re-diagnosed.
  /// Upland θ is clamped to [θ_res, θ_sat] per layer.
  void set_state(const State& s);

  const Soil& soil() const { return soil_; }
  const Statics& statics() const { return statics_; }
  const Params& params() const { return params_; }
  const Options& options() const { return opt_; }
  Land land() const { return statics_.land; }
  /// W_soil of §16: Σθ_iΔz_i (upland) or W (wetland).
  double water() const;

 private:
  friend class CellFeed;
  // advance() in three parts, so that run_cells can run the upland Richards stage of several cells
  // together: begin_day (§15 steps 1–9; upland: ET and the §13.1 sinks), the Richards day, end_*.
  struct DayStart {
    State state;
    double W = 0, SWE = 0, W_after_sinks = 0;
  };
  void begin_day(DayOut& d, DayStart& p, const Forcing& f, const Slots& slots);
  void end_upland_day(DayOut& d, const DayStart& p, const RichardsDay& r);
  void end_day(DayOut& d, const DayStart& p, const Forcing& f);
  void wetland_day(DayOut& d, const Forcing& f, const Slots& slots);
  void evapotranspiration(DayOut& d, const Forcing& f, const Layers& th, double LAI, const Slots& slots) const;
  double et_slot(const Slots& slots, DayOut& d, const Forcing& f, double theta1, double& es_demand) const;

  Statics statics_;
  Params params_;
  Options opt_;
  Soil soil_;
  State state_;
  double pressure_ = 0;  ///< air_pressure(elevation) [Pa], constant (§6)
  double tan_lat_ = 0;   ///< tan_latitude(lat), constant (§6)
  // wetland_layers at z_wt = wl_zwt_ (bitwise): a day starts at the z_wt the previous one ended with
  Layers wl_theta_{};
  double wl_zwt_ = kNaN;
  const Layers& wetland_layers_at(double z_wt);
};

/// Up to kLanes cells advanced together day by day, their upland Richards stages in the lanes of
/// richards_day_lanes (the rest of the day one cell at a time): bit-identical to each cell's own advance(),
/// whichever cells share a batch. The cells must share Options (the Richards controls: the first upland
/// cell's are used) and outlive the batch; more than kLanes cells is std::invalid_argument. For whole runs,
/// run_cells is faster (no lane waits for the slowest).
class CellBatch {
 public:
  CellBatch(Cell* const* cells, int n);
  /// One day: cells[c] with f[c] → out[c], c < n.
  void advance(const Forcing* f, DayOut* out, const Slots& slots = {});

 private:
  Cell* cells_[kLanes] = {};
  int n_ = 0;
};

/// Runs n cells for n_days days each, as if each were advanced alone (bit-identical): before_first(c) once
/// before cell c's first day (e.g. its spin-up; may be empty), then day(c, t) → Cell::advance → done(c, t, d)
/// for t = 0 … n_days − 1 in order per cell; cells interleave. Upland Richards stages run in the lanes of
/// richards_lanes_stream, each lane taking the next day (or the next cell) as soon as its day ends;
/// wetland cells, and every cell when slots has a drainage surrogate, run one at a time. The cells must
/// share Options (cells[0]'s Richards controls are used). If a callback throws, the cells then in the lanes
/// are left mid-day (Stage 1 applied, the column not written back): discard them.
void run_cells(Cell* const* cells, std::size_t n, std::size_t n_days,
               const std::function<void(std::size_t)>& before_first,
               const std::function<Forcing(std::size_t, std::size_t)>& day,
               const std::function<void(std::size_t, std::size_t, const DayOut&)>& done, const Slots& slots = {});
/// The same, with the cells claimed one at a time from `next` (the next unclaimed index, shared by threads
/// that call this together on the same cells; each cell runs on exactly one of them): a thread's lanes stay
/// full until every cell is claimed, instead of idling at the end of each chunk. Results are unchanged.
/// Claiming stops (the call returns once its running cells are done) when `next` reaches n, so another
/// thread may stop the others by setting it to n.
void run_cells_shared(Cell* const* cells, std::size_t n, std::atomic<std::size_t>& next, std::size_t n_days,
                      const std::function<void(std::size_t)>& before_first,
                      const std::function<Forcing(std::size_t, std::size_t)>& day,
                      const std::function<void(std::size_t, std::size_t, const DayOut&)>& done,
                      const Slots& slots = {});

struct SpinUpResult {
  int cycles = 0;
  bool converged = false;
  double dW = kNaN, dSWE = kNaN;  ///< last year-end changes [mm]
};
/// §18: repeats `days` (the first forcing year) until |ΔW_soil| and |ΔSWE| between successive year-ends
/// are < tol (max `max_cycles` cycles). The cell keeps the spun-up state.
SpinUpResult spin_up(Cell& cell, const Forcing* days, std::size_t n_days, const Slots& slots = {},
                     double tol = 0.5, int max_cycles = 50);
/// spin_up for n cells at once, day(c, t) giving cell c's forcing on day t of its year (t < n_days): the cells
/// not yet converged run each cycle together through run_cells (upland days in the SIMD lanes), so every
/// cell ends as spin_up would leave it, bit for bit, with the same result. As for run_cells, the cells must
/// share Options (the first active cell's Richards controls are used).
std::vector<SpinUpResult> spin_up_cells(Cell* const* cells, std::size_t n, std::size_t n_days,
                                        const std::function<Forcing(std::size_t, std::size_t)>& day,
                                        const Slots& slots = {}, double tol = 0.5, int max_cycles = 50);

}  // namespace couplet::tem_wbm
