// The multi-cell Richards kernel (richards_day_lanes, CellBatch, run_cells) against the one-cell one: bit
// for bit, whichever cells share the lanes, on every instruction set the machine has, through rejection,
// projection and the sub-step limit.
#include "tem_wbm/model.hpp"
#include "tem_wbm/richards_lanes.hpp"
#include "weather.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace couplet::tem_wbm;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

bool same_day(const RichardsDay& a, const RichardsDay& b) {
  return same_bits(a.IF_acc, b.IF_acc) && same_bits(a.RO_sat, b.RO_sat) && same_bits(a.DR_flux, b.DR_flux) &&
         a.n_substeps == b.n_substeps && a.n_rejected == b.n_rejected && a.n_projections == b.n_projections &&
         a.flags == b.flags;
}

bool same_layers(const Layers& a, const Layers& b) { return std::memcmp(a.data(), b.data(), sizeof a) == 0; }

// The outputs of a cell-day, bit for bit (fluxes, storage, layers, residuals — res_DR holds the sub-steps'
// drainage flux —, diagnostics).
bool same_outputs(const DayOut& a, const DayOut& b) {
  return same_bits(a.SSM, b.SSM) && same_bits(a.DR, b.DR) && same_bits(a.RO, b.RO) && same_bits(a.IF, b.IF) &&
         same_bits(a.EV, b.EV) && same_bits(a.ES, b.ES) && same_bits(a.SWE, b.SWE) && same_bits(a.res_cell, b.res_cell) &&
         same_bits(a.res_soil, b.res_soil) && same_bits(a.res_DR, b.res_DR) && same_layers(a.theta, b.theta) &&
         a.n_substeps == b.n_substeps && a.n_rejected == b.n_rejected && a.n_projections == b.n_projections &&
         a.flags == b.flags;
}

Statics texture(double sand, double clay) {
  Statics st;
  st.sand = sand;
  st.clay = clay;
  st.silt = 1 - sand - clay;
  return st;
}

struct Column {
  Soil soil;
  Layers theta;
};

// Columns from sand to clay, some wet, some near θ_res, and a random day's water input: dry days, showers,
// storms that saturate the column (projection, rejected sub-steps) and long dry spells. `copies` sets of the
// six textures (more columns than the widest lane set, so that lanes are refilled within a call).
std::vector<Column> columns(const Options& o, std::mt19937_64& rng, int copies = 1) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Column> c;
  for (int k = 0; k < copies; ++k) {
    for (auto [sand, clay] : {std::pair{0.92, 0.03}, {0.6, 0.1}, {0.4, 0.2}, {0.2, 0.3}, {0.1, 0.55}, {0.3, 0.45}}) {
      Column col;
      col.soil = derive_soil(texture(sand, clay), Params{}, o);
      for (int i = 0; i < kN; ++i) {
        const double lo = col.soil.theta_res[i], hi = col.soil.theta_sat[i];
        col.theta[i] = lo + (hi - lo) * (c.size() % 3 == 0 ? 0.02 + 0.05 * u(rng) : u(rng));
      }
      c.push_back(col);
    }
  }
  return c;
}

double water_input(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  const double r = u(rng);
  if (r < 0.5) return 0;
  if (r < 0.85) return 10 * u(rng);
  if (r < 0.97) return 30 + 60 * u(rng);
  return 200 + 300 * u(rng);
}

