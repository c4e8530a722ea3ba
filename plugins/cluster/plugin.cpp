// Plugin "cluster": features for clustering, k-means, the paper's searches over k and over
// initialisations, and the cluster checks (science.md B; docs/models/cluster.md). The algorithms are in
// kmeans.cpp and search.cpp; this file reads inputs, checks them and writes Tables.
#include "cluster/kmeans.hpp"
#include "cluster/regional.hpp"
#include "cluster/search.hpp"
#include "common/geo.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <set>

using namespace couplet;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string list_some(const std::vector<std::string>& names, std::size_t most = 5) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > most) s += " and " + std::to_string(names.size() - most) + " more";
  return s;
}

// ---- features ------------------------------------------------------------------------------------

// A (site) variable of a Dataset as doubles, or a NodeError naming the port.
std::vector<double> site_values(const Dataset& ds, const std::string& port, const std::string& name) {
  if (!ds.has(name)) {
    std::string have;
    for (auto& v : ds.variables()) have += (have.empty() ? "" : ", ") + v.name();
    throw NodeError("input '" + port + "' has no variable '" + name + "' (it has: " + have + ")");
  }
  const Variable& v = ds.var(name);
  if (v.dims().size() != 1 || v.dims()[0] != "site")
    throw NodeError("input '" + port + "': variable '" + name + "' must have the dimension (site)");
  if (v.dtype() == DType::String) throw NodeError("input '" + port + "': variable '" + name + "' holds strings");
  return v.as_double();
}

void run_features(Context& ctx) {
  const auto dynamic = ctx.param<std::vector<std::string>>("dynamic");
  const auto statics_names = ctx.param<std::vector<std::string>>("static");
  if (dynamic.empty() && statics_names.empty()) throw NodeError("parameters 'dynamic' and 'static' are both empty");
  double first = -std::numeric_limits<double>::infinity(), last = std::numeric_limits<double>::infinity();
  if (const auto s = ctx.param<std::string>("start"); !s.empty()) first = static_cast<double>(series::date_param("start", s));
  if (const auto e = ctx.param<std::string>("end"); !e.empty()) last = static_cast<double>(series::date_param("end", e));

  // Means of the dynamic variables over [start, end], read in blocks of sites when the forcing is streamed.
  std::vector<std::string> sites;
  std::vector<double> lat, lon;
  std::vector<std::vector<double>> means(dynamic.size());
  std::size_t days_used = 0;
  auto take = [&](const Dataset& block) {
    const auto& names = series::site_names(block);
    const auto time = series::time_days(block);
    std::vector<std::size_t> used;
    for (std::size_t t = 0; t < time.size(); ++t)
      if (time[t] >= first && time[t] <= last) used.push_back(t);
    if (used.empty()) throw NodeError("input 'forcing': no day lies in start..end");
    days_used = used.size();
    for (std::size_t v = 0; v < dynamic.size(); ++v) {
      const auto s = series::read_site_series(block, dynamic[v]);
      const std::size_t nt = s.n_times();
      for (std::size_t i = 0; i < names.size(); ++i) {
        double sum = 0;
        std::size_t n = 0;
        for (std::size_t t : used) {
          const double x = s.values[i * nt + t];
          if (std::isfinite(x)) {
            sum += x;
            ++n;
          }
        }
        means[v].push_back(n ? sum / static_cast<double>(n) : kNaN);
      }
    }
    sites.insert(sites.end(), names.begin(), names.end());
    for (auto [name, dst] : {std::pair{"lat", &lat}, std::pair{"lon", &lon}}) {
      if (block.has(name)) {
        const auto v = site_values(block, "forcing", name);
        dst->insert(dst->end(), v.begin(), v.end());
      } else {
        dst->insert(dst->end(), names.size(), kNaN);
      }
    }
  };
  try {
    const Chunking ch = ctx.input_chunking("forcing");
    if (ch.streamed() && ch.dim == "site") {
      constexpr std::size_t kBlock = 1024;
      for (std::size_t b = 0; b < ch.length; b += kBlock) {
        take(*ctx.input_rows("forcing", b, std::min(kBlock, ch.length - b)));
        ctx.progress(static_cast<double>(std::min(ch.length, b + kBlock)), static_cast<double>(ch.length), "sites");
        ctx.check_cancelled();
      }
    } else {
      take(ctx.dataset("forcing"));
    }
  } catch (const NodeError& e) {
    const std::string what = e.what();
    throw NodeError(what.rfind("input '", 0) == 0 ? what : "input 'forcing': " + what);
  }
  for (std::size_t v = 0; v < dynamic.size(); ++v) {
    std::vector<std::string> empty;
    for (std::size_t i = 0; i < sites.size(); ++i)
      if (std::isnan(means[v][i])) empty.push_back(sites[i]);
    if (!empty.empty())
      throw NodeError("input 'forcing': '" + dynamic[v] + "' has no value in start..end at " +
                      std::to_string(empty.size()) + " site(s): " + list_some(empty));
  }

  Table out;
  out.add_column("site", sites, "", "site or grid cell");
  std::vector<std::vector<double>> stat(statics_names.size());
  if (!statics_names.empty()) {
    if (!ctx.has_input("statics"))
      throw NodeError("parameter 'static' names variables but input 'statics' is not connected (set static = [] "
                      "to cluster on the forcing alone)");
    const Dataset& st = ctx.dataset("statics");
    const auto& st_sites = series::site_names(st);
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < st_sites.size(); ++i) index[st_sites[i]] = i;
    std::vector<std::string> missing;
    for (const auto& s : sites)
      if (!index.count(s)) missing.push_back(s);
    if (!missing.empty())
      throw NodeError("input 'statics' lacks " + std::to_string(missing.size()) + " of the forcing's sites: " +
                      list_some(missing));
    for (std::size_t v = 0; v < statics_names.size(); ++v) {
      const auto values = site_values(st, "statics", statics_names[v]);
      std::vector<std::string> bad;
      for (std::size_t i = 0; i < sites.size(); ++i) {
        stat[v].push_back(values[index[sites[i]]]);
        if (!std::isfinite(stat[v].back())) bad.push_back(sites[i]);
      }
      if (!bad.empty())
        throw NodeError("input 'statics': '" + statics_names[v] + "' is missing (NaN) at " + std::to_string(bad.size()) +
                        " site(s): " + list_some(bad));
    }
    for (auto [name, dst] : {std::pair{"lat", &lat}, std::pair{"lon", &lon}}) {
      if (!st.has(name)) continue;
      const auto v = site_values(st, "statics", name);
      for (std::size_t i = 0; i < sites.size(); ++i)
        if (std::isnan((*dst)[i])) (*dst)[i] = v[index[sites[i]]];
    }
  }
  out.add_column("lat", lat, "degrees_north", "site latitude (not a feature)");
  out.add_column("lon", lon, "degrees_east", "site longitude (not a feature)");
  for (std::size_t v = 0; v < dynamic.size(); ++v)
    out.add_column(dynamic[v], means[v], "", "mean over " + std::to_string(days_used) + " days");
  for (std::size_t v = 0; v < statics_names.size(); ++v) out.add_column(statics_names[v], stat[v], "", "static");
  ctx.info(std::to_string(sites.size()) + " sites × " + std::to_string(dynamic.size() + statics_names.size()) +
           " features (dynamic means over " + std::to_string(days_used) + " days)");
  ctx.set_output("features", std::make_shared<Table>(std::move(out)));
}

// ---- reading a feature Table ---------------------------------------------------------------------

struct Features {
  std::vector<std::string> sites, names;
  cluster::Points points;
  cluster::Standardisation scale;  // empty when not standardised
  std::vector<double> lat, lon;    // empty when the Table has none
};

