// Throughput, memory and accuracy of the TEM water balance model on a synthetic global-size run.
//
//   bench_tem_wbm [--cells N] [--days D] [--threads T1,T2,...] [--accuracy-cells M] [--scalar 0|1]
//                 [--dt-max S] [--dtheta-max X]     (the sub-step control measured; default: the spec's)
//                 [--ref-dt-max S] [--ref-dtheta-max X]  (the reference; default: the spec's Δt_max, Δt_0, Δθ_max / 10)
//
// Streams cells through the model the way a global run must, and as tem_wbm.simulate does: blocks of 256
// cells, each cell's forcing generated on the fly, simulated, and its daily SSM written into the block's
// buffer that is then discarded — nothing global is held in memory. Reports cell-days per second for each thread count, the
// extrapolated time for the full 56,112 cells × 1,827 days, peak RSS, and the SSM difference between
// the measured sub-step control and a tightly converged one (the spec's Δθ_max, Δt_max and Δt_0 divided by 10).
#include "tem_wbm/model.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace couplet::tem_wbm;

namespace {

constexpr double kPi = 3.14159265358979323846;

// cos(2π(doy − 200)/365) for doy 1…365, computed once (the same values as computing it every cell-day).
const std::array<double, 366>& seasonal_cycle() {
  static const std::array<double, 366> table = [] {
    std::array<double, 366> t{};
    for (int doy = 1; doy <= 365; ++doy) t[doy] = std::cos(2 * kPi * (doy - 200) / 365.0);
    return t;
  }();
  return table;
}

// A cell's statics and weather, deterministic in the cell index (so any thread split gives the same run).
struct SyntheticCell {
  Statics statics;
  std::mt19937_64 rng;
  double lat, t_mean, t_amp, p_wet, p_mean, lai_max;
  bool wet = false;

  explicit SyntheticCell(std::size_t i) : rng(0x5eed0000ULL + i) {
    std::uniform_real_distribution<double> u(0, 1);
    lat = -55 + 125 * u(rng);
    statics.sand = 0.1 + 0.8 * u(rng);
    statics.clay = std::min(0.6, (1 - statics.sand) * u(rng));
    statics.silt = 1 - statics.sand - statics.clay;
    statics.elev = 2000 * u(rng) * u(rng);
    statics.land = u(rng) < 0.1 ? Land::Wetland : Land::Upland;
    statics.lat = lat;
    t_mean = 28 - 0.45 * std::fabs(lat) + 4 * (u(rng) - 0.5);
    t_amp = 2 + 0.3 * std::fabs(lat);
    p_wet = 0.15 + 0.5 * u(rng);
    p_mean = 2 + 10 * u(rng);
    lai_max = 0.3 + 6 * u(rng);
  }