// Runs `days` days on every column: one at a time (richards_day) and in lanes (`lanes` cells per call,
// in the order `order`), checking every day bit for bit. Returns the counts seen, to show what was covered.
struct Seen {
  long projections = 0, rejected = 0, substeps = 0, limited = 0, days = 0;
};
Seen compare(const Options& o, int days, int lanes, const std::vector<int>& order, LanesIsa isa, std::uint64_t seed,
             int copies = 1) {
  std::mt19937_64 rng(seed);
  std::vector<Column> one = columns(o, rng, copies);
  std::vector<Column> many = one;
  Seen seen;
  for (int d = 0; d < days; ++d) {
    std::vector<double> W(one.size());
    std::uniform_real_distribution<double> u(0, 1);
    for (std::size_t c = 0; c < one.size(); ++c) {
      W[c] = water_input(rng);
      // a day's sinks, as Stage 1 removes them (never below θ_res)
      for (int i = 0; i < kN; ++i) {
        const double sink = std::min(0.3 * u(rng), (one[c].theta[i] - one[c].soil.theta_res[i]) * one[c].soil.dz[i]);
        one[c].theta[i] -= sink / one[c].soil.dz[i];
        many[c].theta[i] = one[c].theta[i];
      }
    }
    std::vector<RichardsDay> expect(one.size()), got(one.size());
    for (std::size_t c = 0; c < one.size(); ++c) expect[c] = richards_day(one[c].theta, W[c], one[c].soil, o);
    for (std::size_t b = 0; b < order.size(); b += static_cast<std::size_t>(lanes)) {
      const int n = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(lanes), order.size() - b));
      std::vector<Layers*> theta(static_cast<std::size_t>(n));
      std::vector<const Soil*> soil(static_cast<std::size_t>(n));
      std::vector<double> Win(static_cast<std::size_t>(n));
      std::vector<RichardsDay> r(static_cast<std::size_t>(n));
      for (int j = 0; j < n; ++j) {
        const int c = order[b + static_cast<std::size_t>(j)];
        const auto jj = static_cast<std::size_t>(j);
        theta[jj] = &many[static_cast<std::size_t>(c)].theta;
        soil[jj] = &many[static_cast<std::size_t>(c)].soil;
        Win[jj] = W[static_cast<std::size_t>(c)];
      }
      richards_day_lanes(theta.data(), Win.data(), soil.data(), n, o, r.data(), isa);
      for (int j = 0; j < n; ++j)
        got[static_cast<std::size_t>(order[b + static_cast<std::size_t>(j)])] = r[static_cast<std::size_t>(j)];
    }
    for (std::size_t c = 0; c < one.size(); ++c) {
      CAPTURE(d);
      CAPTURE(c);
      REQUIRE(same_day(expect[c], got[c]));
      REQUIRE(same_layers(one[c].theta, many[c].theta));
      seen.projections += expect[c].n_projections;
      seen.rejected += expect[c].n_rejected;
      seen.substeps += expect[c].n_substeps;
      seen.limited += (expect[c].flags & kFlagSubstepLimit) != 0;
      ++seen.days;
      if (expect[c].flags & kFlagSubstepLimit) {  // aborted mid-day: start the next day from a valid state
        for (int i = 0; i < kN; ++i)
          one[c].theta[i] = many[c].theta[i] = std::clamp(one[c].theta[i], one[c].soil.theta_res[i], one[c].soil.theta_sat[i]);
      }
    }
  }
  return seen;
}

// The kernel's builds this machine can run, the default choice first; the log says which are skipped.
std::vector<LanesIsa> isas() {
  std::vector<LanesIsa> v;
  for (LanesIsa isa : {LanesIsa::Best, LanesIsa::Sse2, LanesIsa::Avx2, LanesIsa::Avx512}) {
    if (richards_lanes_supported(isa)) v.push_back(isa);
    else MESSAGE("this machine cannot run the " << (isa == LanesIsa::Avx2 ? "AVX2" : "AVX-512")
                                                << " lanes build: not compared here");
  }
  return v;
}

}  // namespace