Features read_features(const Context& ctx, const std::string& port = "features") {
  const Table& t = ctx.table(port);
  Features f;
  if (!t.has("site") || t.column("site").is_numeric())
    throw NodeError("input '" + port + "' needs a column 'site' of names (as cluster.features writes)");
  f.sites = t.strings("site");
  auto names = ctx.param<std::vector<std::string>>("columns");
  if (names.empty()) {
    for (const auto& c : t.columns())
      if (c.is_numeric() && c.name != "lat" && c.name != "lon") names.push_back(c.name);
    if (names.empty()) throw NodeError("input '" + port + "' has no numeric column besides lat and lon to cluster on");
  }
  std::vector<std::vector<double>> cols;
  for (const auto& n : names) {
    if (!t.has(n)) throw NodeError("parameter 'columns': input '" + port + "' has no column '" + n + "'");
    if (!t.column(n).is_numeric()) throw NodeError("parameter 'columns': column '" + n + "' holds strings");
    cols.push_back(t.numbers(n));
  }
  if (t.rows() < 2) throw NodeError("input '" + port + "' has " + std::to_string(t.rows()) + " row(s): nothing to cluster");
  f.names = names;
  f.points.n = t.rows();
  f.points.d = names.size();
  f.points.x.resize(f.points.n * f.points.d);
  for (std::size_t j = 0; j < names.size(); ++j) std::copy(cols[j].begin(), cols[j].end(), f.points.x.begin() + j * f.points.n);
  try {
    if (ctx.param<bool>("standardise")) {
      f.scale = cluster::standardise(f.points, names);
    } else {
      for (std::size_t j = 0; j < names.size(); ++j)
        for (std::size_t i = 0; i < f.points.n; ++i)
          if (!std::isfinite(f.points.x[j * f.points.n + i]))
            throw std::invalid_argument("feature '" + names[j] + "' is not finite at point " + std::to_string(i));
    }
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    // Name the site rather than the row number.
    const auto at = what.find(" at point ");
    if (at != std::string::npos) what = what.substr(0, at) + " at site '" + f.sites[std::stoul(what.substr(at + 10))] + "'";
    throw NodeError("input '" + port + "': " + what);
  }
  if (t.has("lat") && t.has("lon")) {
    f.lat = t.numbers("lat");
    f.lon = t.numbers("lon");
  }
  return f;
}

cluster::KMeansConfig kmeans_config(const Context& ctx, int k) {
  cluster::KMeansConfig c;
  c.k = k;
  c.algorithm = ctx.param<std::string>("algorithm") == "lloyd" ? cluster::Algorithm::Lloyd : cluster::Algorithm::MiniBatch;
  c.init = ctx.param<std::string>("init") == "random" ? cluster::Init::Random : cluster::Init::PlusPlus;
  c.max_iter = ctx.param<int>("max_iter");
  c.tol = ctx.param<double>("tol");
  c.batch_size = static_cast<std::size_t>(ctx.param<int>("batch_size"));
  c.threads = ctx.threads();
  return c;
}

template <class B> B& kmeans_params(B& b, const std::string& algorithm, int max_iter) {
  return b
      .param(param_strings("columns", std::vector<std::string>{},
                           "feature columns to cluster on; empty = every numeric column except lat and lon"))
      .param(param_bool("standardise", true, "z-score every feature first (population sd, as scikit-learn's StandardScaler)"))
      .param(param_string("algorithm", algorithm, "lloyd (full batch) or minibatch (scikit-learn's MiniBatchKMeans update "
                                                  "and early stop)")
                 .one_of({"lloyd", "minibatch"}))
      .param(param_string("init", "k-means++", "initial centres: greedy k-means++ or k random points").one_of({"k-means++", "random"}))
      .param(param_int("max_iter", max_iter, "Lloyd: iterations; minibatch: passes over the data").at_least(1))
      .param(param_float("tol", 1e-4, "Lloyd: stop when the squared centre shift ≤ tol × mean feature variance").at_least(0))
      .param(param_int("batch_size", 1024, "minibatch: points per step").at_least(1));
}

// Cluster labels and centres as Tables (centres in the features' own units).
std::shared_ptr<Table> assignment_table(const Features& f, const std::vector<int>& labels, const std::vector<double>* s) {
  auto t = std::make_shared<Table>();
  t->add_column("site", f.sites);
  std::vector<double> c(labels.begin(), labels.end());
  t->add_column("cluster", c, "", "0-based cluster number");
  if (s) t->add_column("silhouette", *s, "", "s(i), exact");
  return t;
}

std::shared_ptr<Table> centers_table(const Features& f, const cluster::KMeansResult& r) {
  auto t = std::make_shared<Table>();
  std::vector<double> id, size;
  const auto sizes = cluster::cluster_sizes(r.labels, r.k);
  for (int c = 0; c < r.k; ++c) {
    id.push_back(c);
    size.push_back(static_cast<double>(sizes[static_cast<std::size_t>(c)]));
  }
  t->add_column("cluster", id);
  t->add_column("size", size, "", "members");
  for (std::size_t j = 0; j < f.names.size(); ++j) {
    std::vector<double> v;
    for (int c = 0; c < r.k; ++c) {
      double x = r.centers[static_cast<std::size_t>(c) * r.d + j];
      if (!f.scale.sd.empty()) x = x * f.scale.sd[j] + f.scale.mean[j];
      v.push_back(x);
    }
    t->add_column(f.names[j], v, "", "centre, in the feature's units");
  }
  return t;
}

template <class E> [[noreturn]] void rethrow_as_node_error(const E& e) { throw NodeError(e.what()); }

// ---- nodes ---------------------------------------------------------------------------------------

void run_kmeans(Context& ctx) {
  Features f = read_features(ctx);
  const int k = ctx.param<int>("k");
  if (static_cast<std::size_t>(k) >= f.points.n)
    throw NodeError("parameter 'k' = " + std::to_string(k) + " needs more than " + std::to_string(f.points.n) + " sites");
  const auto cfg = kmeans_config(ctx, k);
  const int n_init = ctx.param<int>("n_init");
  if (cfg.algorithm == cluster::Algorithm::MiniBatch) cluster::add_row_copy(f.points);
  cluster::KMeansResult best;
  for (int r = 0; r < n_init; ++r) {
    ctx.check_cancelled();
    auto run = cluster::kmeans(f.points, cfg, cluster::candidate_seed(ctx.seed(), static_cast<std::size_t>(r)));
    if (r == 0 || run.inertia < best.inertia) best = std::move(run);
    ctx.progress(r + 1, n_init, "initialisations");
  }
  const auto sizes = cluster::cluster_sizes(best.labels, k);
  const auto empty = std::count(sizes.begin(), sizes.end(), std::size_t{0});
  if (empty) ctx.warn(std::to_string(empty) + " of the " + std::to_string(k) + " clusters ended empty");
  const auto mode = ctx.param<std::string>("silhouette");
  double exact = kNaN, simplified = kNaN;
  std::vector<double> per;
  if (k >= 2 && mode != "none") {
    simplified = cluster::simplified_silhouette(f.points, best.labels, ctx.threads());
    if (mode == "exact") exact = cluster::silhouette(f.points, best.labels, ctx.threads(), &per);
  }
  ctx.info("k = " + std::to_string(k) + ": inertia " + std::to_string(best.inertia) +
           (std::isnan(exact) ? "" : ", silhouette " + std::to_string(exact)) + " (" + std::to_string(best.iterations) +
           (cfg.algorithm == cluster::Algorithm::Lloyd ? " iterations)" : " steps)"));
  ctx.set_output("assignment", assignment_table(f, best.labels, per.empty() ? nullptr : &per));
  ctx.set_output("centers", centers_table(f, best));
  auto s = std::make_shared<Table>();
  s->add_column("k", std::vector<double>{static_cast<double>(k)});
  s->add_column("n", std::vector<double>{static_cast<double>(f.points.n)}, "", "points clustered");
  s->add_column("inertia", std::vector<double>{best.inertia}, "", "Σ squared distance to the centre (standardised units)");
  s->add_column("silhouette", std::vector<double>{exact}, "", "exact silhouette (NaN unless silhouette = exact)");
  s->add_column("simplified_silhouette", std::vector<double>{simplified});
  s->add_column("iterations", std::vector<double>{static_cast<double>(best.iterations)});
  s->add_column("converged", std::vector<double>{best.converged ? 1.0 : 0.0});
  ctx.set_output("summary", s);
}

