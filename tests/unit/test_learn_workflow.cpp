// The learn plugin through the CLI: workflows/dl_uscrn.toml (LSTM, windowed and stateful rollout) with a
// small training budget, and a PGDL workflow on the water balance model's fluxes. The models themselves
// are tested in tests/torch/test_learn.cpp.
#include "common.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace couplet;

namespace {
std::string learn_cli() { return testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t 1 "; }
}  // namespace

TEST_CASE("learn: workflows/dl_uscrn.toml trains, rolls out the test years only, and repeats itself") {
  testutil::TempDir tmp("learn-dl");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/dl_uscrn.toml";
  const std::string small = "--set lstm.epochs=3 --set lstm.hidden=4 ";
  for (const char* dir : {"a", "b"}) {
    const auto out = testutil::run(learn_cli() + small + "--runs-dir " + (tmp.path / dir).string() + " " + workflow);
    INFO(out.text);
    REQUIRE(out.code == 0);
  }
  const auto run_dir = tmp.path / "a/dl_uscrn/latest/artifacts";
  auto hist = std::dynamic_pointer_cast<const Table>(store::read_artifact(run_dir / "lstm/history.h5"));
  REQUIRE(hist);
  CHECK(hist->rows() == 3);
  CHECK(std::isfinite(hist->numbers("val_loss")[0]));  // 2018 validates

  auto model = std::dynamic_pointer_cast<const Model>(store::read_artifact(run_dir / "lstm/model.h5"));
  REQUIRE(model);
  CHECK(model->type == "learn.lstm");
  CHECK(model->arrays.count("norm_mean"));

  auto pred = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run_dir / "predict/prediction.h5"));
  auto stateful = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run_dir / "predict_stateful/prediction.h5"));
  REQUIRE(pred);
  REQUIRE(stateful);
  const auto w = series::read_site_series(*pred, "SSM"), s = series::read_site_series(*stateful, "SSM");
  REQUIRE(w.n_sites() == 5);
  const double test_start = static_cast<double>(parse_date("2019-01-01"));
  std::size_t before = 0, after = 0, n_after = 0;
  for (std::size_t i = 0; i < w.n_sites(); ++i)
    for (std::size_t t = 0; t < w.n_times(); ++t) {
      const double v = w.row(i)[t];
      if (w.time[t] < test_start) {
        before += !std::isnan(v);
      } else {
        after += std::isfinite(v) && v > -0.2 && v < 0.8;
        ++n_after;
      }
    }
  CHECK(before == 0);          // training and validation years are not predicted
  CHECK(after > n_after * 9 / 10);  // test years are, with plausible values
  // Both rollouts start from the same window on 2019-01-01.
  std::size_t t0 = 0;
  while (w.time[t0] < test_start) ++t0;
  for (std::size_t i = 0; i < w.n_sites(); ++i)
    if (std::isfinite(w.row(i)[t0])) CHECK(s.row(i)[t0] == doctest::Approx(w.row(i)[t0]).epsilon(1e-5));

  // Same seed, same threads: the same weights and predictions, byte for byte.
  for (const char* file : {"lstm/model.h5", "predict/prediction.h5", "predict_stateful/prediction.h5"})
    CHECK_MESSAGE(testutil::read_file(run_dir / file) ==
                      testutil::read_file(tmp.path / "b/dl_uscrn/latest/artifacts" / file), file);
}