TEST_CASE("tem_wbm: richards_day_lanes is richards_day bit for bit") {
  const Options o;
  MESSAGE("richards_day_lanes runs on " << std::string(richards_lanes_isa()) << ", "
                                        << richards_lanes_width() << " lanes");
  for (LanesIsa isa : isas()) {
    CAPTURE(static_cast<int>(isa));
    // all six at once, three at a time shuffled, one at a time, twelve at once (more than any lane set:
    // lanes refilled within the call): the same bits whoever shares the lanes
    const Seen a = compare(o, 400, 6, {0, 1, 2, 3, 4, 5}, isa, 11);
    compare(o, 400, 3, {5, 2, 0, 4, 1, 3}, isa, 11);
    const Seen c = compare(o, 150, 1, {3, 1, 4, 0, 5, 2}, isa, 12);
    const Seen d = compare(o, 150, 12, {0, 7, 2, 9, 4, 11, 6, 1, 8, 3, 10, 5}, isa, 13, 2);
    // what the comparison went through (a comparison that never projected would prove little)
    CHECK(a.projections > 0);
    CHECK(a.rejected > 0);
    CHECK(a.substeps >= 24 * a.days);
    CHECK(c.days == 150 * 6);
    CHECK(d.days == 150 * 12);
  }
}

// Run by ctest a second time with COUPLET_LANES_ISA=sse2 and =avx2 (tests/CMakeLists.txt): the cap holds.
TEST_CASE("tem_wbm: COUPLET_LANES_ISA caps the lanes build") {
  const char* cap = std::getenv("COUPLET_LANES_ISA");
  const std::string isa = richards_lanes_isa();
  if (cap && std::string(cap) == "sse2") {
    CHECK(isa == "sse2");
    CHECK(richards_lanes_width() == kLanes);
  } else if (cap && std::string(cap) == "avx2") {
    CHECK(isa == (richards_lanes_supported(LanesIsa::Avx2) ? "avx2" : "sse2"));
    CHECK(richards_lanes_width() == kLanes);
  } else {
    CHECK(isa == (richards_lanes_supported(LanesIsa::Avx512) ? "avx512"
                  : richards_lanes_supported(LanesIsa::Avx2) ? "avx2" : "sse2"));
    CHECK(richards_lanes_width() == (isa == "avx512" ? kMaxLanes : kLanes));
  }
}

TEST_CASE("tem_wbm: a lanes build the machine cannot run is refused") {
  CHECK(richards_lanes_supported(LanesIsa::Sse2));  // every x86-64
  for (LanesIsa isa : {LanesIsa::Avx2, LanesIsa::Avx512, static_cast<LanesIsa>(99)}) {
    if (richards_lanes_supported(isa)) continue;  // (99: no build of that name anywhere)
    Layers theta{};
    Layers* t[1] = {&theta};
    const double W[1] = {0};
    const Soil soil = derive_soil(texture(0.4, 0.2), Params{}, Options{});
    const Soil* s[1] = {&soil};
    RichardsDay out[1];
    CHECK_THROWS_AS(richards_day_lanes(t, W, s, 1, Options{}, out, isa), std::invalid_argument);
  }
}

TEST_CASE("tem_wbm: richards_day_lanes stops a lane at the sub-step limit as richards_day does") {
  Options o;
  o.max_attempts = 30;  // storms need more than 30 attempts: those days stop early, flagged
  for (LanesIsa isa : isas()) {
    CAPTURE(static_cast<int>(isa));
    const Seen s = compare(o, 200, 6, {0, 1, 2, 3, 4, 5}, isa, 7);
    CHECK(s.limited > 0);
    CHECK(s.limited < s.days);
  }
}

TEST_CASE("tem_wbm: a lane that fails at the smallest sub-step fails alone, as richards_day does") {
  const Options o;
  std::mt19937_64 rng(3);
  const std::vector<Column> c = columns(o, rng);
  for (LanesIsa isa : isas()) {
    CAPTURE(static_cast<int>(isa));
    std::vector<Column> one(c.begin(), c.begin() + 4), many = one;
    // a column whose fluxes are not finite (a NaN conductance) beside healthy ones
    one[1].soil.k_if[2] = many[1].soil.k_if[2] = std::nan("");
    const double W[4] = {12, 30, 0, 5};
    RichardsDay expect[4], got[4];
    for (int k = 0; k < 4; ++k) expect[k] = richards_day(one[static_cast<std::size_t>(k)].theta, W[k], one[static_cast<std::size_t>(k)].soil, o);
    Layers* theta[4];
    const Soil* soil[4];
    for (std::size_t k = 0; k < 4; ++k) {
      theta[k] = &many[k].theta;
      soil[k] = &many[k].soil;
    }
    richards_day_lanes(theta, W, soil, 4, o, got, isa);
    CHECK((expect[1].flags & kFlagNonFinite) != 0);  // the path under test: retried down to Δt_min, then failed
    CHECK(expect[1].n_rejected > 10);
    for (std::size_t k = 0; k < 4; ++k) {
      CAPTURE(k);
      CHECK(same_day(expect[k], got[k]));
      CHECK(same_layers(one[k].theta, many[k].theta));  // the failed column restored as richards_day does
    }
  }
}