void run_select_k(Context& ctx) {
  Features f = read_features(ctx);
  cluster::SelectKConfig cfg;
  cfg.k_min = ctx.param<int>("k_min");
  cfg.k_max = ctx.param<int>("k_max");
  cfg.rounds = static_cast<std::size_t>(ctx.param<int>("rounds"));
  cfg.kmeans = kmeans_config(ctx, 2);
  cfg.score = ctx.param<std::string>("score") == "exact" ? cluster::Score::Exact : cluster::Score::Centre;
  cfg.threads = ctx.threads();
  if (cfg.kmeans.algorithm == cluster::Algorithm::MiniBatch) cluster::add_row_copy(f.points);
  if (cfg.score == cluster::Score::Exact && f.points.n > 5000)
    ctx.warn("score = exact on " + std::to_string(f.points.n) + " points costs O(n²) per run: expect a long run");
  cluster::SelectKResult r;
  try {
    r = cluster::select_k(f.points, cfg, ctx.seed(), [&](std::size_t done, std::size_t total) {
      ctx.check_cancelled();
      ctx.progress(static_cast<double>(done), static_cast<double>(total), "runs");
    });
  } catch (const NodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw NodeError(e.what());
  }
  auto rounds = std::make_shared<Table>();
  std::vector<double> idx, best;
  for (std::size_t i = 0; i < r.scores.size(); ++i) {
    idx.push_back(static_cast<double>(i));
    best.push_back(r.best_k[i]);
  }
  rounds->add_column("round", idx);
  rounds->add_column("best_k", best, "", "k with the highest score in this round");
  for (std::size_t j = 0; j < r.ks.size(); ++j) {
    std::vector<double> col;
    for (const auto& row : r.scores) col.push_back(row[j]);
    rounds->add_column("score_k" + std::to_string(r.ks[j]), col);
  }
  auto counts = std::make_shared<Table>();
  std::vector<double> ks, chosen, mean;
  for (std::size_t j = 0; j < r.ks.size(); ++j) {
    ks.push_back(r.ks[j]);
    chosen.push_back(static_cast<double>(r.chosen[j]));
    double s = 0;
    std::size_t n = 0;
    for (const auto& row : r.scores)
      if (!std::isnan(row[j])) {
        s += row[j];
        ++n;
      }
    mean.push_back(n ? s / static_cast<double>(n) : kNaN);
  }
  counts->add_column("k", ks);
  counts->add_column("chosen", chosen, "", "rounds in which this k scored best");
  counts->add_column("mean_score", mean);
  auto choice = std::make_shared<Table>();
  choice->add_column("k", std::vector<double>{static_cast<double>(r.k)});
  choice->add_column("chosen", std::vector<double>{static_cast<double>(*std::max_element(r.chosen.begin(), r.chosen.end()))});
  choice->add_column("rounds", std::vector<double>{static_cast<double>(cfg.rounds)});
  ctx.info("k = " + std::to_string(r.k) + " chosen in " + std::to_string(static_cast<int>(choice->numbers("chosen")[0])) +
           " of " + std::to_string(cfg.rounds) + " rounds");
  ctx.set_output("rounds", rounds);
  ctx.set_output("counts", counts);
  ctx.set_output("choice", choice);
}

// Nearest feature row (great-circle) of each site of the `sites` Dataset.
struct SiteCells {
  std::vector<std::string> sites;
  std::vector<std::size_t> cells;
  std::vector<double> km;
};

SiteCells map_sites(const Context& ctx, const Features& f) {
  std::size_t located = 0;
  for (std::size_t i = 0; i < f.lat.size(); ++i) located += std::isfinite(f.lat[i]) && std::isfinite(f.lon[i]);
  if (located == 0)
    throw NodeError("input 'features' has no lat and lon values (its inputs had no coordinates): sites cannot be "
                    "mapped to its rows");
  const Dataset& ds = ctx.dataset("sites");
  SiteCells m;
  m.sites = series::site_names(ds);
  const auto lat = site_values(ds, "sites", "lat"), lon = site_values(ds, "sites", "lon");
  const double max_km = ctx.param<double>("max_distance_km");
  std::vector<std::string> far;
  for (std::size_t s = 0; s < m.sites.size(); ++s) {
    if (!std::isfinite(lat[s]) || !std::isfinite(lon[s]))
      throw NodeError("input 'sites': site '" + m.sites[s] + "' has no coordinates");
    std::size_t best = 0;
    double bd = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < f.lat.size(); ++i) {
      const double d = geo::great_circle_km(lat[s], lon[s], f.lat[i], f.lon[i]);
      if (d < bd) {  // false for NaN: rows without coordinates are never chosen
        bd = d;
        best = i;
      }
    }
    m.cells.push_back(best);
    m.km.push_back(bd);
    if (bd > max_km) far.push_back(m.sites[s] + " (" + std::to_string(static_cast<int>(bd)) + " km)");
  }
  if (!far.empty())
    throw NodeError("input 'sites': " + std::to_string(far.size()) + " site(s) lie farther than max_distance_km = " +
                    std::to_string(max_km) + " from every row of 'features': " + list_some(far));
  return m;
}

void run_search_init(Context& ctx) {
  Features f = read_features(ctx);
  int k = ctx.param<int>("k");
  if (ctx.has_input("choice")) {
    const Table& c = ctx.table("choice");
    if (!c.has("k") || !c.column("k").is_numeric() || c.rows() < 1)
      throw NodeError("input 'choice' needs a numeric column 'k' (as cluster.select_k's choice)");
    const double v = c.numbers("k")[0];
    if (!(v >= 2 && v <= 1e6) || v != std::floor(v))
      throw NodeError("input 'choice': k = " + std::to_string(v) + " is not a whole number in 2..1e6");
    k = static_cast<int>(v);
  }
  if (static_cast<std::size_t>(k) >= f.points.n)
    throw NodeError("parameter 'k' = " + std::to_string(k) + " needs more than " + std::to_string(f.points.n) + " rows");
  const SiteCells sc = map_sites(ctx, f);
  cluster::SearchConfig cfg;
  cfg.kmeans = kmeans_config(ctx, k);
  cfg.candidates = static_cast<std::size_t>(ctx.param<int>("candidates"));
  cfg.min_sites = static_cast<std::size_t>(ctx.param<int>("min_sites"));
  cfg.refine = static_cast<std::size_t>(ctx.param<int>("refine"));
  cfg.threads = ctx.threads();
  if (sc.sites.size() < cfg.min_sites * static_cast<std::size_t>(k))
    throw NodeError(std::to_string(sc.sites.size()) + " sites cannot put min_sites = " + std::to_string(cfg.min_sites) +
                    " in each of k = " + std::to_string(k) + " clusters");
  if (cfg.kmeans.algorithm == cluster::Algorithm::MiniBatch) cluster::add_row_copy(f.points);
  cluster::SearchResult r;
  try {
    r = cluster::search_init(f.points, sc.cells, cfg, ctx.seed(), [&](std::size_t done, std::size_t total) {
      ctx.check_cancelled();
      ctx.progress(static_cast<double>(done), static_cast<double>(total), "initialisations");
    });
  } catch (const NodeError&) {
    throw;
  } catch (const std::exception& e) {
    throw NodeError(e.what());
  }
  const auto& best = r.candidates[r.best];
  ctx.info(std::to_string(r.feasible) + " of " + std::to_string(cfg.candidates) + " initialisations feasible (≥ " +
           std::to_string(cfg.min_sites) + " sites per cluster); chosen #" + std::to_string(r.best) + ", silhouette " +
           std::to_string(best.exact));
  ctx.set_output("assignment", assignment_table(f, r.clustering.labels, &r.silhouette_per_point));
  ctx.set_output("centers", centers_table(f, r.clustering));
  auto sites = std::make_shared<Table>();
  std::vector<std::string> cell;
  std::vector<double> cl;
  for (std::size_t s = 0; s < sc.sites.size(); ++s) {
    cell.push_back(f.sites[sc.cells[s]]);
    cl.push_back(r.clustering.labels[sc.cells[s]]);
  }
  sites->add_column("site", sc.sites);
  sites->add_column("cell", cell, "", "the nearest row of 'features'");
  sites->add_column("distance_km", sc.km, "km");
  sites->add_column("cluster", cl);
  ctx.set_output("site_clusters", sites);
  auto cand = std::make_shared<Table>();
  std::vector<double> index, screening, exact, inertia, min_sites, feasible;
  for (const auto& c : r.candidates) {
    index.push_back(static_cast<double>(c.index));
    screening.push_back(c.screening);
    exact.push_back(c.exact);
    inertia.push_back(c.inertia);
    min_sites.push_back(static_cast<double>(c.min_sites));
    feasible.push_back(c.feasible ? 1 : 0);
  }
  cand->add_column("candidate", index, "", "seed = derive_seed(node seed, \"init/<candidate>\")");
  cand->add_column("centre_silhouette", screening, "", "screening score");
  cand->add_column("silhouette", exact, "", "exact; NaN unless among the refined");
  cand->add_column("inertia", inertia);
  cand->add_column("min_sites", min_sites, "", "sites in the smallest cluster");
  cand->add_column("feasible", feasible);
  ctx.set_output("candidates", cand);
  auto s = std::make_shared<Table>();
  s->add_column("k", std::vector<double>{static_cast<double>(k)});
  s->add_column("candidates", std::vector<double>{static_cast<double>(cfg.candidates)});
  s->add_column("feasible", std::vector<double>{static_cast<double>(r.feasible)});
  s->add_column("chosen", std::vector<double>{static_cast<double>(r.best)});
  s->add_column("silhouette", std::vector<double>{best.exact}, "", "exact silhouette of the chosen clustering");
  s->add_column("centre_silhouette", std::vector<double>{best.screening});
  s->add_column("min_sites", std::vector<double>{static_cast<double>(best.min_sites)});
  ctx.set_output("summary", s);
}

