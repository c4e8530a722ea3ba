// cluster nodes through the CLI on a small synthetic world: features → select_k → search_init → checks;
// the min-sites constraint holds in the chosen clustering, the bytes do not depend on the thread count,
// and bad requests fail with messages that name what is wrong.
#include "common.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>

using namespace couplet;
using testutil::cli;
using testutil::read_file;
using testutil::TempDir;
using testutil::write_file;
namespace fs = std::filesystem;

namespace {

const char* kWorld = R"(couplet = 1
name = "cl"
seed = 7
[[node]]
id = "world"
plugin = "synth.world"
params = { rows = 8, cols = 12, lat_min = 30.0, lat_max = 50.0, lon_min = -110.0, lon_max = -80.0, days = 365 }
[[node]]
id = "truth"
plugin = "synth.truth"
inputs = { forcing = "world.forcing", hidden_statics = "world.hidden_statics", hidden_params = "world.hidden_params" }
params = { obs_days = 120, spinup_years = 0 }
[[node]]
id = "stations"
plugin = "synth.stations"
inputs = { truth = "truth.truth", statics = "world.hidden_statics", forcing = "world.forcing" }
params = { n = 30 }
[[node]]
id = "features"
plugin = "cluster.features"
inputs = { forcing = "world.forcing", statics = "world.hidden_statics" }
[[node]]
id = "select_k"
plugin = "cluster.select_k"
inputs = { features = "features.features" }
params = { k_min = 2, k_max = 5, rounds = 12 }
[[node]]
id = "clusters"
plugin = "cluster.search_init"
inputs = { features = "features.features", sites = "stations.statics" }
params = { k = 3, candidates = 60, min_sites = 6, refine = 4 }
[[node]]
id = "kmeans"
plugin = "cluster.kmeans"
inputs = { features = "features.features" }
params = { k = 3, n_init = 3 }
[[node]]
id = "checks"
plugin = "cluster.checks"
inputs = { observation = "stations.observation", site_clusters = "clusters.site_clusters" }
)";

testutil::Output run(const TempDir& tmp, const std::string& runs, int threads, const std::string& extra = "") {
  const fs::path wf = tmp.path / "cl.toml";
  if (!fs::exists(wf)) write_file(wf, kWorld);
  return testutil::run(cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q " + wf.string() + " --runs-dir " +
                       (tmp.path / runs).string() + " --threads " + std::to_string(threads) + " " + extra);
}

std::shared_ptr<const Table> table(const fs::path& artifacts, const std::string& file) {
  auto t = std::dynamic_pointer_cast<const Table>(store::read_artifact(artifacts / file));
  REQUIRE(t);
  return t;
}

}  // namespace

TEST_CASE("cluster workflow: min_sites honoured, checks computed, same bytes on 1 and 2 threads") {
  TempDir tmp("cluster-wf");
  const auto a = run(tmp, "a", 1), b = run(tmp, "b", 2);
  INFO(a.text);
  INFO(b.text);
  REQUIRE(a.code == 0);
  REQUIRE(b.code == 0);
  const fs::path pa = tmp.path / "a/cl/latest/artifacts", pb = tmp.path / "b/cl/latest/artifacts";
  for (const char* f : {"features/features.h5", "select_k/rounds.h5", "clusters/assignment.h5",
                        "clusters/candidates.h5", "clusters/site_clusters.h5", "kmeans/assignment.h5", "checks/summary.h5"}) {
    INFO(f);
    CHECK(read_file(pa / f) == read_file(pb / f));
  }
  const auto summary = table(pa, "clusters/summary.h5");
  CHECK(summary->numbers("min_sites")[0] >= 6);
  CHECK(summary->numbers("feasible")[0] >= 1);
  // The stations per cluster, counted from site_clusters, respect min_sites.
  const auto sites = table(pa, "clusters/site_clusters.h5");
  std::map<int, int> per;
  for (double c : sites->numbers("cluster")) ++per[static_cast<int>(c)];
  CHECK(per.size() == 3);
  for (auto [c, n] : per) CHECK(n >= 6);
  // The chosen candidate has the best exact silhouette among the refined ones.
  const auto cand = table(pa, "clusters/candidates.h5");
  const auto& exact = cand->numbers("silhouette");
  int refined = 0;
  for (double s : exact)
    if (!std::isnan(s)) {
      ++refined;
      CHECK(s <= summary->numbers("silhouette")[0]);
    }
  CHECK(refined == 4);
  const auto checks = table(pa, "checks/summary.h5");
  CHECK(checks->strings("check")[0] == "within_cluster_mean_r");
  CHECK(std::isfinite(checks->numbers("value")[0]));
  // The report index shows the head of the 96-row feature table and points to the whole of it.
  const std::string index = read_file(tmp.path / "a/cl/latest/report/README.md");
  CHECK(index.find("The first 50 of 96 rows; all in [features.features.csv](features.features.csv).") != std::string::npos);
  CHECK(read_file(tmp.path / "a/cl/latest/report/features.features.csv").find("r7_c11") != std::string::npos);
  const auto counts = table(pa, "select_k/counts.h5");
  double votes = 0;
  for (double v : counts->numbers("chosen")) votes += v;
  CHECK(votes == 12);
}