TEST_CASE("tem_wbm: lanes a feed leaves idle never disturb the others") {
  // A feed that gives lane 0 nothing and lanes 1-3 three days each of their own column.
  const Options o;
  std::mt19937_64 rng(5);
  std::vector<Column> one = columns(o, rng);
  std::vector<Column> many = one;
  struct Feed final : LaneFeed {
    std::vector<Column>* cols;
    int days_done[kMaxLanes] = {};
    std::vector<RichardsDay> results;
    bool next(int lane, const RichardsDay* done, LaneDay& day) override {
      if (done) results.push_back(*done);
      if (lane == 0 || lane > 3 || days_done[lane] == 3) return false;
      ++days_done[lane];
      Column& c = (*cols)[static_cast<std::size_t>(lane)];
      day = {c.theta.data(), 20.0 * lane, &c.soil};
      return true;
    }
  };
  for (std::size_t k = 1; k < 4; ++k)
    for (int d = 0; d < 3; ++d) richards_day(one[k].theta, 20.0 * static_cast<double>(k), one[k].soil, o);
  for (LanesIsa isa : isas()) {
    CAPTURE(static_cast<int>(isa));
    Feed feed;
    std::vector<Column> cols = many;
    feed.cols = &cols;
    richards_lanes_stream(feed, o, isa);
    REQUIRE(feed.results.size() == 9);
    for (std::size_t k = 0; k < 4; ++k) CHECK(same_layers(one[k].theta, cols[k].theta));  // lane 0 untouched
  }
}

TEST_CASE("tem_wbm: CellBatch advances each cell bit for bit as its own advance") {
  // uplands of four textures and two wetlands, batched as 4 + 2 and as 3 + 3
  std::vector<Statics> st{texture(0.9, 0.03), texture(0.4, 0.2), texture(0.1, 0.55), texture(0.6, 0.1),
                          texture(0.4, 0.2), texture(0.2, 0.3)};
  st[1].land = Land::Wetland;
  st[4].land = Land::Wetland;
  const auto weather = testutil::weather(3 * 365, 5, 5, 14);  // winters below 0 °C: snow days too
  std::vector<Cell> one;
  for (const auto& s : st) one.emplace_back(s, Params{});
  std::vector<std::vector<DayOut>> expect(st.size());
  for (std::size_t c = 0; c < st.size(); ++c)
    for (const auto& f : weather) expect[c].push_back(one[c].advance(f));

  Cell* five[5] = {};
  CHECK_THROWS_AS(CellBatch(five, 5), std::invalid_argument);  // more cells than lanes: refused, not cut
  for (int lanes : {4, 3}) {
    CAPTURE(lanes);
    std::vector<Cell> cells;
    for (const auto& s : st) cells.emplace_back(s, Params{});
    for (std::size_t b = 0; b < cells.size(); b += static_cast<std::size_t>(lanes)) {
      const int n = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(lanes), cells.size() - b));
      Cell* ptr[kLanes] = {};
      for (int j = 0; j < n; ++j) ptr[j] = &cells[b + static_cast<std::size_t>(j)];
      CellBatch batch(ptr, n);
      for (std::size_t t = 0; t < weather.size(); ++t) {
        Forcing f[kLanes];
        DayOut out[kLanes];
        for (int j = 0; j < n; ++j) f[j] = weather[t];
        batch.advance(f, out);
        for (int j = 0; j < n; ++j) {
          const DayOut& e = expect[b + static_cast<std::size_t>(j)][t];
          CAPTURE(t);
          CAPTURE(j);
          REQUIRE(same_outputs(out[j], e));
        }
      }
      for (int j = 0; j < n; ++j)
        CHECK(same_layers(cells[b + static_cast<std::size_t>(j)].state().theta, one[b + static_cast<std::size_t>(j)].state().theta));
    }
  }
}