void run_checks(Context& ctx) {
  const Table& groups = ctx.table("site_clusters");
  if (!groups.has("site") || !groups.has("cluster") || !groups.column("cluster").is_numeric())
    throw NodeError("input 'site_clusters' needs columns 'site' and 'cluster' (as cluster.search_init writes)");
  const auto obs = series::read_site_series(ctx.dataset("observation"), ctx.param<std::string>("variable"));
  std::map<std::string, std::size_t> row;
  for (std::size_t i = 0; i < obs.sites.size(); ++i) row[obs.sites[i]] = i;
  const auto& names = groups.strings("site");
  const auto& label = groups.numbers("cluster");
  std::vector<std::string> missing;
  std::vector<double> values;
  std::vector<int> cluster;
  int k = 0;
  const std::size_t nt = obs.n_times();
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto it = row.find(names[i]);
    if (it == row.end()) {
      missing.push_back(names[i]);
      continue;
    }
    if (!(label[i] >= 0 && label[i] < 1e6) || label[i] != std::floor(label[i]))
      throw NodeError("input 'site_clusters': site '" + names[i] + "' has cluster " + std::to_string(label[i]) +
                      " (expected 0, 1, 2, …)");
    cluster.push_back(static_cast<int>(label[i]));
    k = std::max(k, cluster.back() + 1);
    values.insert(values.end(), obs.values.begin() + static_cast<std::ptrdiff_t>(it->second * nt),
                  obs.values.begin() + static_cast<std::ptrdiff_t>((it->second + 1) * nt));
  }
  if (!missing.empty())
    throw NodeError("input 'observation' lacks " + std::to_string(missing.size()) + " of the clustered sites: " +
                    list_some(missing));
  const std::size_t ns = cluster.size();
  const auto pr = cluster::pairwise_r(values, ns, nt, cluster, k, static_cast<std::size_t>(ctx.param<int>("min_overlap")),
                                      ctx.threads());
  std::vector<double> mean(ns, kNaN), sd(ns, kNaN);
  for (std::size_t s = 0; s < ns; ++s) {
    double sum = 0, sq = 0;
    std::size_t n = 0;
    for (std::size_t t = 0; t < nt; ++t) {
      const double x = values[s * nt + t];
      if (std::isnan(x)) continue;
      sum += x;
      ++n;
    }
    if (n >= 2) {
      mean[s] = sum / static_cast<double>(n);
      for (std::size_t t = 0; t < nt; ++t) {
        const double x = values[s * nt + t];
        if (!std::isnan(x)) sq += (x - mean[s]) * (x - mean[s]);
      }
      sd[s] = std::sqrt(sq / static_cast<double>(n - 1));
    }
  }
  const auto a_mean = cluster::one_way_anova(mean, cluster, k), a_sd = cluster::one_way_anova(sd, cluster, k);
  auto summary = std::make_shared<Table>();
  summary->add_column("check", std::vector<std::string>{"within_cluster_mean_r", "all_sites_mean_r", "anova_mean_F",
                                                        "anova_mean_p", "anova_std_F", "anova_std_p"});
  summary->add_column("value", std::vector<double>{pr.within, pr.all, a_mean.f, a_mean.p, a_sd.f, a_sd.p});
  summary->add_column("n", std::vector<double>{static_cast<double>(pr.within_pairs), static_cast<double>(pr.all_pairs),
                                               static_cast<double>(a_mean.n), static_cast<double>(a_mean.n),
                                               static_cast<double>(a_sd.n), static_cast<double>(a_sd.n)},
                      "", "pairs (r) or sites (ANOVA)");
  ctx.set_output("summary", summary);
  auto per = std::make_shared<Table>();
  std::vector<double> id, sites, pairs, r, m, s;
  for (int c = 0; c < k; ++c) {
    const auto cc = static_cast<std::size_t>(c);
    double ms = 0, ss = 0, n = 0;
    for (std::size_t i = 0; i < ns; ++i)
      if (cluster[i] == c && !std::isnan(mean[i])) {
        ms += mean[i];
        ss += sd[i];
        n += 1;
      }
    id.push_back(c);
    sites.push_back(static_cast<double>(std::count(cluster.begin(), cluster.end(), c)));
    pairs.push_back(static_cast<double>(pr.cluster_pairs[cc]));
    r.push_back(pr.cluster_mean[cc]);
    m.push_back(n ? ms / n : kNaN);
    s.push_back(n ? ss / n : kNaN);
  }
  per->add_column("cluster", id);
  per->add_column("sites", sites);
  per->add_column("pairs", pairs, "", "site pairs with r");
  per->add_column("mean_r", r);
  per->add_column("ssm_mean", m, obs.attrs.count("units") ? obs.attrs.at("units") : "", "mean over sites of the site mean");
  per->add_column("ssm_std", s, obs.attrs.count("units") ? obs.attrs.at("units") : "", "mean over sites of the site std");
  ctx.set_output("per_cluster", per);
  ctx.info("mean pairwise r within clusters " + std::to_string(pr.within) + " vs " + std::to_string(pr.all) +
           " over all sites; ANOVA of site means F = " + std::to_string(a_mean.f) + ", p = " + std::to_string(a_mean.p));
}


// ---- regional prediction -------------------------------------------------------------------------

// Group label of each of `sites` from a Table (site, column); NodeError naming sites without one.
std::vector<int> groups_for(const Table& t, const std::string& column, const std::vector<std::string>& sites,
                            const std::string& port, int* k) {
  if (!t.has("site") || t.column("site").is_numeric() || !t.has(column) || !t.column(column).is_numeric())
    throw NodeError("input '" + port + "' needs columns 'site' (names) and '" + column + "' (numbers)");
  std::map<std::string, double> g;
  const auto& names = t.strings("site");
  const auto& col = t.numbers(column);
  for (std::size_t i = 0; i < t.rows(); ++i) g[names[i]] = col[i];
  std::vector<int> out;
  std::vector<std::string> missing;
  *k = 0;
  for (const auto& s : sites) {
    auto it = g.find(s);
    if (it == g.end() || !(it->second >= 0 && it->second < 1e6) || it->second != std::floor(it->second)) {
      missing.push_back(s);
      out.push_back(-1);
      continue;
    }
    out.push_back(static_cast<int>(it->second));
    *k = std::max(*k, out.back() + 1);
  }
  if (!missing.empty())
    throw NodeError("input '" + port + "' has no " + column + " (a whole number ≥ 0) for " + std::to_string(missing.size()) +
                    " site(s): " + list_some(missing));
  return out;
}