  Forcing day(int d) {
    std::uniform_real_distribution<double> u(0, 1);
    std::normal_distribution<double> n(0, 1);
    const int doy = d % 365 + 1;
    const double season = seasonal_cycle()[doy] * (lat >= 0 ? 1 : -1);
    Forcing f;
    f.doy = doy;
    f.T = t_mean + t_amp * season + 3 * n(rng);
    wet = u(rng) < (wet ? 0.6 : p_wet * 0.6);  // wet days cluster (first-order Markov chain)
    f.Pr = wet ? -p_mean * std::log(1 - u(rng)) : 0.0;
    f.SWD = std::max(5.0, 180 + 90 * season * std::fabs(lat) / 70 + 30 * n(rng));
    const double rh = std::clamp(0.6 + (wet ? 0.25 : 0.0) + 0.1 * n(rng), 0.1, 1.0);
    f.Vp = rh * 6.108 * std::exp(17.27 * f.T / (f.T + 237.3));
    f.LAI = std::max(0.0, lai_max * (0.55 + 0.45 * season));
    return f;
  }
};

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

Options g_control;      // --dt-max, --dtheta-max: the sub-step control measured (default: the spec's)
Options g_reference = [] {  // --ref-dt-max, --ref-dtheta-max: the reference (default: the spec's, all / 10)
  Options o;
  o.dtheta_max /= 10;
  o.dt_max /= 10;
  o.dt0 /= 10;
  return o;
}();
bool g_scalar = false;  // --scalar 1: one cell at a time (Cell::advance) instead of run_cells

// Simulates cells [0, n_cells) × n_days on `threads` threads, as tem_wbm.simulate does: blocks of kBlock
// cells (its default block_sites) one after another, the threads' lanes taking the block's cells one at a
// time (run_cells_shared; --scalar 1: Cell::advance, one cell at a time), the block's daily SSM written to
// one buffer that is then dropped. Returns the wall time. `ssm_out`, if given, receives the SSM of the first
// cells (cell-major) for comparison.
double run(std::size_t n_cells, int n_days, int threads, const Options& opt, std::vector<float>* ssm_out,
           std::atomic<long>& substeps, std::vector<double>* checksum = nullptr,
           std::atomic<long>* rejected = nullptr) {
  constexpr std::size_t kBlock = 256;
  const double t0 = now();
  std::vector<float> block(kBlock * static_cast<std::size_t>(n_days));  // streamed, then dropped
  for (std::size_t c0 = 0; c0 < n_cells; c0 += kBlock) {
    const std::size_t c1 = std::min(n_cells, c0 + kBlock);
    const std::size_t nc = c1 - c0;
    std::vector<SyntheticCell> sc;
    std::vector<Cell> cells;
    sc.reserve(nc);
    cells.reserve(nc);
    for (std::size_t j = 0; j < nc; ++j) {
      sc.emplace_back(c0 + j);
      cells.emplace_back(sc.back().statics, Params{}, opt);
    }
    std::vector<Cell*> ptr;
    for (auto& c : cells) ptr.push_back(&c);
    std::vector<double> sum(nc, 0.0);
    std::atomic<std::size_t> next{0};
    auto work = [&] {  // each cell (its weather generator included) is claimed by one thread
      long local_substeps = 0, local_rejected = 0;
      auto day = [&](std::size_t j, std::size_t d) { return sc[j].day(static_cast<int>(d)); };
      auto done = [&](std::size_t j, std::size_t d, const DayOut& out) {
        local_substeps += out.n_substeps;
        local_rejected += out.n_rejected;
        block[j * n_days + d] = static_cast<float>(out.SSM);
        sum[j] += out.SSM + out.DR + out.RO;
      };
      if (g_scalar) {
        for (std::size_t j; (j = next.fetch_add(1)) < nc;)
          for (int d = 0; d < n_days; ++d) done(j, d, cells[j].advance(day(j, d)));
      } else {
        run_cells_shared(ptr.data(), nc, next, static_cast<std::size_t>(n_days), {}, day, done);
      }
      substeps += local_substeps;
      if (rejected) *rejected += local_rejected;
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& th : pool) th.join();
    if (checksum)  // per cell, so the total is independent of the thread split
      for (std::size_t j = 0; j < nc; ++j) (*checksum)[c0 + j] = sum[j];
    if (ssm_out)
      for (std::size_t c = c0; c < c1 && c * n_days < ssm_out->size(); ++c)
        std::copy_n(block.begin() + (c - c0) * n_days, n_days, ssm_out->begin() + c * n_days);
  }
  return now() - t0;
}

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p) ++p;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t cells = 2000, accuracy_cells = 200;
  int days = 1827;
  std::vector<int> thread_counts{1, 2};
  double dt0 = 0;  // --dt0: the first sub-step of each day (default: Δt_max, as the spec)
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cells")) cells = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--days")) days = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) thread_counts = parse_list(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--accuracy-cells")) accuracy_cells = std::strtoul(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--scalar")) g_scalar = std::atoi(argv[i + 1]) != 0;
    else if (!std::strcmp(argv[i], "--dt-max")) g_control.dt_max = g_control.dt0 = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dt0")) dt0 = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dtheta-max")) g_control.dtheta_max = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--ref-dt-max")) g_reference.dt_max = g_reference.dt0 = std::atof(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--ref-dtheta-max")) g_reference.dtheta_max = std::atof(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--cells N] [--days D] [--threads 1,2] [--accuracy-cells M] [--scalar 0|1] "
                   "[--dt-max S] [--dtheta-max X] [--ref-dt-max S] [--ref-dtheta-max X]\n",
                   argv[0]);
      return 2;
    }
  }
  if (dt0 > 0) g_control.dt0 = dt0;
  const double global_cell_days = 56112.0 * 1827.0;
  std::printf("tem_wbm throughput: %zu synthetic cells x %d days (10%% wetland), hardware threads %u, %s\n", cells,
              days, std::thread::hardware_concurrency(),
              g_scalar ? "one cell at a time (Cell::advance)"
                       : (std::string("run_cells_shared, ") + std::to_string(richards_lanes_width()) + " lanes, " + richards_lanes_isa()).c_str());
  for (int t : thread_counts) {
    std::atomic<long> substeps{0};
    std::vector<double> per_cell(cells, 0.0);
    std::atomic<long> rejected{0};
    const double secs = run(cells, days, t, g_control, nullptr, substeps, &per_cell, &rejected);
    double checksum = 0;
    for (double v : per_cell) checksum += v;
    const double rate = static_cast<double>(cells) * days / secs;
    std::printf("  threads %d: %.2f s, %.3f M cell-days/s, %.1f Richards sub-steps per upland-or-wetland day; "
                "full global run (56,112 x 1,827) extrapolated: %.1f s\n",
                t, secs, rate / 1e6, static_cast<double>(substeps) / (static_cast<double>(cells) * days),
                global_cell_days / rate);
    std::printf("    %.2f rejected sub-steps per day; checksum (sum of SSM + DR + RO over all cell-days): %.15e\n",
                static_cast<double>(rejected) / (static_cast<double>(cells) * days), checksum);
  }
  std::printf("  peak RSS: %ld MB\n", peak_rss_mb());

  // Accuracy: default sub-step control vs a tightly converged reference.
  if (accuracy_cells == 0 || days <= 0) {
    std::printf("  accuracy: not measured (--accuracy-cells 0)\n");
    return 0;
  }
  Options tight = g_reference;
  std::vector<float> a(accuracy_cells * days), b(accuracy_cells * days);
  std::atomic<long> s1{0}, s2{0};
  run(accuracy_cells, days, 2, g_control, &a, s1);
  run(accuracy_cells, days, 2, tight, &b, s2);
  std::vector<double> diff(a.size());  // |ΔSSM| per cell-day, cell-major
  for (std::size_t i = 0; i < a.size(); ++i) diff[i] = std::fabs(static_cast<double>(a[i]) - b[i]);
  double max_diff = 0, sum_diff = 0;
  std::size_t worst = 0, cells_over = 0;
  for (std::size_t c = 0; c < accuracy_cells; ++c) {
    double cell_max = 0;
    for (std::size_t d = 0; d < static_cast<std::size_t>(days); ++d) {
      const std::size_t i = c * static_cast<std::size_t>(days) + d;
      if (diff[i] > max_diff) {
        max_diff = diff[i];
        worst = i;
      }
      cell_max = std::max(cell_max, diff[i]);
      sum_diff += diff[i];
    }
    cells_over += cell_max > 5e-4;
  }
  {
    std::sort(diff.begin(), diff.end());
    std::printf("  accuracy quantiles of |diff| over cell-days: median %.1e, 99%% %.1e, 99.9%% %.1e; share within 5e-4: "
                "%.4f\n",
                diff[diff.size() / 2], diff[diff.size() * 99 / 100], diff[diff.size() * 999 / 1000],
                double(std::upper_bound(diff.begin(), diff.end(), 5e-4) - diff.begin()) / double(diff.size()));
  }
  std::printf("  accuracy (%zu cells x %d days): SSM (dt_max %g s, dtheta_max %g) vs reference (dt_max %g s, "
              "dtheta_max %g): max |diff| %.2e, mean |diff| %.2e m3/m3 (target max <= 5e-4)\n",
              accuracy_cells, days, g_control.dt_max, g_control.dtheta_max, tight.dt_max, tight.dtheta_max, max_diff,
              sum_diff / static_cast<double>(a.size()));
  {
    const SyntheticCell w(worst / static_cast<std::size_t>(days));
    std::printf("    cells with some day over 5e-4: %zu of %zu; worst: cell %zu (sand %.2f, clay %.2f, %s) day %zu\n",
                cells_over, accuracy_cells, worst / static_cast<std::size_t>(days), w.statics.sand, w.statics.clay,
                w.statics.land == Land::Wetland ? "wetland" : "upland", worst % static_cast<std::size_t>(days));
  }
  return 0;
}
