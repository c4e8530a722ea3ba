// Preprocessing of (site, time) Datasets (see prep.hpp and docs/preprocessing.md).
#include "prep/prep.hpp"
#include "common/text.hpp"

#include "common/geo.hpp"

#include <couplet/context.hpp>
#include <couplet/seed.hpp>
#include <couplet/time.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <thread>
#include <type_traits>
#include <unordered_map>

namespace couplet::prep {

namespace {

using text::join;

std::string num(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

Attributes with_note(Attributes a, const std::string& key, const std::string& value) {
  a[key] = value;
  return a;
}

}  // namespace

// ---- shared helpers --------------------------------------------------------------------------------

std::vector<std::string> site_time_variables(const Dataset& ds) {
  std::vector<std::string> out;
  for (const auto& v : ds.variables()) {
    if (v.dtype() == DType::String || v.dims().size() != 2) continue;
    if (v.axis("site") >= 0 && v.axis("time") >= 0) out.push_back(v.name());
  }
  return out;
}

std::vector<std::string> select_variables(const Dataset& ds, const std::vector<std::string>& wanted,
                                          const std::string& param) {
  const auto all = site_time_variables(ds);
  if (wanted.empty()) {
    if (all.empty()) throw NodeError("the dataset has no numeric variable over (site, time)");
    return all;
  }
  for (const auto& w : wanted)
    if (!contains(all, w))
      throw NodeError("parameter '" + param + "': the dataset has no (site, time) variable '" + w +
                      "' (it has: " + join(all) + ")");
  return wanted;
}

void put_series(Dataset& ds, const std::string& name, const std::vector<double>& values, Attributes attrs,
                DType dtype) {
  const std::size_t ns = ds.dim("site"), nt = ds.dim("time");
  if (dtype == DType::Float32)
    ds.add(Variable(name, {"site", "time"}, {ns, nt}, std::vector<float>(values.begin(), values.end()),
                    std::move(attrs)));
  else
    ds.add(Variable(name, {"site", "time"}, {ns, nt}, values, std::move(attrs)));
}

void require_daily(const std::vector<double>& time, const std::string& what) {
  for (std::size_t t = 1; t < time.size(); ++t)
    if (time[t] - time[t - 1] != 1.0)
      throw NodeError(what + " needs a daily, contiguous time axis; time steps from " +
                      format_date(static_cast<std::int64_t>(std::floor(time[t - 1]))) + " by " +
                      num(time[t] - time[t - 1]) + " days (aggregate with prep.daily first)");
}

// ---- prep.qc ---------------------------------------------------------------------------------------

std::vector<Range> default_ranges() {
  return {{"SSM", 0.0, 0.6}, {"Pr", 0.0, 500.0}, {"Tair", -60.0, 60.0}, {"SWD", 0.0, 500.0}, {"Vp", 0.0, 80.0}};
}

std::vector<Range> parse_ranges(const std::vector<std::string>& items) {
  std::vector<Range> out;
  for (const auto& item : items) {
    const auto bad = [&](const std::string& why) {
      return NodeError("parameter 'ranges': item '" + item + "' " + why +
                       "; expected VARIABLE:LOW:HIGH, e.g. \"SSM:0:0.6\"");
    };
    const auto c1 = item.find(':');
    const auto c2 = c1 == std::string::npos ? std::string::npos : item.find(':', c1 + 1);
    if (c2 == std::string::npos || item.find(':', c2 + 1) != std::string::npos)
      throw bad("does not have three fields separated by ':'");
    Range r;
    r.variable = item.substr(0, c1);
    if (r.variable.empty()) throw bad("has no variable name");
    const auto number = [&](const std::string& text, const char* which) {
      std::size_t used = 0;
      double x = 0;
      try {
        x = std::stod(text, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (text.empty() || used != text.size() || !std::isfinite(x))
        throw bad(std::string("has a ") + which + " bound '" + text + "' that is not a finite number");
      return x;
    };
    r.lo = number(item.substr(c1 + 1, c2 - c1 - 1), "low");
    r.hi = number(item.substr(c2 + 1), "high");
    if (r.lo > r.hi) throw bad("has its low bound above its high bound");
    out.push_back(r);
  }
  return out;
}

std::vector<Range> merge_ranges(const std::vector<Range>& defaults, const std::vector<Range>& overrides) {
  std::vector<Range> out = defaults;
  for (const auto& o : overrides) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Range& r) { return r.variable == o.variable; });
    if (it != out.end()) *it = o;
    else out.push_back(o);
  }
  return out;
}

std::vector<std::size_t> find_spikes(const double* v, std::size_t n, double threshold) {
  std::vector<std::size_t> out;
  for (std::size_t t = 1; t + 1 < n; ++t) {
    const double up = v[t] - v[t - 1], back = v[t] - v[t + 1];
    if (!std::isfinite(up) || !std::isfinite(back)) continue;
    if ((up > threshold && back > threshold) || (up < -threshold && back < -threshold)) out.push_back(t);
  }
  return out;
}

QcResult quality_control(const Dataset& in, const QcOptions& opt) {
  const auto all = site_time_variables(in);
  for (const auto& v : opt.explicit_range_variables)
    if (!contains(all, v))
      throw NodeError("parameter 'ranges': the dataset has no (site, time) variable '" + v + "' (it has: " +
                      join(all) + ")");
  const bool spikes = !opt.spike_variable.empty();
  if ((spikes || !std::isnan(opt.theta_max)) && !contains(all, opt.spike_variable))
    throw NodeError("parameter 'spike_variable': the dataset has no (site, time) variable '" +
                    opt.spike_variable + "' (it has: " + join(all) +
                    "); set spike_variable = \"\" and theta_max = -1 to skip the soil moisture tests");

  QcResult res{in, Table{}, 0};
  std::vector<std::string> t_site, t_var, t_reason;
  std::vector<double> t_flagged, t_checked;
  for (const auto& name : all) {
    const Range* range = nullptr;
    for (const auto& r : opt.ranges)
      if (r.variable == name) range = &r;
    const bool is_ssm = name == opt.spike_variable;
    if (!range && !is_ssm) continue;
    auto s = series::read_site_series(in, name);
    const bool f32 = in.var(name).dtype() == DType::Float32;
    const std::size_t nt = s.n_times();
    for (std::size_t i = 0; i < s.n_sites(); ++i) {
      double* row = s.values.data() + i * nt;
      const double checked =
          static_cast<double>(std::count_if(row, row + nt, [](double x) { return std::isfinite(x); }));
      const auto record = [&](const std::string& reason, std::size_t count) {
        t_site.push_back(s.sites[i]);
        t_var.push_back(name);
        t_reason.push_back(reason);
        t_flagged.push_back(static_cast<double>(count));
        t_checked.push_back(checked);
        res.flagged += count;
      };
      if (range) {
        // Bounds in the variable's precision: a float32 0.6 is 0.60000002 and must pass "<= 0.6".
        const double lo = f32 ? static_cast<double>(static_cast<float>(range->lo)) : range->lo;
        const double hi = f32 ? static_cast<double>(static_cast<float>(range->hi)) : range->hi;
        std::size_t low = 0, high = 0;
        for (std::size_t t = 0; t < nt; ++t) {
          if (row[t] < lo) { row[t] = kNaN; ++low; }
          else if (row[t] > hi) { row[t] = kNaN; ++high; }
        }
        record("below_range", low);
        record("above_range", high);
      }
      if (is_ssm && !std::isnan(opt.theta_max)) {
        std::size_t over = 0;
        const double theta_max = f32 ? static_cast<double>(static_cast<float>(opt.theta_max)) : opt.theta_max;
        for (std::size_t t = 0; t < nt; ++t)
          if (row[t] > theta_max) { row[t] = kNaN; ++over; }
        record("above_theta_max", over);
      }
      if (is_ssm && spikes) {
        const auto found = find_spikes(row, nt, opt.spike_threshold);
        for (auto t : found) row[t] = kNaN;
        record("spike", found.size());
      }
    }
    put_series(res.cleaned, name, s.values, s.attrs, in.var(name).dtype());
  }
  res.flags.add_column("site", t_site, "", "station");
  res.flags.add_column("variable", t_var, "", "variable tested");
  res.flags.add_column("reason", t_reason, "", "below_range, above_range, above_theta_max or spike");
  res.flags.add_column("flagged", t_flagged, "days", "values set to NaN for this reason");
  res.flags.add_column("checked", t_checked, "days", "finite values of the site's series before QC");
  return res;
}

// ---- prep.site_filter ------------------------------------------------------------------------------

std::size_t longest_gap(const double* v, std::size_t n) {
  std::size_t best = 0, run = 0;
  for (std::size_t t = 0; t < n; ++t) {
    run = std::isnan(v[t]) ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

Dataset select_sites(const Dataset& in, const std::vector<std::size_t>& rows) {
  Dataset out;
  out.attrs = in.attrs;
  for (const auto& name : in.dim_names())
    out.add_dim(name, name == "site" ? rows.size() : in.dim(name));
  for (const auto& v : in.variables()) {
    const int axis = v.axis("site");
    if (axis < 0) {
      out.add(v);
      continue;
    }
    std::size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; ++d) outer *= v.shape()[static_cast<std::size_t>(d)];
    for (std::size_t d = static_cast<std::size_t>(axis) + 1; d < v.shape().size(); ++d) inner *= v.shape()[d];
    const std::size_t ns = v.shape()[static_cast<std::size_t>(axis)];
    auto shape = v.shape();
    shape[static_cast<std::size_t>(axis)] = rows.size();
    const auto take = [&](const auto& src) {
      std::decay_t<decltype(src)> dst;
      dst.reserve(outer * rows.size() * inner);
      for (std::size_t o = 0; o < outer; ++o)
        for (auto r : rows)
          for (std::size_t k = 0; k < inner; ++k) dst.push_back(src[(o * ns + r) * inner + k]);
      return dst;
    };
    switch (v.dtype()) {
      case DType::Float64: out.add(Variable(v.name(), v.dims(), shape, take(v.values<double>()), v.attrs())); break;
      case DType::Float32: out.add(Variable(v.name(), v.dims(), shape, take(v.values<float>()), v.attrs())); break;
      case DType::String: out.add(Variable(v.name(), v.dims(), shape, take(v.values<std::string>()), v.attrs())); break;
    }
  }
  return out;
}

SiteFilterResult site_filter(const Dataset& in, const SiteFilterOptions& opt) {
  const auto s = series::read_site_series(in, opt.variable);
  require_daily(s.time, "prep.site_filter");
  const std::size_t nt = s.n_times();
  SiteFilterResult res;
  std::vector<std::size_t> keep;
  std::vector<double> kept, missing, gap;
  std::vector<std::string> reason;
  for (std::size_t i = 0; i < s.n_sites(); ++i) {
    const double* row = s.row(i);
    const auto m = static_cast<std::int64_t>(std::count_if(row, row + nt, [](double x) { return std::isnan(x); }));
    const auto g = static_cast<std::int64_t>(longest_gap(row, nt));
    std::string why;
    if (m > opt.max_missing_days)
      why = std::to_string(m) + " missing days > " + std::to_string(opt.max_missing_days);
    if (g > opt.max_gap_days)
      why += (why.empty() ? "" : "; ") + ("gap of " + std::to_string(g) + " days > " + std::to_string(opt.max_gap_days));
    if (why.empty()) keep.push_back(i);
    kept.push_back(why.empty() ? 1.0 : 0.0);
    missing.push_back(static_cast<double>(m));
    gap.push_back(static_cast<double>(g));
    reason.push_back(why);
  }
  if (keep.empty())
    throw NodeError("prep.site_filter excluded all " + std::to_string(s.n_sites()) + " sites on '" + opt.variable +
                    "' (max_missing_days = " + std::to_string(opt.max_missing_days) +
                    ", max_gap_days = " + std::to_string(opt.max_gap_days) + "); first: " + s.sites[0] + ": " +
                    reason[0]);
  res.kept = select_sites(in, keep);
  res.n_kept = keep.size();
  res.report.add_column("site", s.sites, "", "station");
  res.report.add_column("kept", kept, "1", "1 = kept, 0 = excluded");
  res.report.add_column("missing_days", missing, "days", "days without a value of " + opt.variable);
  res.report.add_column("longest_gap", gap, "days", "longest run of consecutive missing days");
  res.report.add_column("reason", reason, "", "why the site was excluded; empty when kept");
  return res;
}

// ---- prep.gap_fill ---------------------------------------------------------------------------------

GapFillResult gap_fill(const Dataset& in, const std::vector<std::string>& variables, std::size_t max_gap,
                       bool fill_ends) {
  GapFillResult res{in, Table{}};
  std::vector<std::string> t_site, t_var;
  std::vector<double> t_filled, t_left;
  for (const auto& name : variables) {
    auto s = series::read_site_series(in, name);
    require_daily(s.time, "prep.gap_fill");
    const std::size_t nt = s.n_times();
    for (std::size_t i = 0; i < s.n_sites(); ++i) {
      double* row = s.values.data() + i * nt;
      const std::size_t filled = series::fill_gaps(row, nt, max_gap, fill_ends);
      t_site.push_back(s.sites[i]);
      t_var.push_back(name);
      t_filled.push_back(static_cast<double>(filled));
      t_left.push_back(static_cast<double>(std::count_if(row, row + nt, [](double x) { return std::isnan(x); })));
    }
    put_series(res.filled, name, s.values, s.attrs, in.var(name).dtype());
  }
  res.report.add_column("site", t_site, "", "station");
  res.report.add_column("variable", t_var, "", "variable filled");
  res.report.add_column("filled", t_filled, "days", "values interpolated");
  res.report.add_column("still_missing", t_left, "days", "values still NaN (longer gaps, or ends)");
  return res;
}

// ---- prep.daily ------------------------------------------------------------------------------------

Dataset daily(const Dataset& in, const DailyOptions& opt) {
  const auto vars = site_time_variables(in);
  for (const auto& v : opt.sum_variables)
    if (!contains(vars, v))
      throw NodeError("parameter 'sum_variables': the dataset has no (site, time) variable '" + v + "' (it has: " +
                      join(vars) + ")");
  const auto time = series::time_days(in);
  if (time.empty()) throw NodeError("prep.daily: the time axis is empty");
  double step = 0;
  for (std::size_t t = 1; t < time.size(); ++t) {
    const double d = time[t] - time[t - 1];
    if (!(d > 0)) throw NodeError("prep.daily: time values must increase; they do not after " + num(time[t - 1]));
    step = step == 0 ? d : std::min(step, d);
  }
  if (step == 0) step = 1.0;
  const double per_day_real = 1.0 / step;
  const auto per_day = static_cast<std::size_t>(std::llround(per_day_real));
  if (per_day < 1 || std::fabs(per_day_real - static_cast<double>(per_day)) > 1e-6 * per_day_real)
    throw NodeError("prep.daily: the time step " + num(step) + " days does not divide a day into whole steps");
  // 1e-9 days (< 0.1 ms) absorbs rounding in stamps such as 1/24 accumulated in float.
  const auto day_of = [](double t) { return static_cast<std::int64_t>(std::floor(t + 1e-9)); };
  const std::int64_t first = day_of(time.front()), last = day_of(time.back());
  const auto nd = static_cast<std::size_t>(last - first + 1);
  std::vector<double> days(nd);
  for (std::size_t d = 0; d < nd; ++d) days[d] = static_cast<double>(first + static_cast<std::int64_t>(d));

  Dataset out;
  out.attrs = in.attrs;
  const auto& sites = series::site_names(in);
  out.add(series::site_coord(sites));
  out.add(series::time_coord(days));
  for (const auto& v : in.variables())  // (site) variables such as lat, lon come along
    if (v.dims() == std::vector<std::string>{"site"} && v.name() != "site") out.add(v);
  const std::size_t ns = sites.size();
  for (const auto& name : vars) {
    const auto s = series::read_site_series(in, name);
    const bool sum = contains(opt.sum_variables, name);
    std::vector<double> out_v(ns * nd, kNaN);
    for (std::size_t i = 0; i < ns; ++i) {
      std::vector<double> total(nd, 0.0), valid(nd, 0.0);
      const double* row = s.row(i);
      for (std::size_t t = 0; t < time.size(); ++t)
        if (std::isfinite(row[t])) {
          const auto d = static_cast<std::size_t>(day_of(time[t]) - first);
          total[d] += row[t];
          valid[d] += 1;
        }
      for (std::size_t d = 0; d < nd; ++d) {
        if (valid[d] == 0 || valid[d] / static_cast<double>(per_day) < opt.min_fraction) continue;
        const double mean = total[d] / valid[d];
        out_v[i * nd + d] = sum ? mean * static_cast<double>(per_day) : mean;
      }
    }
    Attributes attrs = with_note(s.attrs, "cell_methods", sum ? "time: sum" : "time: mean");
    put_series(out, name, out_v, attrs, in.var(name).dtype());
  }
  return out;
}

// ---- prep.normalize --------------------------------------------------------------------------------

const std::vector<std::pair<double, double>>* TrainingPeriods::of(const std::string& site) const {
  for (std::size_t i = 0; i < sites.size(); ++i)
    if (sites[i] == site) return &periods[i];
  return nullptr;
}

bool TrainingPeriods::in(const std::vector<std::pair<double, double>>& site_periods, double day) {
  for (const auto& [a, b] : site_periods)
    if ((std::isnan(a) || day >= a) && (std::isnan(b) || day <= b)) return true;
  return false;
}

bool TrainingPeriods::contains(const std::string& site, double day) const {
  const auto* p = of(site);
  return p && in(*p, day);
}

TrainingPeriods training_periods(const Table& split, std::int64_t fold) {
  for (const char* c : {"fold", "site", "role", "start", "end"})
    if (!split.has(c))
      throw NodeError(std::string("input 'split': the table has no column '") + c +
                      "' (expected fold, fold_name, site, role, start, end)");
  const auto get_numbers = [&](const char* c) -> const std::vector<double>& {
    const auto& col = split.column(c);
    if (!col.is_numeric()) throw NodeError(std::string("input 'split': column '") + c + "' must hold numbers");
    return std::get<std::vector<double>>(col.data);
  };
  const auto get_strings = [&](const char* c) -> const std::vector<std::string>& {
    const auto& col = split.column(c);
    if (col.is_numeric()) throw NodeError(std::string("input 'split': column '") + c + "' must hold strings");
    return std::get<std::vector<std::string>>(col.data);
  };
  const auto& folds = get_numbers("fold");
  const auto& site = get_strings("site");
  const auto& role = get_strings("role");
  const auto& start = get_numbers("start");
  const auto& end = get_numbers("end");
  TrainingPeriods tp;
  std::set<std::int64_t> seen;
  for (std::size_t r = 0; r < split.rows(); ++r) {
    if (role[r] != "train" && role[r] != "validation" && role[r] != "test")
      throw NodeError("input 'split', row " + std::to_string(r) + ": role '" + role[r] +
                      "' is not one of train, validation, test");
    seen.insert(static_cast<std::int64_t>(folds[r]));
    if (static_cast<std::int64_t>(folds[r]) != fold || role[r] != "train") continue;
    auto it = std::find(tp.sites.begin(), tp.sites.end(), site[r]);
    if (it == tp.sites.end()) {
      tp.sites.push_back(site[r]);
      tp.periods.emplace_back();
      it = tp.sites.end() - 1;
    }
    tp.periods[static_cast<std::size_t>(it - tp.sites.begin())].emplace_back(start[r], end[r]);
  }
  if (!seen.count(fold)) {
    std::string have;
    for (auto f : seen) have += (have.empty() ? "" : ", ") + std::to_string(f);
    throw NodeError("parameter 'fold' = " + std::to_string(fold) + ": the split has no such fold (it has: " +
                    (have.empty() ? "none" : have) + ")");
  }
  if (tp.sites.empty())
    throw NodeError("fold " + std::to_string(fold) + " of the split has no 'train' row");
  return tp;
}

Table NormStats::to_table() const {
  Table t;
  t.add_column("variable", variables, "", "normalised variable");
  if (!sites.empty()) t.add_column("site", sites, "", "station the statistics belong to");
  t.add_column("mean", mean, "", "training mean, in the variable's units");
  t.add_column("std", std, "", "training standard deviation (population), in the variable's units");
  t.add_column("n", n, "1", "training values used");
  return t;
}

NormStats NormStats::from_table(const Table& t) {
  for (const char* c : {"variable", "mean", "std"})
    if (!t.has(c))
      throw NodeError(std::string("input 'stats': the table has no column '") + c +
                      "' (expected variable, [site], mean, std, n as made by prep.normalize)");
  NormStats s;
  try {
    s.variables = t.strings("variable");
    if (t.has("site")) s.sites = t.strings("site");
    s.mean = t.numbers("mean");
    s.std = t.numbers("std");
    s.n = t.has("n") ? t.numbers("n") : std::vector<double>(t.rows(), kNaN);
  } catch (const std::runtime_error& e) {
    throw NodeError(std::string("input 'stats': ") + e.what());
  }
  for (std::size_t r = 0; r < s.std.size(); ++r)
    if (!(s.std[r] > 0) || !std::isfinite(s.mean[r]))
      throw NodeError("input 'stats': row " + std::to_string(r) + " (variable '" + s.variables[r] +
                      "') has mean " + num(s.mean[r]) + " and std " + num(s.std[r]) + "; std must be > 0");
  return s;
}

std::size_t NormStats::find(const std::string& variable, const std::string& site) const {
  for (std::size_t r = 0; r < variables.size(); ++r)
    if (variables[r] == variable && (sites.empty() || sites[r] == site)) return r;
  return npos;
}

NormStats fit_normalization(const Dataset& in, const std::vector<std::string>& variables,
                            const TrainingPeriods* train, bool per_site) {
  NormStats st;
  for (const auto& name : variables) {
    const auto s = series::read_site_series(in, name);
    const std::size_t groups = per_site ? s.n_sites() : 1;
    for (std::size_t g = 0; g < groups; ++g) {
      // Two-pass sums in long double keep the std exact enough for float32 data of any offset.
      long double sum = 0, sq = 0;
      std::size_t n = 0;
      const std::size_t first = per_site ? g : 0, last = per_site ? g + 1 : s.n_sites();
      const auto each = [&](auto&& f) {
        for (std::size_t i = first; i < last; ++i) {
          const double* row = s.row(i);
          const auto* periods = train ? train->of(s.sites[i]) : nullptr;
          if (train && !periods) continue;
          for (std::size_t t = 0; t < s.n_times(); ++t)
            if (std::isfinite(row[t]) && (!train || TrainingPeriods::in(*periods, s.time[t]))) f(row[t]);
        }
      };
      each([&](double x) { sum += x; ++n; });
      const long double mean = n ? sum / static_cast<long double>(n) : 0;
      each([&](double x) { sq += (x - mean) * (x - mean); });
      const double sd = n ? static_cast<double>(std::sqrt(sq / static_cast<long double>(n))) : 0.0;
      const std::string where = per_site ? " at site '" + s.sites[g] + "'" : "";
      if (n < 2)
        throw NodeError("variable '" + name + "'" + where + " has " + std::to_string(n) +
                        " training values; at least 2 are needed to fit mean and std" +
                        (per_site ? " (a site outside the training rows needs per_site = false)" : ""));
      if (!(sd > 0))
        throw NodeError("variable '" + name + "'" + where + " is constant (" + num(static_cast<double>(mean)) +
                        ") over its " + std::to_string(n) + " training values: std = 0, cannot normalise");
      st.variables.push_back(name);
      if (per_site) st.sites.push_back(s.sites[g]);
      st.mean.push_back(static_cast<double>(mean));
      st.std.push_back(sd);
      st.n.push_back(static_cast<double>(n));
    }
  }
  return st;
}

Dataset apply_normalization(const Dataset& in, const NormStats& stats, bool inverse) {
  Dataset out = in;
  std::size_t done = 0;
  for (const auto& name : site_time_variables(in)) {
    if (!contains(stats.variables, name)) continue;
    auto s = series::read_site_series(in, name);
    for (std::size_t i = 0; i < s.n_sites(); ++i) {
      const std::size_t r = stats.find(name, s.sites[i]);
      if (r == NormStats::npos)
        throw NodeError("the statistics have no row for variable '" + name + "' at site '" + s.sites[i] +
                        "' (per-site statistics only cover the sites they were fitted on)");
      double* row = s.values.data() + i * s.n_times();
      for (std::size_t t = 0; t < s.n_times(); ++t)
        row[t] = inverse ? denormalize_value(row[t], stats.mean[r], stats.std[r])
                         : normalize_value(row[t], stats.mean[r], stats.std[r]);
    }
    Attributes a = s.attrs;
    if (inverse) {
      if (a.count("units_before_normalization")) a["units"] = a["units_before_normalization"];
      a.erase("units_before_normalization");
      a.erase("normalization");
    } else {
      if (a.count("units")) a["units_before_normalization"] = a["units"];
      a["units"] = "1";
      a["normalization"] = "z-score: (x - mean) / std";
    }
    put_series(out, name, s.values, a, in.var(name).dtype());
    ++done;
  }
  if (!done)
    throw NodeError("none of the statistics' variables (" + join(stats.variables) +
                    ") is a (site, time) variable of the dataset (it has: " + join(site_time_variables(in)) + ")");
  return out;
}

// ---- prep.kalman_smooth ----------------------------------------------------------------------------

std::vector<double> kalman_1d(const double* y, std::size_t n, const KalmanOptions& opt) {
  const double q = opt.process_variance, r = opt.observation_variance;
  std::vector<double> x(n, kNaN), p(n, kNaN), x_pred(n, kNaN), p_pred(n, kNaN);
  std::size_t start = 0;
  while (start < n && !std::isfinite(y[start])) ++start;
  if (start == n) return x;
  x[start] = y[start];
  p[start] = r;
  x_pred[start] = x[start];
  p_pred[start] = p[start];
  for (std::size_t t = start + 1; t < n; ++t) {
    x_pred[t] = x[t - 1];
    p_pred[t] = p[t - 1] + q;
    if (std::isfinite(y[t])) {
      const double gain = p_pred[t] / (p_pred[t] + r);
      x[t] = x_pred[t] + gain * (y[t] - x_pred[t]);
      p[t] = (1 - gain) * p_pred[t];
    } else {  // no observation: prediction only
      x[t] = x_pred[t];
      p[t] = p_pred[t];
    }
  }
  if (opt.smoother)  // Rauch–Tung–Striebel backward pass; the transition is the identity
    for (std::size_t t = n - 1; t-- > start;) {
      const double c = p[t] / p_pred[t + 1];
      x[t] = x[t] + c * (x[t + 1] - x_pred[t + 1]);
      p[t] = p[t] + c * c * (p[t + 1] - p_pred[t + 1]);
    }
  if (!opt.fill_gaps)
    for (std::size_t t = 0; t < n; ++t)
      if (!std::isfinite(y[t])) x[t] = kNaN;
  return x;
}

Dataset kalman_smooth(const Dataset& in, const std::vector<std::string>& variables, const KalmanOptions& opt) {
  Dataset out = in;
  for (const auto& name : variables) {
    auto s = series::read_site_series(in, name);
    require_daily(s.time, "prep.kalman_smooth");
    const std::size_t nt = s.n_times();
    for (std::size_t i = 0; i < s.n_sites(); ++i) {
      const auto x = kalman_1d(s.row(i), nt, opt);
      std::copy(x.begin(), x.end(), s.values.begin() + static_cast<std::ptrdiff_t>(i * nt));
    }
    Attributes a = with_note(s.attrs, "smoothing",
                             std::string(opt.smoother ? "Kalman RTS smoother" : "Kalman filter") +
                                 ", random walk, q = " + num(opt.process_variance) +
                                 ", r = " + num(opt.observation_variance));
    put_series(out, name, s.values, a, in.var(name).dtype());
  }
  return out;
}

// ---- prep.augment ----------------------------------------------------------------------------------

std::uint64_t NormalStream::next_u64() {
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double NormalStream::next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Uniforms in (0, 1]: 53 random bits, offset so log() never sees 0.
  const double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 6.283185307179586 * u2;
  spare_ = radius * std::sin(angle);
  has_spare_ = true;
  return radius * std::cos(angle);
}

Dataset augment(const Dataset& in, const AugmentOptions& opt) {
  if (opt.n_copies < 1) throw NodeError("parameter 'n_copies' must be at least 1");
  if (!(opt.sigma >= 0) || !std::isfinite(opt.sigma)) throw NodeError("parameter 'sigma' must be >= 0");
  const auto vars = select_variables(in, opt.variables, "variables");
  const auto& sites = series::site_names(in);
  const std::size_t ns = sites.size(), nc = opt.n_copies;
  std::vector<std::string> out_sites;
  std::vector<std::size_t> source;  // input row of each output site
  if (opt.keep_original)
    for (std::size_t i = 0; i < ns; ++i) { out_sites.push_back(sites[i]); source.push_back(i); }
  for (std::size_t i = 0; i < ns; ++i)
    for (std::size_t k = 1; k <= nc; ++k) {
      out_sites.push_back(sites[i] + "~aug" + std::to_string(k));
      source.push_back(i);
    }
  {
    std::set<std::string> names(sites.begin(), sites.end());
    for (std::size_t j = opt.keep_original ? ns : 0; j < out_sites.size(); ++j)
      if (names.count(out_sites[j]))
        throw NodeError("augmented site name '" + out_sites[j] + "' is already a site of the input");
  }
  Dataset out = select_sites(in, source);  // every variable and (site) static copied to the new rows
  out.add(series::site_coord(out_sites));
  const std::size_t first_copy = opt.keep_original ? ns : 0;
  const std::size_t n_out = out_sites.size();

  std::vector<series::SiteSeries> data;
  for (const auto& name : vars) data.push_back(series::read_site_series(out, name));
  const std::size_t nt = data.empty() ? 0 : data[0].n_times();
  std::vector<double> site_mean(vars.size() * ns, 0.0);
  for (std::size_t v = 0; v < vars.size(); ++v) {
    const auto src = series::read_site_series(in, vars[v]);
    for (std::size_t i = 0; i < ns; ++i) {
      double sum = 0;
      std::size_t n = 0;
      for (std::size_t t = 0; t < nt; ++t)
        if (std::isfinite(src.row(i)[t])) { sum += src.row(i)[t]; ++n; }
      site_mean[v * ns + i] = n ? sum / static_cast<double>(n) : 0.0;
    }
  }
  // Each output site draws from its own stream, so the work can be split over threads in any way.
  const auto perturb = [&](std::size_t j) {
    NormalStream eps(derive_seed(opt.seed, out_sites[j]));
    const std::size_t i = source[j];
    for (std::size_t v = 0; v < vars.size(); ++v) {
      const bool mult = contains(opt.multiplicative, vars[v]);
      const bool clamp = !contains(opt.may_be_negative, vars[v]);
      const double scale = opt.sigma * std::fabs(site_mean[v * ns + i]);
      double* row = data[v].values.data() + j * nt;
      for (std::size_t t = 0; t < nt; ++t) {
        const double e = eps.next();  // drawn for NaN days too, so a gap does not shift later noise
        if (!std::isfinite(row[t])) continue;
        row[t] = mult ? row[t] * (1.0 + opt.sigma * e) : row[t] + scale * e;
        if (clamp && row[t] < 0) row[t] = 0;
      }
    }
  };
  const std::size_t n_work = n_out - first_copy;
  const std::size_t n_threads = std::max<std::size_t>(1, std::min<std::size_t>(static_cast<std::size_t>(std::max(1, opt.threads)), n_work));
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < n_threads; ++w)
    pool.emplace_back([&, w] {
      for (std::size_t j = first_copy + w; j < n_out; j += n_threads) perturb(j);
    });
  for (auto& th : pool) th.join();
  for (std::size_t v = 0; v < vars.size(); ++v) {
    Attributes a = with_note(data[v].attrs, "augmentation",
                             std::string(contains(opt.multiplicative, vars[v]) ? "multiplicative" : "additive") +
                                 " Gaussian noise, sigma = " + num(opt.sigma) + ", on sites named <site>~aug<k>");
    put_series(out, vars[v], data[v].values, a, in.var(vars[v]).dtype());
  }
  return out;
}

std::string grid_cell(double lat, double lon, double cell_size, double origin_lat, double origin_lon) {
  const auto row = static_cast<long long>(std::floor((lat - origin_lat) / cell_size));
  const auto col = static_cast<long long>(std::floor((lon - origin_lon) / cell_size));
  return std::to_string(row) + "_" + std::to_string(col);
}

double great_circle_km(double lat1, double lon1, double lat2, double lon2) {
  return geo::great_circle_km(lat1, lon1, lat2, lon2);
}

namespace {

// The (site) variable `name` of `holder` for each of `sites`, matched by site name; `what` names the holder.
std::vector<double> site_coordinate(const Dataset& holder, const std::string& name, const std::vector<std::string>& sites,
                                    const std::string& what) {
  if (!holder.has(name) || holder.var(name).dims() != std::vector<std::string>{"site"} ||
      holder.var(name).dtype() == DType::String)
    throw NodeError("mode = \"colocated\" needs the sites' coordinates: " + what + " has no numeric (site) variable '" +
                    name + "' (in degrees)");
  const auto all = holder.var(name).as_double();
  const auto& names = series::site_names(holder);
  std::unordered_map<std::string, std::size_t> row;
  for (std::size_t i = 0; i < names.size(); ++i) row.emplace(names[i], i);
  std::vector<double> v(sites.size());
  for (std::size_t i = 0; i < sites.size(); ++i) {
    const auto it = row.find(sites[i]);
    if (it == row.end()) throw NodeError("site '" + sites[i] + "' of the data is not in " + what + ", so its grid cell is unknown");
    v[i] = all[it->second];
  }
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      throw NodeError("mode = \"colocated\": site '" + sites[i] + "' has no " + name + " (" + num(v[i]) +
                      "), so its grid cell is unknown");
  return v;
}

}  // namespace

ColocatedResult augment_colocated(const Dataset& in, const ColocatedOptions& opt) {
  if (!(opt.sigma >= 0) || !std::isfinite(opt.sigma)) throw NodeError("parameter 'sigma' must be >= 0");
  if (!(opt.cell_size > 0) || !std::isfinite(opt.cell_size)) throw NodeError("parameter 'cell_size' must be > 0 degrees");
  const auto all = site_time_variables(in);
  std::vector<std::string> vars;
  if (opt.variables.empty()) {
    for (const auto& v : all)
      if (!contains(opt.targets, v)) vars.push_back(v);
    if (vars.empty()) throw NodeError("the dataset has no (site, time) forcing variable besides the targets");
  } else {
    vars = select_variables(in, opt.variables, "variables");
    for (const auto& v : vars)
      if (contains(opt.targets, v))
        throw NodeError("parameter 'variables' names '" + v + "', which is a target (parameter 'targets'): targets are never perturbed");
  }
  const auto& sites = series::site_names(in);
  const std::size_t ns = sites.size();
  const Dataset& holder = opt.coordinates ? *opt.coordinates : in;
  const std::string what = opt.coordinates ? "the sites input" : "the dataset";
  const auto lat = site_coordinate(holder, "lat", sites, what), lon = site_coordinate(holder, "lon", sites, what);

  std::vector<std::string> cell(ns);
  std::map<std::string, std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < ns; ++i) {
    cell[i] = grid_cell(lat[i], lon[i], opt.cell_size, opt.origin_lat, opt.origin_lon);
    members[cell[i]].push_back(i);
  }
  std::vector<std::size_t> source(ns);  // the site whose forcing each site gets
  std::vector<double> distance(ns);
  std::vector<std::string> role(ns);
  for (const auto& [id, rows] : members) {
    const std::size_t front = rows.front();
    const double row = std::floor((lat[front] - opt.origin_lat) / opt.cell_size);
    const double col = std::floor((lon[front] - opt.origin_lon) / opt.cell_size);
    const double clat = opt.origin_lat + (row + 0.5) * opt.cell_size, clon = opt.origin_lon + (col + 0.5) * opt.cell_size;
    std::size_t kept = front;
    for (std::size_t i : rows) {
      distance[i] = great_circle_km(lat[i], lon[i], clat, clon);
      if (distance[i] < distance[kept]) kept = i;  // strict: a tie keeps the earlier site
    }
    for (std::size_t i : rows) {
      source[i] = kept;
      role[i] = rows.size() == 1 ? "alone" : (i == kept ? "kept" : "perturbed");
    }
  }
  std::vector<std::size_t> perturbed;
  for (std::size_t i = 0; i < ns; ++i)
    if (role[i] == "perturbed") perturbed.push_back(i);