struct Paired {
  series::SiteSeries pred;
  std::vector<double> ref;  // aligned on pred's sites and days
  std::string variable, units;
};

Paired read_pair(const Context& ctx) {
  Paired p;
  p.variable = ctx.param<std::string>("variable");
  auto pv = ctx.param<std::string>("pred_variable");
  if (pv.empty()) pv = p.variable;
  try {
    p.pred = series::read_site_series(ctx.dataset("prediction"), pv);
  } catch (const NodeError& e) {
    throw NodeError(std::string("input 'prediction': ") + e.what());
  }
  series::SiteSeries ref;
  try {
    ref = series::read_site_series(ctx.dataset("reference"), p.variable);
    p.ref = series::align(ref, p.pred.sites, p.pred.time, "reference", "prediction");
  } catch (const NodeError& e) {
    const std::string what = e.what();
    throw NodeError(what.rfind("input '", 0) == 0 ? what : "input 'reference': " + what);
  }
  p.units = ref.attrs.count("units") ? ref.attrs.at("units") : "";
  return p;
}

void run_initial_window(Context& ctx) {
  const auto variable = ctx.param<std::string>("variable");
  const Dataset& ref_ds = ctx.dataset("reference");
  auto ref = series::read_site_series(ref_ds, variable);
  const std::size_t ns = ref.n_sites(), nt = ref.n_times();
  const auto window = static_cast<std::size_t>(ctx.param<int>("window"));
  std::size_t t1 = window;
  if (const auto start = ctx.param<std::string>("start"); !start.empty()) {
    const double day = static_cast<double>(series::date_param("start", start));
    const auto it = std::find(ref.time.begin(), ref.time.end(), day);
    if (it == ref.time.end()) throw NodeError("parameter 'start' (" + start + ") is not a day of the reference");
    t1 = static_cast<std::size_t>(it - ref.time.begin());
  }
  if (t1 >= nt)
    throw NodeError("the reference has " + std::to_string(nt) + " day(s): none is left to predict after a " +
                    std::to_string(window) + "-day window");
  if (t1 < window)
    throw NodeError("the reference has " + std::to_string(t1) + " day(s) before the first predicted day; the window needs " +
                    std::to_string(window));
  const std::size_t t0 = t1 - window;
  const Dataset& st = ctx.dataset("statics");
  const auto& st_sites = series::site_names(st);
  std::map<std::string, std::size_t> row;
  for (std::size_t i = 0; i < st_sites.size(); ++i) row[st_sites[i]] = i;
  const auto slat = site_values(st, "statics", "lat"), slon = site_values(st, "statics", "lon");
  std::vector<double> lat, lon;
  std::vector<std::string> missing;
  for (const auto& s : ref.sites) {
    auto it = row.find(s);
    if (it == row.end()) {
      missing.push_back(s);
      continue;
    }
    lat.push_back(slat[it->second]);
    lon.push_back(slon[it->second]);
    if (!std::isfinite(lat.back()) || !std::isfinite(lon.back()))
      throw NodeError("input 'statics': cell '" + s + "' has no coordinates (lat/lon NaN)");
  }
  if (!missing.empty())
    throw NodeError("input 'statics' lacks " + std::to_string(missing.size()) + " of the reference's sites: " + list_some(missing));
  const auto neighbours = cluster::nearest_cells(lat, lon, static_cast<std::size_t>(ctx.param<int>("neighbours")),
                                                 ctx.param<double>("max_distance_km"), ctx.threads());
  std::vector<double> v(ns * nt, kNaN);
  for (std::size_t c = 0; c < ns; ++c)
    for (std::size_t t = t0; t < t1; ++t) v[c * nt + t] = ref.values[c * nt + t];
  std::size_t observed = 0;
  for (std::size_t c = 0; c < ns; ++c)
    for (std::size_t t = t0; t < t1; ++t) observed += !std::isnan(v[c * nt + t]);
  std::size_t filled = 0;
  const std::size_t still = cluster::fill_from_neighbours(v, nt, t0, t1, neighbours, &filled);
  std::size_t empty_cells = 0;
  for (std::size_t c = 0; c < ns; ++c) {
    bool any = false;
    for (std::size_t t = t0; t < t1 && !any; ++t) any = !std::isnan(v[c * nt + t]);
    empty_cells += !any;
  }
  ctx.info(std::to_string(window) + "-day window " + format_date(static_cast<std::int64_t>(ref.time[t0])) + ".." +
           format_date(static_cast<std::int64_t>(ref.time[t1 - 1])) + ": " + std::to_string(observed) + " cell-days observed, " +
           std::to_string(filled) + " filled from neighbours, " + std::to_string(still) + " still missing");
  if (empty_cells)
    ctx.warn(std::to_string(empty_cells) + " cell(s) have no value in the whole window (no observed neighbour within "
             "max_distance_km): a rollout cannot start there");
  Attributes a = ref.attrs;
  a["long_name"] = variable + " of the initial window (gaps filled from the nearest observed cell); NaN outside it";
  ctx.set_output("window", std::make_shared<Dataset>(series::make_site_dataset(ref.sites, ref.time, variable, v, a)));
}

void run_post_calibrate(Context& ctx) {
  Paired p = read_pair(ctx);
  const std::size_t ns = p.pred.n_sites(), nt = p.pred.n_times();
  int k = 0;
  const auto group = groups_for(ctx.table("groups"), ctx.param<std::string>("group_column"), p.pred.sites, "groups", &k);
  const double min_ratio = ctx.param<double>("min_valid_ratio");
  std::vector<std::vector<std::size_t>> use(static_cast<std::size_t>(k));
  for (std::size_t c = 0; c < ns; ++c) {
    double days = 0, valid = 0;
    for (std::size_t t = 0; t < nt; ++t)
      if (std::isfinite(p.pred.values[c * nt + t])) {
        days += 1;
        valid += std::isfinite(p.ref[c * nt + t]);
      }
    if (days > 0 && valid / days >= min_ratio) use[static_cast<std::size_t>(group[c])].push_back(c);
  }
  std::vector<cluster::LinearFit> fits(static_cast<std::size_t>(k));
  std::vector<double> id, a, b, r2, cells, pairs, fitted;
  for (int g = 0; g < k; ++g) {
    auto& f = fits[static_cast<std::size_t>(g)];
    f = cluster::fit_linear(p.pred.values, p.ref, nt, use[static_cast<std::size_t>(g)]);
    if (!f.fitted)
      ctx.warn("cluster " + std::to_string(g) + ": too few cells pass min_valid_ratio (" + std::to_string(f.cells) +
               " cells, " + std::to_string(f.pairs) + " pairs) for a regression; left uncalibrated");
    id.push_back(g);
    a.push_back(f.fitted ? f.intercept : kNaN);
    b.push_back(f.fitted ? f.slope : kNaN);
    r2.push_back(f.fitted ? f.r2 : kNaN);
    cells.push_back(static_cast<double>(f.cells));
    pairs.push_back(static_cast<double>(f.pairs));
    fitted.push_back(f.fitted);
  }
  std::vector<double> out(p.pred.values);
  for (std::size_t c = 0; c < ns; ++c) {
    const auto& f = fits[static_cast<std::size_t>(group[c])];
    if (!f.fitted) continue;
    for (std::size_t t = 0; t < nt; ++t) out[c * nt + t] = f.intercept + f.slope * out[c * nt + t];
  }
  Attributes attrs = p.pred.attrs;
  attrs["post_calibration"] = "per-cluster OLS on the reference (cluster.post_calibrate)";
  ctx.set_output("prediction",
                 std::make_shared<Dataset>(series::make_site_dataset(p.pred.sites, p.pred.time, p.variable, out, attrs)));
  auto t = std::make_shared<Table>();
  t->add_column("cluster", id);
  t->add_column("intercept", a, p.units);
  t->add_column("slope", b);
  t->add_column("r2", r2, "", "of the fit");
  t->add_column("cells", cells, "", "cells the fit used (valid ratio ≥ min_valid_ratio)");
  t->add_column("pairs", pairs);
  t->add_column("fitted", fitted);
  ctx.set_output("coefficients", t);
}

