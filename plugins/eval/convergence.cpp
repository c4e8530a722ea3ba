#include "eval/convergence.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

namespace couplet::convergence {

double evaluations_to(const Trace& t, double threshold) {
  for (std::size_t i = 0; i < t.best.size(); ++i)
    if (t.best[i] <= threshold) return t.evaluations[i];
  return std::numeric_limits<double>::quiet_NaN();
}

std::vector<std::pair<std::string, Trace>> read_traces(const Table& t, const std::string& value, const std::string& what) {
  for (const char* c : {"site", "evaluation"})
    if (!t.has(c)) throw std::invalid_argument(what + " has no column '" + c + "' (a tem_wbm.calibrate trace has site, evaluation, rmse)");
  if (!t.has(value)) throw std::invalid_argument(what + " has no column '" + value + "' (parameter 'value')");
  if (t.column("site").is_numeric()) throw std::invalid_argument(what + ": column 'site' must hold names");
  for (const std::string& c : {std::string("evaluation"), value})
    if (!t.column(c).is_numeric()) throw std::invalid_argument(what + ": column '" + c + "' must hold numbers");
  const auto& site = t.strings("site");
  const auto& ev = t.numbers("evaluation");
  const auto& v = t.numbers(value);
  std::vector<std::pair<std::string, Trace>> out;
  std::map<std::string, std::size_t> index;
  for (std::size_t r = 0; r < t.rows(); ++r) {
    if (!std::isfinite(ev[r]))
      throw std::invalid_argument(what + ", row " + std::to_string(r + 1) + " (site '" + site[r] + "'): evaluation is not finite");
    auto [it, fresh] = index.emplace(site[r], out.size());
    if (fresh) out.push_back({site[r], {}});
    Trace& tr = out[it->second].second;
    if (!tr.evaluations.empty() && ev[r] < tr.evaluations.back())
      throw std::invalid_argument(what + ", row " + std::to_string(r + 1) + " (site '" + site[r] +
                                  "'): evaluations go down; a trace lists them in the order they happened");
    tr.evaluations.push_back(ev[r]);
    // NaN (no valid value yet) never meets a target.
    tr.best.push_back(std::isnan(v[r]) ? std::numeric_limits<double>::infinity() : v[r]);
  }
  return out;
}

std::vector<SiteRace> race(const std::vector<std::pair<std::string, Trace>>& a,
                           const std::vector<std::pair<std::string, Trace>>& b, Criterion criterion, double tolerance,
                           std::vector<std::string>* unmatched) {
  std::map<std::string, const Trace*> in_b;
  for (const auto& [s, t] : b) in_b[s] = &t;
  std::vector<SiteRace> out;
  auto final_of = [](const Trace& t) {
    double m = std::numeric_limits<double>::infinity();
    for (double v : t.best) m = std::min(m, v);
    return m;
  };
  for (const auto& [s, ta] : a) {
    auto it = in_b.find(s);
    if (it == in_b.end()) {
      if (unmatched) unmatched->push_back(s);
      continue;
    }
    const Trace& tb = *it->second;
    in_b.erase(it);
    SiteRace r;
    r.site = s;
    r.final_a = final_of(ta), r.final_b = final_of(tb);
    r.target = std::min(r.final_a, r.final_b);
    const double start = ta.best.empty() ? std::numeric_limits<double>::infinity() : ta.best.front();
    if (criterion == Criterion::Relative || !std::isfinite(start))
      r.threshold = r.target * (1 + tolerance);
    else
      r.threshold = r.target + tolerance * std::max(0.0, start - r.target);
    if (std::isfinite(r.target)) {
      r.evals_a = evaluations_to(ta, r.threshold);
      r.evals_b = evaluations_to(tb, r.threshold);
    } else {
      r.evals_a = r.evals_b = std::numeric_limits<double>::quiet_NaN();
    }
    out.push_back(r);
  }
  if (unmatched)
    for (const auto& [s, t] : b)
      if (in_b.count(s)) unmatched->push_back(s);
  return out;
}

}  // namespace couplet::convergence