TEST_CASE("learn: learn.pgdl trains on the water balance fluxes and learn.predict rolls it out statefully") {
  testutil::TempDir tmp("learn-pgdl");
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  testutil::write_file(tmp.path / "pgdl.toml", R"(couplet = 1
name = "pgdl_small"
seed = 7

[[node]]
id = "sites"
plugin = "io.uscrn"
params = { dir = ")" + data + R"(", stations = ["KS_Manhattan_6_SSW", "OK_Stillwater_2_W"], start = "2017-01-01", end = "2018-12-31" }

[[node]]
id = "wbm"
plugin = "tem_wbm.simulate"
inputs = { forcing = "sites.forcing", statics = "sites.sites" }
params = { spin_up = true, fill = "linear", max_gap = 10, lai = 2.0 }

[[node]]
id = "split"
plugin = "split.temporal"
inputs = { data = "sites.ssm" }
params = { train_start = "2017-01-01", train_end = "2017-12-31", test_start = "2018-01-01", test_end = "2018-12-31" }

[[node]]
id = "pgdl"
plugin = "learn.pgdl"
inputs = { features = "sites.forcing", physics = "wbm.fluxes", target = "sites.ssm", split = "split.split" }
params = { seq_len = 10, hidden = 4, fc_hidden = 4, epochs = 2 }

[[node]]
id = "predict"
plugin = "learn.predict"
inputs = { model = "pgdl.model", features = "sites.forcing", physics = "wbm.fluxes", target = "sites.ssm", split = "split.split" }
params = { mode = "stateful" }

[[node]]
id = "score"
plugin = "eval.metrics"
inputs = { prediction = "predict.prediction", observation = "sites.ssm" }
)");
  const auto out = testutil::run(learn_cli() + "--runs-dir " + (tmp.path / "runs").string() + " " +
                                 (tmp.path / "pgdl.toml").string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  CHECK(out.text.find("no validation samples") != std::string::npos);  // the split has none: warned
  const auto run_dir = tmp.path / "runs/pgdl_small/latest/artifacts";
  auto model = std::dynamic_pointer_cast<const Model>(store::read_artifact(run_dir / "pgdl/model.h5"));
  REQUIRE(model);
  CHECK(model->type == "learn.pgdl");
  CHECK(model->config.find("physics = IF,EV,ES") != std::string::npos);
  auto summary = std::dynamic_pointer_cast<const Table>(store::read_artifact(run_dir / "score/summary.h5"));
  REQUIRE(summary);
  CHECK(summary->rows() > 0);

  // A missing physics variable is a NodeError naming the port and the variable.
  const auto bad = testutil::run(learn_cli() + "--set pgdl.physics_variables='[\"IF\", \"NOPE\"]' --runs-dir " +
                                 (tmp.path / "runs").string() + " " + (tmp.path / "pgdl.toml").string());
  CHECK(bad.code != 0);
  CHECK(bad.text.find("input 'physics', variable 'NOPE'") != std::string::npos);
}

TEST_CASE("learn: with a leave-one-site-out split the held-out site is predicted from day k on") {
  testutil::TempDir tmp("learn-loso");
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  const auto wf = tmp.path / "loso.toml";
  testutil::write_file(wf,
      "couplet = 1\nname = \"loso\"\nseed = 3\n\n"
      "[[node]]\nid = \"sites\"\nplugin = \"io.uscrn\"\nparams = { dir = \"" + data + "\", stations = "
      "[\"KS_Manhattan_6_SSW\", \"OK_Stillwater_2_W\", \"AL_Selma_13_WNW\"], start = \"2017-01-01\", end = \"2018-12-31\" }\n\n"
      "[[node]]\nid = \"split\"\nplugin = \"split.loso\"\ninputs = { data = \"sites.ssm\" }\n\n"
      "[[node]]\nid = \"lstm\"\nplugin = \"learn.lstm\"\ninputs = { features = \"sites.forcing\", target = \"sites.ssm\", "
      "split = \"split.split\" }\nparams = { drivers = [\"Pr\", \"Tair\"], seq_len = 10, hidden = 4, epochs = 2, fold = 0 }\n\n"
      "[[node]]\nid = \"predict\"\nplugin = \"learn.predict\"\ninputs = { model = \"lstm.model\", features = \"sites.forcing\", "
      "target = \"sites.ssm\", split = \"split.split\" }\nparams = { fold = 0, mode = \"stateful\" }\n");
  const auto out = testutil::run(learn_cli() + "--runs-dir " + (tmp.path / "runs").string() + " " + wf.string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  auto pred = std::dynamic_pointer_cast<const Dataset>(
      store::read_artifact(tmp.path / "runs/loso/latest/artifacts/predict/prediction.h5"));
  REQUIRE(pred);
  const auto p = series::read_site_series(*pred, "SSM");
  // fold 0 holds out the first site: predicted over its record from day k = 10, the others not at all
  std::size_t held = 0, others = 0;
  for (std::size_t t = 0; t < p.n_times(); ++t) {
    held += std::isfinite(p.row(0)[t]);
    others += std::isfinite(p.row(1)[t]) + std::isfinite(p.row(2)[t]);
    if (t < 10) CHECK(std::isnan(p.row(0)[t]));
  }
  CHECK(held > 600);
  CHECK(others == 0);
}