namespace {
// Cells of statics `st`, each with its own weather (seed seed0 + c), advanced alone: the reference the
// multi-cell runs are held to. `start`, if given, changes a cell's state before its first day (what
// before_first may do); `one` holds the cells after their runs.
// Fresh cells of these statics (default parameters) and pointers to them, as run_cells takes them.
struct FreshCells {
  std::vector<Cell> many;
  std::vector<Cell*> ptr;
  explicit FreshCells(const std::vector<Statics>& st) {
    many.reserve(st.size());
    for (const auto& s : st) many.emplace_back(s, Params{});
    for (auto& c : many) ptr.push_back(&c);
  }
  FreshCells(const FreshCells&) = delete;  // ptr points into many
  FreshCells& operator=(const FreshCells&) = delete;
};

struct AloneRuns {
  std::vector<std::vector<couplet::tem_wbm::Forcing>> weather;
  std::vector<std::vector<DayOut>> expect;
  std::vector<Cell> one;
};
AloneRuns alone(const std::vector<Statics>& st, std::size_t days, unsigned seed0, void (*start)(Cell&) = nullptr,
                const Slots& slots = {}) {
  AloneRuns r;
  for (std::size_t c = 0; c < st.size(); ++c) {
    r.weather.push_back(testutil::weather(days, seed0 + c, 5, 14));
    r.one.emplace_back(st[c], Params{});
    if (start) start(r.one[c]);
    r.expect.emplace_back();
    for (const auto& f : r.weather[c]) r.expect[c].push_back(r.one[c].advance(f, slots));
  }
  return r;
}
// a drainage surrogate: the slot is called inside the Richards sub-steps, so run_cells runs such cells alone
struct SlowDrainage final : DrainageSlot {
  double evaluate(const double* x) const override {  // half the built-in drainage
    if (x[0] == 0) return 0.5 * x[3] * std::pow(std::clamp(x[1] / x[2], 0.0, 1.0), 2 * x[4] + 3);  // upland: ½ K(θ_N)
    return 0.5 * x[5];                                                                            // wetland: ½ Q_DRMAX
  }
};
// a start other than the initial state: every layer 10 % wetter
void wetter(Cell& cell) {
  State wet = cell.state();
  for (auto& th : wet.theta) th *= 1.1;
  cell.set_state(wet);
}
}  // namespace

TEST_CASE("tem_wbm: run_cells gives each cell's own days bit for bit") {
  // more cells than lanes (lanes refilled as cells finish), uplands and wetlands, snow winters
  std::vector<Statics> st;
  const double tex[][2] = {{0.9, 0.03}, {0.4, 0.2}, {0.1, 0.55}, {0.6, 0.1}, {0.3, 0.45}, {0.2, 0.3}, {0.5, 0.25},
                           {0.7, 0.15}, {0.15, 0.4}, {0.8, 0.05}, {0.35, 0.35}};
  for (const auto& t : tex) st.push_back(texture(t[0], t[1]));
  st[2].land = Land::Wetland;
  st[7].land = Land::Wetland;
  const std::size_t n = st.size(), days = 2 * 365;
  const AloneRuns ref = alone(st, days, 100, wetter);
  const auto& weather = ref.weather;
  const auto& expect = ref.expect;
  FreshCells fresh(st);
  auto& many = fresh.many;
  auto& ptr = fresh.ptr;
  std::vector<std::size_t> next_day(n, 0), firsts;
  long mismatches = 0;
  run_cells(
      ptr.data(), n, days,
      [&](std::size_t c) {
        firsts.push_back(c);
        wetter(many[c]);
      },
      [&](std::size_t c, std::size_t t) { return weather[c][t]; },
      [&](std::size_t c, std::size_t t, const DayOut& d) {
        CHECK(t == next_day[c]++);  // each cell's days in order
        mismatches += !same_outputs(d, expect[c][t]);
      });
  CHECK(mismatches == 0);
  CHECK(firsts.size() == n);  // before_first once per cell
  for (std::size_t c = 0; c < n; ++c) {
    CHECK(next_day[c] == days);
    CHECK(same_layers(many[c].state().theta, ref.one[c].state().theta));
  }
}