void run_evaluate(Context& ctx) {
  Paired p = read_pair(ctx);
  const std::size_t ns = p.pred.n_sites(), nt = p.pred.n_times();
  {  // days outside start..end are not evaluated
    double first = -std::numeric_limits<double>::infinity(), last = std::numeric_limits<double>::infinity();
    if (const auto v = ctx.param<std::string>("start"); !v.empty()) first = static_cast<double>(series::date_param("start", v));
    if (const auto v = ctx.param<std::string>("end"); !v.empty()) last = static_cast<double>(series::date_param("end", v));
    for (std::size_t t = 0; t < nt; ++t)
      if (p.pred.time[t] < first || p.pred.time[t] > last)
        for (std::size_t c = 0; c < ns; ++c) p.pred.values[c * nt + t] = kNaN;
  }
  int k = 0;
  const auto group = groups_for(ctx.table("groups"), ctx.param<std::string>("group_column"), p.pred.sites, "groups", &k);
  const double min_ratio = ctx.param<double>("min_valid_ratio"), min_std = ctx.param<double>("min_std");
  std::vector<double> lat(ns, kNaN);
  if (ctx.has_input("statics")) {
    const Dataset& st = ctx.dataset("statics");
    const auto& names = series::site_names(st);
    const auto v = site_values(st, "statics", "lat");
    std::map<std::string, double> m;
    for (std::size_t i = 0; i < names.size(); ++i) m[names[i]] = v[i];
    for (std::size_t c = 0; c < ns; ++c)
      if (auto it = m.find(p.pred.sites[c]); it != m.end()) lat[c] = it->second;
  }
  std::vector<cluster::CellScore> sc(ns);
  std::vector<double> pp, rr;
  for (std::size_t c = 0; c < ns; ++c) {
    pp.clear();
    rr.clear();
    for (std::size_t t = 0; t < nt; ++t)
      if (std::isfinite(p.pred.values[c * nt + t])) {  // the evaluation period of a cell: its predicted days
        pp.push_back(p.pred.values[c * nt + t]);
        rr.push_back(p.ref[c * nt + t]);
      }
    sc[c] = cluster::score_cell(pp.data(), rr.data(), pp.size(), min_ratio, min_std);
  }
  auto per = std::make_shared<Table>();
  std::vector<double> g(group.begin(), group.end()), n, vr, sd, rmse, r, el;
  for (const auto& s : sc) {
    n.push_back(static_cast<double>(s.n));
    vr.push_back(s.valid_ratio);
    sd.push_back(s.ref_std);
    rmse.push_back(s.rmse);
    r.push_back(s.r);
    el.push_back(s.eligible);
  }
  per->add_column("site", p.pred.sites);
  per->add_column("cluster", g);
  per->add_column("lat", lat, "degrees_north");
  per->add_column("n", n, "", "days with a prediction and a reference value");
  per->add_column("valid_ratio", vr, "", "reference days / predicted days");
  per->add_column("ref_std", sd, p.units);
  per->add_column("rmse", rmse, p.units);
  per->add_column("r", r, "", "Pearson r; NaN unless eligible");
  per->add_column("eligible", el, "", "valid_ratio ≥ min_valid_ratio, ref_std ≥ min_std and n ≥ 3");
  ctx.set_output("per_cell", per);

  // Cluster means (RMSE over cells with pairs, r over eligible cells) and their weighted mean (equation 7:
  // weights = cells counted, so it equals the mean over all such cells).
  auto mean_of = [&](const std::vector<std::size_t>& idx, bool use_r) {
    double s = 0, m = 0;
    for (auto c : idx) {
      const double v = use_r ? sc[c].r : sc[c].rmse;
      if (std::isfinite(v)) {
        s += v;
        m += 1;
      }
    }
    return std::make_pair(m ? s / m : kNaN, m);
  };
  auto pc = std::make_shared<Table>();
  std::vector<double> id, cells, elig, mr, mrr;
  double wr = 0, wn = 0, wq = 0, wqn = 0;
  for (int c = 0; c < k; ++c) {
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < ns; ++i)
      if (group[i] == c) idx.push_back(i);
    const auto [q, qn] = mean_of(idx, false);
    const auto [rv, rn] = mean_of(idx, true);
    id.push_back(c);
    cells.push_back(static_cast<double>(idx.size()));
    elig.push_back(static_cast<double>(std::count_if(idx.begin(), idx.end(), [&](std::size_t i) { return sc[i].eligible; })));
    mr.push_back(q);
    mrr.push_back(rv);
    if (rn > 0) {
      wr += rn * rv;
      wn += rn;
    }
    if (qn > 0) {
      wq += qn * q;
      wqn += qn;
    }
  }
  pc->add_column("cluster", id);
  pc->add_column("cells", cells);
  pc->add_column("eligible", elig, "", "cells passing the eligibility rule");
  pc->add_column("rmse", mr, p.units, "mean over the cluster's cells");
  pc->add_column("r", mrr, "", "mean over the cluster's eligible cells");
  ctx.set_output("per_cluster", pc);
  const auto n_eligible = std::count_if(sc.begin(), sc.end(), [](const cluster::CellScore& c) { return c.eligible; });
  if (static_cast<double>(n_eligible) > wn)
    ctx.warn(std::to_string(n_eligible - static_cast<long>(wn)) + " eligible cell(s) have no r (a constant prediction): "
             "left out of the r means");
  auto sum = std::make_shared<Table>();
  sum->add_column("cells", std::vector<double>{static_cast<double>(ns)});
  sum->add_column("eligible", std::vector<double>{static_cast<double>(n_eligible)}, "", "cells passing the eligibility rule");
  sum->add_column("rmse", std::vector<double>{wqn ? wq / wqn : kNaN}, p.units, "cluster means weighted by their cells");
  sum->add_column("r", std::vector<double>{wn ? wr / wn : kNaN}, "", "cluster means weighted by their eligible cells (eq. 7)");
  ctx.set_output("summary", sum);

  const double band = ctx.param<double>("lat_band");
  std::map<long, std::vector<std::size_t>> bands;
  for (std::size_t c = 0; c < ns; ++c)
    if (std::isfinite(lat[c])) bands[static_cast<long>(std::floor(lat[c] / band))].push_back(c);
  auto lt = std::make_shared<Table>();
  std::vector<double> lo, hi, bc, br, brr;
  for (const auto& [b, idx] : bands) {
    lo.push_back(static_cast<double>(b) * band);
    hi.push_back(static_cast<double>(b + 1) * band);
    bc.push_back(static_cast<double>(idx.size()));
    br.push_back(mean_of(idx, false).first);
    brr.push_back(mean_of(idx, true).first);
  }
  lt->add_column("lat_min", lo, "degrees_north");
  lt->add_column("lat_max", hi, "degrees_north");
  lt->add_column("cells", bc);
  lt->add_column("rmse", br, p.units);
  lt->add_column("r", brr, "", "over eligible cells");
  ctx.set_output("latitude", lt);
  ctx.info("RMSE " + std::to_string(wqn ? wq / wqn : kNaN) + ", r " + std::to_string(wn ? wr / wn : kNaN) + " over " +
           std::to_string(n_eligible) + " eligible of " + std::to_string(ns) + " cells");
}