  ColocatedResult res;
  res.augmented = in;
  res.n_perturbed = perturbed.size();
  std::vector<series::SiteSeries> data;
  for (const auto& name : vars) data.push_back(series::read_site_series(in, name));
  const std::size_t nt = data.empty() ? 0 : data[0].n_times();
  std::vector<double> kept_mean(vars.size() * ns, 0.0);  // filled for the kept sites only
  for (std::size_t v = 0; v < vars.size(); ++v)
    for (std::size_t i = 0; i < ns; ++i) {
      if (role[i] != "kept") continue;
      double sum = 0;
      std::size_t n = 0;
      for (std::size_t t = 0; t < nt; ++t)
        if (std::isfinite(data[v].row(i)[t])) { sum += data[v].row(i)[t]; ++n; }
      kept_mean[v * ns + i] = n ? sum / static_cast<double>(n) : 0.0;
    }
  // Each perturbed site reads only its kept site's row (never perturbed) and draws from its own stream.
  const auto perturb = [&](std::size_t i) {
    NormalStream eps(derive_seed(opt.seed, sites[i]));
    const std::size_t k = source[i];
    for (std::size_t v = 0; v < vars.size(); ++v) {
      const bool mult = contains(opt.multiplicative, vars[v]);
      const bool clamp = !contains(opt.may_be_negative, vars[v]);
      const double scale = opt.sigma * std::fabs(kept_mean[v * ns + k]);
      const double* src = data[v].values.data() + k * nt;
      double* dst = data[v].values.data() + i * nt;
      for (std::size_t t = 0; t < nt; ++t) {
        const double e = eps.next();  // drawn for NaN days too, so a gap does not shift later noise
        if (!std::isfinite(src[t])) { dst[t] = kNaN; continue; }
        double x = mult ? src[t] * (1.0 + opt.sigma * e) : src[t] + scale * e;
        if (clamp && x < 0) x = 0;
        dst[t] = x;
      }
    }
  };
  const std::size_t n_threads = std::max<std::size_t>(
      1, std::min<std::size_t>(static_cast<std::size_t>(std::max(1, opt.threads)), perturbed.size()));
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < n_threads; ++w)
    pool.emplace_back([&, w] {
      for (std::size_t j = w; j < perturbed.size(); j += n_threads) perturb(perturbed[j]);
    });
  for (auto& th : pool) th.join();
  for (std::size_t v = 0; v < vars.size(); ++v) {
    Attributes a = with_note(data[v].attrs, "augmentation",
                             std::string(contains(opt.multiplicative, vars[v]) ? "multiplicative" : "additive") +
                                 " Gaussian noise, sigma = " + num(opt.sigma) +
                                 ", on a copy of the forcing of the site nearest the centre of each " +
                                 num(opt.cell_size) + " degree cell, for its other sites");
    put_series(res.augmented, vars[v], data[v].values, a, in.var(vars[v]).dtype());
  }
  std::vector<std::string> source_site(ns);
  for (std::size_t i = 0; i < ns; ++i) source_site[i] = sites[source[i]];
  res.cells.add_column("site", sites, "", "station");
  res.cells.add_column("cell", cell, "", "grid cell \"<row>_<col>\" counted from the grid origin in cells of cell_size degrees");
  res.cells.add_column("role", role, "", "kept (nearest the cell centre), perturbed (forcing replaced) or alone in its cell");
  res.cells.add_column("source_site", source_site, "", "site whose forcing this site has after augmentation");
  res.cells.add_column("distance_km", distance, "km", "great-circle distance to the cell centre");
  return res;
}