TEST_CASE("tem_wbm: run_cells_shared on two threads runs every cell once, bit for bit as alone") {
  // 13 cells (two wetlands) claimed from one counter by two threads' lanes
  std::vector<Statics> st;
  for (int c = 0; c < 13; ++c) st.push_back(texture(0.85 - 0.06 * c, 0.03 + 0.04 * c));  // sand to clay
  st[3].land = Land::Wetland;
  st[10].land = Land::Wetland;
  const std::size_t n = st.size(), days = 400;
  const AloneRuns ref = alone(st, days, 300);
  const auto& weather = ref.weather;
  const auto& expect = ref.expect;
  FreshCells fresh(st);
  auto& many = fresh.many;
  auto& ptr = fresh.ptr;
  std::vector<std::size_t> next_day(n, 0);
  std::vector<int> firsts(n, 0), out_of_order(n, 0), mismatches(n, 0);  // per cell: one thread writes each
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    run_cells_shared(
        ptr.data(), n, next, days, [&](std::size_t c) { ++firsts[c]; },
        [&](std::size_t c, std::size_t t) { return weather[c][t]; },
        [&](std::size_t c, std::size_t t, const DayOut& d) {
          out_of_order[c] += t != next_day[c]++;
          mismatches[c] += !same_outputs(d, expect[c][t]);
        });
  };
  std::thread other(work);
  work();
  other.join();
  for (std::size_t c = 0; c < n; ++c) {
    CAPTURE(c);
    CHECK(firsts[c] == 1);  // claimed exactly once
    CHECK(next_day[c] == days);
    CHECK(out_of_order[c] == 0);
    CHECK(mismatches[c] == 0);
    CHECK(same_layers(many[c].state().theta, ref.one[c].state().theta));
  }

  // a counter already at n (another thread stopped the run): nothing runs
  std::atomic<std::size_t> done_counter{n};
  int called = 0;
  run_cells_shared(ptr.data(), n, done_counter, days, {}, [&](std::size_t c, std::size_t t) { return weather[c][t]; },
                   [&](std::size_t, std::size_t, const DayOut&) { ++called; });
  CHECK(called == 0);
}

TEST_CASE("tem_wbm: run_cells with a drainage surrogate runs each cell as its own advance") {
  std::vector<Statics> st{texture(0.8, 0.05), texture(0.4, 0.2), texture(0.2, 0.4), texture(0.5, 0.25),
                          texture(0.3, 0.3)};
  st[2].land = Land::Wetland;
  const SlowDrainage drain;
  const Slots slots{nullptr, &drain};
  const std::size_t n = st.size(), days = 200;
  const AloneRuns ref = alone(st, days, 500, nullptr, slots);
  FreshCells fresh(st);
  auto& ptr = fresh.ptr;
  std::vector<std::size_t> next_day(n, 0);
  long mismatches = 0, out_of_order = 0;
  run_cells(
      ptr.data(), n, days, {}, [&](std::size_t c, std::size_t t) { return ref.weather[c][t]; },
      [&](std::size_t c, std::size_t t, const DayOut& d) {
        out_of_order += t != next_day[c]++;
        mismatches += !same_outputs(d, ref.expect[c][t]);
      },
      slots);
  CHECK(mismatches == 0);
  CHECK(out_of_order == 0);
  for (std::size_t c = 0; c < n; ++c) CHECK(next_day[c] == days);
}