void run_regional_params(Context& ctx) {
  const Table& params = ctx.table("params");
  if (!params.has("site") || params.column("site").is_numeric())
    throw NodeError("input 'params' needs a column 'site' of station names (as tem_wbm.calibrate writes)");
  std::vector<std::string> columns = ctx.param<std::vector<std::string>>("columns");
  for (const auto& c : columns)
    if (!params.has(c) || !params.column(c).is_numeric())
      throw NodeError("parameter 'columns': input 'params' has no numeric column '" + c + "'");
  const auto& stations = params.strings("site");
  int k_sites = 0, k_cells = 0;
  const auto station_group = groups_for(ctx.table("site_clusters"), ctx.param<std::string>("group_column"), stations,
                                        "site_clusters", &k_sites);
  const Table& assignment = ctx.table("assignment");
  if (!assignment.has("site") || assignment.column("site").is_numeric())
    throw NodeError("input 'assignment' needs a column 'site' of cell names");
  const auto& cells = assignment.strings("site");
  const auto cell_group = groups_for(assignment, ctx.param<std::string>("group_column"), cells, "assignment", &k_cells);
  const int k = std::max(k_sites, k_cells);
  // Median over the cluster's stations of each parameter (NaN values, e.g. wetland-only parameters of upland
  // stations, left out); a cluster without a value keeps NaN, which tem_wbm.simulate reads as "default".
  std::vector<std::vector<double>> med(columns.size(), std::vector<double>(static_cast<std::size_t>(k), kNaN));
  std::vector<double> n_st(static_cast<std::size_t>(k), 0);
  for (std::size_t s = 0; s < stations.size(); ++s) n_st[static_cast<std::size_t>(station_group[s])] += 1;
  for (std::size_t j = 0; j < columns.size(); ++j) {
    const auto& v = params.numbers(columns[j]);
    for (int g = 0; g < k; ++g) {
      std::vector<double> x;
      for (std::size_t s = 0; s < stations.size(); ++s)
        if (station_group[s] == g && std::isfinite(v[s])) x.push_back(v[s]);
      if (x.empty()) continue;
      std::sort(x.begin(), x.end());
      const std::size_t m = x.size();
      med[j][static_cast<std::size_t>(g)] = m % 2 ? x[m / 2] : 0.5 * (x[m / 2 - 1] + x[m / 2]);
    }
  }
  std::vector<std::string> empty;
  for (int g = 0; g < k; ++g)
    if (n_st[static_cast<std::size_t>(g)] == 0) empty.push_back(std::to_string(g));
  if (!empty.empty())
    ctx.warn("cluster(s) " + list_some(empty) + " hold no calibrated station: their cells keep the default parameters");
  auto out = std::make_shared<Table>();
  out->add_column("site", cells);
  for (std::size_t j = 0; j < columns.size(); ++j) {
    std::vector<double> v;
    for (int g : cell_group) v.push_back(med[j][static_cast<std::size_t>(g)]);
    out->add_column(columns[j], v, params.column(columns[j]).units, "median over the cluster's stations");
  }
  ctx.set_output("params", out);
  auto per = std::make_shared<Table>();
  std::vector<double> id;
  for (int g = 0; g < k; ++g) id.push_back(g);
  per->add_column("cluster", id);
  per->add_column("stations", n_st);
  for (std::size_t j = 0; j < columns.size(); ++j) per->add_column(columns[j], med[j], params.column(columns[j]).units);
  ctx.set_output("per_cluster", per);
}

// Ports and parameters shared by cluster.post_calibrate and cluster.evaluate (read by read_pair, groups_for).
template <class B> B& paired_ports(B& b, const std::string& ratio_doc) {
  return b.input("prediction", ArtifactKind::Dataset, "(site, time) prediction over cells")
      .input("reference", ArtifactKind::Dataset, "(site, time) gridded reference (or the truth, in a synthetic world)")
      .input("groups", ArtifactKind::Table, "site and group_column (cluster.search_init's assignment)")
      .param(param_string("variable", "SSM", "variable of `reference` (and of an output prediction)"))
      .param(param_string("pred_variable", "", "variable of `prediction`; empty = variable"))
      .param(param_string("group_column", "cluster", "column of `groups`"))
      .param(param_float("min_valid_ratio", 0.5, ratio_doc).bounds(0, 1));
}

}  // namespace