TEST_CASE("cluster workflow: infeasible constraints, bad columns and unknown statics are named") {
  TempDir tmp("cluster-bad");
  auto o = run(tmp, "r1", 2, "--set clusters.min_sites=25");
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "30 sites cannot put min_sites = 25 in each of k = 3 clusters"), o.text);
  o = run(tmp, "r2", 2, "--set clusters.min_sites=9 --set clusters.candidates=5");
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "none of the 5 initialisations puts at least 9 sites"), o.text);
  o = run(tmp, "r3", 2, "--set 'kmeans.columns=[\"Pr\", \"porosity\"]'");
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "input 'features' has no column 'porosity'"), o.text);
  o = run(tmp, "r4", 2, "--set 'features.static=[\"elevation\", \"ksat\"]'");
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "input 'statics' has no variable 'ksat'"), o.text);
  o = run(tmp, "r5", 2, "--set world.wetland_fraction=0.0");  // no wetland: feature 'land' is 0 everywhere
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "input 'features': feature 'land' is constant"), o.text);
  o = run(tmp, "r6", 2, "--set kmeans.k=96");
  CHECK(o.code != 0);
  CHECK_MESSAGE(testutil::contains(o.text, "parameter 'k' = 96 needs more than 96 sites"), o.text);
}

TEST_CASE("cluster workflow: workflows/cluster_regional.toml, small: clusters, per-cluster models, grid rollout, evaluation") {
  TempDir tmp("cluster-regional");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/cluster_regional.toml";
  std::string small =
      "--set world.rows=8 --set world.cols=12 --set world.days=731 --set truth.obs_days=366 --set stations.n=24 "
      "--set select_k.rounds=8 --set select_k.k_max=3 --set clusters.candidates=100 --set clusters.min_sites=6 ";
  for (const char* n : {"dl", "pgdl"})
    small += std::string("--set ") + n + ".epochs=2 --set " + n + ".hidden=4 --set " + n + ".seq_len=10 --set " + n +
             ".patience=1 ";
  small += "--set pgdl.fc_hidden=4 --set window.window=10 --set window.max_distance_km=800.0 ";  // cells ~400 km apart
  small += "--set pb_calibrate.max_evaluations=20 --set pb_calibrate.polish=false ";
  const auto o = testutil::run(cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 2 " + small + "--runs-dir " +
                               (tmp.path / "a").string() + " " + workflow);
  INFO(o.text);
  REQUIRE(o.code == 0);
  const fs::path art = tmp.path / "a/cluster_regional/latest/artifacts";
  const int k = static_cast<int>(table(art, "select_k/choice.h5")->numbers("k")[0]);
  CHECK(table(art, "clusters/summary.h5")->numbers("k")[0] == k);
  // One representative model per cluster in each bundle.
  auto bundle = std::dynamic_pointer_cast<const Model>(store::read_artifact(art / "dl/group_models.h5"));
  REQUIRE(bundle);
  CHECK(bundle->type == "learn.bundle");
  CHECK(bundle->attrs.at("groups") == std::to_string(k));
  // The grid rollout: every cell with a window value is predicted from the window's end on, nothing before.
  auto pred = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(art / "pgdl_grid/prediction.h5"));
  auto window = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(art / "window/window.h5"));
  REQUIRE(pred);
  REQUIRE(window);
  const auto p = series::read_site_series(*pred, "SSM"), w = series::read_site_series(*window, "SSM");
  CHECK(p.n_sites() == 96);
  std::size_t predicted = 0, seeded = 0;
  for (std::size_t c = 0; c < p.n_sites(); ++c) {
    bool any_w = false, any_p = false, early = false;
    for (std::size_t t = 0; t < w.n_times(); ++t) any_w |= std::isfinite(w.row(c)[t]);
    for (std::size_t t = 0; t < p.n_times(); ++t) {
      any_p |= std::isfinite(p.row(c)[t]);
      early |= std::isfinite(p.row(c)[t]) && p.time[t] < parse_date("2016-06-01");
    }
    CHECK_FALSE(early);
    seeded += any_w;
    predicted += any_p;
  }
  CHECK(seeded > 80);
  CHECK(predicted == seeded);
  // Post-calibration fitted every cluster; evaluations are finite, against the reference and the truth.
  const auto coef = table(art, "pgdl_grid_cal/coefficients.h5");
  CHECK(coef->rows() == static_cast<std::size_t>(k));
  for (double f : coef->numbers("fitted")) CHECK(f == 1);
  // PB per cluster: every cell gets its cluster's median of the stations' calibrated parameters.
  const auto params = table(art, "pb_params/params.h5");
  const auto per_cluster = table(art, "pb_params/per_cluster.h5");
  CHECK(params->rows() == 96);
  const auto assignment = table(art, "clusters/assignment.h5");  // named: numbers() refers into it
  const auto& assigned = assignment->numbers("cluster");
  for (std::size_t c = 0; c < 96; ++c)
    CHECK(params->numbers("theta_sat")[c] == per_cluster->numbers("theta_sat")[static_cast<std::size_t>(assigned[c])]);
  for (const char* e : {"eval_pb", "eval_pb_cal", "eval_dl", "eval_pgdl", "truth_pb", "truth_pb_cal", "truth_dl", "truth_pgdl"}) {
    INFO(e);
    const auto s = table(art, std::string(e) + "/summary.h5");
    CHECK(std::isfinite(s->numbers("rmse")[0]));
    CHECK(s->numbers("eligible")[0] > 0);
  }
  CHECK(table(art, "truth_pb/latitude.h5")->rows() >= 3);
  CHECK(std::isfinite(table(art, "violations_pgdl/summary.h5")->numbers("mean_violation_days")[0]));
}