// ---- prep.static_features --------------------------------------------------------------------------

Dataset static_features(const Dataset& in, const std::vector<std::string>& variables, bool with_std,
                        std::vector<std::string>* empty_sites) {
  const auto& sites = series::site_names(in);
  Dataset out;
  out.attrs = in.attrs;
  out.add(series::site_coord(sites));
  for (const auto& v : in.variables())
    if (v.dims() == std::vector<std::string>{"site"} && v.name() != "site") out.add(v);
  for (const auto& name : variables) {
    const auto s = series::read_site_series(in, name);
    std::vector<double> mean(s.n_sites(), kNaN), sd(s.n_sites(), kNaN);
    for (std::size_t i = 0; i < s.n_sites(); ++i) {
      double sum = 0, sq = 0;
      std::size_t n = 0;
      for (std::size_t t = 0; t < s.n_times(); ++t)
        if (std::isfinite(s.row(i)[t])) { sum += s.row(i)[t]; ++n; }
      if (!n) {
        if (empty_sites) empty_sites->push_back(s.sites[i] + "/" + name);
        continue;
      }
      mean[i] = sum / static_cast<double>(n);
      for (std::size_t t = 0; t < s.n_times(); ++t)
        if (std::isfinite(s.row(i)[t])) sq += (s.row(i)[t] - mean[i]) * (s.row(i)[t] - mean[i]);
      sd[i] = std::sqrt(sq / static_cast<double>(n));
    }
    Attributes a;
    if (s.attrs.count("units")) a["units"] = s.attrs.at("units");
    a["long_name"] = "multi-year mean of " + name;
    out.add(Variable(name + "_mean", {"site"}, {sites.size()}, mean, a));
    if (with_std) {
      a["long_name"] = "multi-year standard deviation of " + name;
      out.add(Variable(name + "_std", {"site"}, {sites.size()}, sd, a));
    }
  }
  return out;
}

}  // namespace couplet::prep