COUPLET_PLUGIN("cluster", "0.1.0") {
  plugin.node("cluster.features")
      .summary("Clustering features per site or cell: multi-year means of forcing variables and static variables")
      .doc("One row per site of `forcing` (read in blocks of sites when it is streamed): the mean of each `dynamic` "
           "variable over the finite values between start and end, then each `static` variable from `statics` "
           "(matched by site name), plus `lat` and `lon` (from either input; not features, but what "
           "cluster.search_init maps stations with). The paper's 10 features (science.md B) are the defaults. A site "
           "with no value of a dynamic variable, or a missing static, is an error that names it.")
      .input("forcing", ArtifactKind::Dataset, "(site, time) forcing, e.g. synth.world's forcing or a reader's")
      .optional_input("statics", ArtifactKind::Dataset, "(site) statics holding the `static` variables")
      .output("features", ArtifactKind::Table, "site, lat, lon and one column per feature")
      .param(param_strings("dynamic", std::vector<std::string>{"Pr", "SWD", "Tair", "Vp", "LAI"},
                           "(site, time) variables of `forcing` averaged over the period"))
      .param(param_strings("static", std::vector<std::string>{"elevation", "sand", "silt", "clay", "land"},
                           "(site) variables of `statics`"))
      .param(param_date("start", "", "first day averaged (YYYY-MM-DD); empty = the forcing's first"))
      .param(param_date("end", "", "last day averaged; empty = the forcing's last"))
      .run(run_features);

  auto km = plugin.node("cluster.kmeans");
  km.version("2")  // 2: MiniBatch early stop, init size and step count as scikit-learn 1.2
      .summary("k-means clustering of a feature Table (Lloyd or MiniBatch; k-means++ or random starts), with silhouettes")
      .doc("Standardises the features, runs `n_init` initialisations (seeds derived from the node seed) and keeps the "
           "one with the lowest inertia. `silhouette = exact` computes the exact silhouette (blocked over tiles, each "
           "pair once, parallel; no n × n matrix); `simplified` only the centroid-based simplified silhouette. "
           "Results do not depend on the thread count.")
      .input("features", ArtifactKind::Table, "one row per site or cell (cluster.features)")
      .output("assignment", ArtifactKind::Table, "site, cluster, silhouette (s(i); only with silhouette = exact)")
      .output("centers", ArtifactKind::Table, "cluster, size and the centre of every feature in its own units")
      .output("summary", ArtifactKind::Table, "k, n, inertia, silhouette, simplified_silhouette, iterations, converged")
      .param(param_int("k", 8, "clusters").at_least(1))
      .param(param_int("n_init", 1, "initialisations; the lowest inertia wins").at_least(1))
      .param(param_string("silhouette", "exact", "exact, simplified or none").one_of({"exact", "simplified", "none"}));
  kmeans_params(km, "lloyd", 300).run(run_kmeans);

  auto sk = plugin.node("cluster.select_k");
  sk.version("2")  // 2: MiniBatch as scikit-learn 1.2; rounds without a finite score vote for no k
      .summary("Chooses k by the paper's counting rule: the k with the best silhouette per round, the k chosen most often")
      .doc("For each of `rounds` rounds (one seed per round) and each k in k_min..k_max, one k-means run scored by "
           "`score`: `centre` = the simplified silhouette against the run's centres (one O(n·k·d) pass), `exact` = "
           "the exact silhouette (O(n²); for small inputs). Each round votes for its best k; the k with most votes "
           "is chosen (lowest k on ties). Runs are spread over the node's threads, one thread each.")
      .input("features", ArtifactKind::Table, "one row per site or cell (cluster.features)")
      .output("rounds", ArtifactKind::Table, "round, best_k and score_k<k> for every k")
      .output("counts", ArtifactKind::Table, "k, chosen (rounds it won), mean_score")
      .output("choice", ArtifactKind::Table, "one row: k, chosen, rounds")
      .param(param_int("k_min", 2, "smallest k").at_least(2))
      .param(param_int("k_max", 20, "largest k").at_least(2))
      .param(param_int("rounds", 300, "rounds (the paper: 300)").at_least(1))
      .param(param_string("score", "centre", "centre (simplified silhouette against the centres) or exact").one_of({"centre", "exact"}));
  kmeans_params(sk, "minibatch", 100).run(run_select_k);

  auto si = plugin.node("cluster.search_init");
  si.version("2")  // 2: MiniBatch as scikit-learn 1.2; collapsed candidates are not refined
      .summary("With k fixed, many k-means initialisations; keeps the best silhouette among those with ≥ min_sites sites per cluster")
      .doc("Each station of `sites` is mapped to its nearest row of `features` (great circle, by lat/lon). Candidate r "
           "runs from seed derive_seed(node seed, \"init/r\") and is screened by its centre silhouette (the simplified "
           "silhouette against its centres, O(n·k·d)); a candidate is feasible when every cluster holds at least "
           "`min_sites` stations. The `refine` feasible candidates with the best screening score are re-scored by the "
           "exact silhouette, and the best of those is the result (the paper: 100,000 initialisations, k = 11, "
           "min_sites = 10). Candidates run in parallel; results do not depend on the thread count.")
      .input("features", ArtifactKind::Table, "one row per cell, with lat and lon (cluster.features)")
      .input("sites", ArtifactKind::Dataset, "(site) Dataset with lat and lon: the stations that train the cluster models")
      .optional_input("choice", ArtifactKind::Table, "cluster.select_k's choice: its k replaces the parameter k")
      .output("assignment", ArtifactKind::Table, "site (cell), cluster, silhouette s(i) of the chosen clustering")
      .output("site_clusters", ArtifactKind::Table, "site (station), cell, distance_km, cluster")
      .output("centers", ArtifactKind::Table, "cluster, size and centres in the features' units")
      .output("candidates", ArtifactKind::Table, "candidate, centre_silhouette, silhouette (refined only), inertia, min_sites, feasible")
      .output("summary", ArtifactKind::Table, "k, candidates, feasible, chosen, silhouette, centre_silhouette, min_sites")
      .param(param_int("k", 8, "clusters (replaced by input `choice` when connected)").at_least(2))
      .param(param_int("candidates", 1000, "initialisations (the paper: 100,000)").at_least(1))
      .param(param_int("min_sites", 10, "stations every cluster must hold").at_least(0))
      .param(param_int("refine", 10, "feasible candidates re-scored by the exact silhouette").at_least(1))
      .param(param_float("max_distance_km", 500, "a station farther than this from every row is an error").at_least(0));
  kmeans_params(si, "minibatch", 100).run(run_search_init);

  plugin.node("cluster.checks")
      .summary("Cluster checks of the paper: mean pairwise r of station series within clusters vs overall; ANOVA of station mean and std")
      .doc("Pearson r of every pair of stations over their common days (pairs with fewer than `min_overlap` common days "
           "are left out). `within_cluster_mean_r` is the mean over all within-cluster pairs (= each cluster's mean "
           "weighted by its pairs, the paper's rule); `all_sites_mean_r` over all pairs. One-way ANOVA (F and p, "
           "Boost.Math's F distribution) of the stations' mean and standard deviation across clusters.")
      .input("observation", ArtifactKind::Dataset, "(site, time) station series")
      .input("site_clusters", ArtifactKind::Table, "site, cluster (cluster.search_init's site_clusters)")
      .output("summary", ArtifactKind::Table, "check, value, n")
      .output("per_cluster", ArtifactKind::Table, "cluster, sites, pairs, mean_r, ssm_mean, ssm_std")
      .param(param_string("variable", "SSM", "variable of `observation`"))
      .param(param_int("min_overlap", 30, "common days a pair needs").at_least(2))
      .run(run_checks);
  plugin.node("cluster.initial_window")
      .summary("The initial SSM window for a regional rollout: the reference's days before the first predicted day, gaps filled from the nearest observed cells")
      .doc("Keeps the `window` days of `reference` before the first predicted day (`start`; empty = the reference's "
           "day `window`) and fills each missing cell-day with the value of the nearest of the cell's `neighbours` "
           "cells (great circle, within max_distance_km) observed that day; every other day is NaN, so a learn.predict "
           "rollout seeded from it (as its `target`) uses no later reference value. Cells with nothing in the window "
           "are counted in a warning.")
      .input("reference", ArtifactKind::Dataset, "(site, time) gridded reference, e.g. synth.truth's observation")
      .input("statics", ArtifactKind::Dataset, "(site) lat and lon of the reference's cells")
      .output("window", ArtifactKind::Dataset, "(site, time) on the reference's axes: the filled window, NaN elsewhere")
      .param(param_string("variable", "SSM", "variable of `reference`"))
      .param(param_int("window", 30, "days (the model's seq_len)").at_least(1))
      .param(param_date("start", "", "first predicted day; empty = the reference's first day + window"))
      .param(param_int("neighbours", 16, "nearest cells searched for a value").at_least(1))
      .param(param_float("max_distance_km", 300, "neighbours farther than this are not used").at_least(0))
      .run(run_initial_window);

  auto pc = plugin.node("cluster.post_calibrate");
  pc.summary("Per-cluster linear post-calibration of a gridded prediction against a reference")
      .doc("For each cluster, ordinary least squares reference = intercept + slope · prediction over the cell-days of "
           "the cluster's cells whose valid ratio (reference days / predicted days) is at least min_valid_ratio; "
           "applied to every cell of the cluster (the paper's post-calibration of DL and PGDL). A cluster without "
           "enough pairs stays uncalibrated, with a warning.")
      .output("prediction", ArtifactKind::Dataset, "(site, time) the calibrated prediction, float32")
      .output("coefficients", ArtifactKind::Table, "cluster, intercept, slope, r2, cells, pairs, fitted");
  paired_ports(pc, "cells fitted need at least this share of reference days").run(run_post_calibrate);

  auto ev = plugin.node("cluster.evaluate");
  ev.version("2")  // 2: summary and per_cluster `eligible` count eligible cells (was: cells with a finite r)
      .summary("Per-cell RMSE and r against a gridded reference, cluster means weighted by cells, latitude profile")
      .doc("Per cell over its predicted days in start..end: RMSE where both exist; Pearson r only for eligible cells (valid ratio ≥ "
           "min_valid_ratio and reference sd ≥ min_std, the paper's rule). Cluster means of RMSE (over cells with "
           "pairs) and r (over eligible cells); the summary weights the cluster means by those counts (the paper's "
           "equation 7). With `statics`, means per latitude band of lat_band degrees.")
      .optional_input("statics", ArtifactKind::Dataset, "(site) lat of the cells, for the latitude profile")
      .output("per_cell", ArtifactKind::Table, "site, cluster, lat, n, valid_ratio, ref_std, rmse, r, eligible")
      .output("per_cluster", ArtifactKind::Table, "cluster, cells, eligible, rmse, r")
      .output("summary", ArtifactKind::Table, "cells, eligible, rmse, r (weighted cluster means)")
      .output("latitude", ArtifactKind::Table, "lat_min, lat_max, cells, rmse, r")
      .param(param_float("min_std", 0.02, "r only for cells whose reference varies at least this much").at_least(0).in_units("m3 m-3"))
      .param(param_float("lat_band", 5.0, "width of the latitude bands").at_least(0.01).in_units("degrees"))
      .param(param_date("start", "", "first day evaluated; empty = the prediction's first"))
      .param(param_date("end", "", "last day evaluated; empty = the prediction's last"));
  paired_ports(ev, "r only for cells with at least this share of reference days").run(run_evaluate);
  plugin.node("cluster.regional_params")
      .summary("Regionalises per-station model parameters: each cell gets the median of its cluster's stations")
      .doc("For each cluster, the median over its stations (site_clusters) of every parameter column of `params` "
           "(e.g. tem_wbm.calibrate's per-station parameters; NaN values left out), given to every cell of the "
           "cluster (assignment). A cluster without a station value keeps NaN, which tem_wbm.simulate reads as its "
           "default. The output feeds tem_wbm.simulate's `params` on the grid: the process-based model trained "
           "per cluster, as the learned models are.")
      .input("params", ArtifactKind::Table, "per station: site and the parameter columns")
      .input("site_clusters", ArtifactKind::Table, "station and group_column (cluster.search_init's site_clusters)")
      .input("assignment", ArtifactKind::Table, "cell and group_column (cluster.search_init's assignment)")
      .output("params", ArtifactKind::Table, "per cell: site and the parameter columns (what tem_wbm.simulate's params takes)")
      .output("per_cluster", ArtifactKind::Table, "cluster, stations and the medians")
      .param(param_strings("columns",
                           std::vector<std::string>{"theta_sat", "k_sat", "psi_sat", "b", "i_rmax", "g_max", "e_r", "q_drmax"},
                           "parameter columns of `params`"))
      .param(param_string("group_column", "cluster", "column of site_clusters and assignment"))
      .run(run_regional_params);
}