TEST_CASE("tem_wbm: spin_up_cells leaves every cell as its own spin-up, bit for bit") {
  // cells that converge after different numbers of cycles (sand to clay, wetlands, a snowy climate), and
  // one that hits max_cycles; the reference is the plain loop of §18
  std::vector<Statics> st;
  for (int c = 0; c < 9; ++c) st.push_back(texture(0.85 - 0.08 * c, 0.03 + 0.06 * c));
  st[4].land = Land::Wetland;
  const std::size_t n = st.size(), year = 365;
  std::vector<std::vector<Forcing>> w;
  for (std::size_t c = 0; c < n; ++c) w.push_back(testutil::weather(year, 40 + c, c % 3 == 0 ? 2.0 : 12.0, 12.0));
  const double tol = 1e-4;  // mm: tight, so that two cells stop at max_cycles unconverged
  const int max_cycles = 3;
  std::vector<Cell> one;
  std::vector<SpinUpResult> expect;
  for (std::size_t c = 0; c < n; ++c) {
    one.emplace_back(st[c], Params{});
    Cell& cell = one.back();
    SpinUpResult r;
    double W_prev = cell.water(), SWE_prev = cell.state().SWE;
    for (int cycle = 1; cycle <= max_cycles; ++cycle) {
      for (const Forcing& f : w[c]) cell.advance(f);
      r.cycles = cycle, r.dW = cell.water() - W_prev, r.dSWE = cell.state().SWE - SWE_prev;
      if (std::fabs(r.dW) < tol && std::fabs(r.dSWE) < tol) {
        r.converged = true;
        break;
      }
      W_prev = cell.water(), SWE_prev = cell.state().SWE;
    }
    expect.push_back(r);
  }
  FreshCells fresh(st);
  auto& many = fresh.many;
  auto& ptr = fresh.ptr;
  const auto got = spin_up_cells(ptr.data(), n, year, [&](std::size_t c, std::size_t t) { return w[c][t]; }, {}, tol,
                                 max_cycles);
  REQUIRE(got.size() == n);
  std::vector<int> cycles;
  for (std::size_t c = 0; c < n; ++c) {
    CAPTURE(c);
    cycles.push_back(got[c].cycles);
    CHECK(got[c].cycles == expect[c].cycles);
    CHECK(got[c].converged == expect[c].converged);
    CHECK(same_bits(got[c].dW, expect[c].dW));
    CHECK(same_bits(got[c].dSWE, expect[c].dSWE));
    CHECK(same_layers(many[c].state().theta, one[c].state().theta));
    CHECK(same_bits(many[c].water(), one[c].water()));
    CHECK(same_bits(many[c].state().SWE, one[c].state().SWE));
  }
  std::string list;
  for (int k : cycles) list += std::to_string(k) + " ";
  MESSAGE("spin-up cycles per cell: ", list);
  // the case is worth its name: cycles differ between cells
  CHECK(*std::min_element(cycles.begin(), cycles.end()) < *std::max_element(cycles.begin(), cycles.end()));
  CHECK(std::any_of(got.begin(), got.end(), [](const SpinUpResult& r) { return !r.converged; }));

  // two cells, one converged after cycle 2: the other's last cycle runs alone (the one-cell path)
  REQUIRE(expect[7].cycles == 2);
  REQUIRE(expect[0].cycles == 3);
  std::vector<Cell> pair{Cell(st[0], Params{}), Cell(st[7], Params{})};
  Cell* pp[] = {&pair[0], &pair[1]};
  const std::size_t which[] = {0, 7};
  const auto got2 = spin_up_cells(pp, 2, year, [&](std::size_t c, std::size_t t) { return w[which[c]][t]; }, {}, tol,
                                  max_cycles);
  for (std::size_t k = 0; k < 2; ++k) {
    const std::size_t c = which[k];
    CAPTURE(c);
    CHECK(got2[k].cycles == expect[c].cycles);
    CHECK(got2[k].converged == expect[c].converged);
    CHECK(same_bits(got2[k].dW, expect[c].dW));
    CHECK(same_layers(pair[k].state().theta, one[c].state().theta));
    CHECK(same_bits(pair[k].state().SWE, one[c].state().SWE));
  }
}
