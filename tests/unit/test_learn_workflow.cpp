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

namespace {
std::string cli_threads(int t) {
  return testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t " + std::to_string(t) + " ";
}
template <class T>
std::shared_ptr<const T> artifact(const std::filesystem::path& p) {
  auto a = std::dynamic_pointer_cast<const T>(store::read_artifact(p));
  REQUIRE_MESSAGE(a, p.string());
  return a;
}
}  // namespace

TEST_CASE("learn: workflows/compare_pb_dl_pgdl.toml, small: PB, DL and PGDL leave-one-site-out on the same days") {
  testutil::TempDir tmp("learn-compare");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/compare_pb_dl_pgdl.toml";
  std::string small =
      "--set 'sites.stations=[\"KS_Manhattan_6_SSW\", \"OK_Stillwater_2_W\", \"AL_Selma_13_WNW\", \"IN_Bedford_5_WNW\"]' "
      "--set sites.start='\"2018-01-01\"' --set sites.end='\"2018-12-31\"' --set calibrate.max_evaluations=20 "
      "--set loso.validation_fraction=0.34 ";
  for (const char* n : {"dl", "pgdl"})
    small += std::string("--set ") + n + ".epochs=2 --set " + n + ".hidden=4 --set " + n + ".seq_len=10 ";
  small += "--set pgdl.fc_hidden=4 ";
  for (const char* dir : {"a", "b"}) {  // two folds at a time (-t 2): the schedule must not change the bytes
    const auto out = testutil::run(cli_threads(2) + small + "--runs-dir " + (tmp.path / dir).string() + " " + workflow);
    INFO(out.text);
    REQUIRE(out.code == 0);
  }
  const auto run_dir = tmp.path / "a/compare_pb_dl_pgdl/latest/artifacts";
  auto table = artifact<Table>(run_dir / "compare/table.h5");
  REQUIRE(table->rows() == 4);
  CHECK(table->strings("model")[2] == "DL (LSTM)");
  for (std::size_t r = 0; r < 4; ++r) {
    CHECK(table->numbers("sites")[r] == 4);
    CHECK(std::isfinite(table->numbers("rmse")[r]));
  }
  CHECK(std::isnan(table->numbers("violation_days")[1]));  // no violations input for the calibrated PB row
  CHECK(std::isfinite(table->numbers("violation_days")[2]));

  // One fold per station, each tested on its own station, all four predicted from day k = 10.
  auto folds = artifact<Table>(run_dir / "dl/folds.h5");
  REQUIRE(folds->rows() == 4);
  for (std::size_t r = 0; r < 4; ++r) CHECK(folds->numbers("test_sites")[r] == 1);
  const auto p = series::read_site_series(*artifact<Dataset>(run_dir / "dl/prediction.h5"), "SSM");
  REQUIRE(p.n_sites() == 4);
  for (std::size_t s = 0; s < 4; ++s) {
    std::size_t n = 0;
    for (std::size_t t = 0; t < p.n_times(); ++t) {
      if (t < 10) CHECK(std::isnan(p.row(s)[t]));
      n += std::isfinite(p.row(s)[t]);
    }
    CHECK(n > 300);
  }
  // `like`: PB is scored on exactly the pairs DL is.
  auto pb = artifact<Table>(run_dir / "score_pb/summary.h5"), dl = artifact<Table>(run_dir / "score_dl/summary.h5");
  CHECK(pb->numbers("n")[1] == dl->numbers("n")[1]);

  for (const char* file : {"dl/prediction.h5", "pgdl/prediction.h5", "pgdl/best_model.h5", "compare/table.h5"})
    CHECK_MESSAGE(testutil::read_file(run_dir / file) ==
                      testutil::read_file(tmp.path / "b/compare_pb_dl_pgdl/latest/artifacts" / file), file);
}

TEST_CASE("learn: workflows/physics_loss_sweep.toml, small: every LossTerm trains, records its value and is scored") {
  testutil::TempDir tmp("learn-sweep");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/physics_loss_sweep.toml";
  std::string small =
      "--set 'sites.stations=[\"KS_Manhattan_6_SSW\", \"OK_Stillwater_2_W\"]' --set sites.start='\"2016-01-01\"' "
      "--set sites.end='\"2017-12-31\"' --set 'split.train_years=[2016]' --set 'split.validation_years=[]' "
      "--set 'split.test_years=[2017]' ";
  for (const char* model : {"dl", "pgdl"})
    for (const char* v : {"base", "direction_1", "direction_10", "bounds_1", "bounds_10", "storage_1", "storage_10"})
      small += std::string("--set ") + model + "_" + v + ".epochs=1 --set " + model + "_" + v + ".hidden=4 --set " +
               model + "_" + v + ".seq_len=7 ";
  const auto out = testutil::run(cli_threads(2) + small + "--runs-dir " + tmp.path.string() + " " + workflow);
  INFO(out.text);
  REQUIRE(out.code == 0);
  const auto run_dir = tmp.path / "physics_loss_sweep/latest/artifacts";
  for (const char* c : {"compare_dl", "compare_pgdl"}) {
    auto t = artifact<Table>(run_dir / c / "table.h5");
    REQUIRE(t->rows() == 7);
    CHECK(t->strings("model")[1] == "direction beta=1");
    for (std::size_t r = 0; r < 7; ++r) CHECK(std::isfinite(t->numbers("rmse")[r]));
  }
  auto hist = artifact<Table>(run_dir / "pgdl_storage_10/history.h5");
  REQUIRE(hist->has("physics_loss_1"));
  CHECK(std::isfinite(hist->numbers("physics_loss_1")[0]));
  CHECK(hist->numbers("objective")[0] > hist->numbers("train_loss")[0]);
  auto base = artifact<Table>(run_dir / "dl_base/history.h5");
  CHECK_FALSE(base->has("physics_loss_1"));
  CHECK(base->numbers("objective")[0] == base->numbers("train_loss")[0]);
}

TEST_CASE("learn: learn.search caches its trials and hands the best to learn.cv, bad loss inputs are named") {
  testutil::TempDir tmp("learn-search");
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  const auto ckpt = (tmp.path / "trials").string();
  const auto wf = tmp.path / "search.toml";
  testutil::write_file(wf, R"(couplet = 1
name = "search"
seed = 5

[[node]]
id = "sites"
plugin = "io.uscrn"
params = { dir = ")" + data + R"(", stations = ["KS_Manhattan_6_SSW", "OK_Stillwater_2_W", "AL_Selma_13_WNW"], start = "2018-01-01", end = "2018-12-31" }

[[node]]
id = "loso"
plugin = "split.loso"
inputs = { data = "sites.ssm" }
params = { validation_fraction = 0.5 }

[[node]]
id = "search"
plugin = "learn.search"
inputs = { features = "sites.forcing", target = "sites.ssm", split = "loso.split" }
params = { model = "lstm", method = "bayes", trials = 3, initial_trials = 2, epochs = 1, folds = [0, 1], seq_len_range = [5, 12], hidden_range = [2, 6], checkpoint_dir = ")" + ckpt + R"(" }

[[node]]
id = "cv"
plugin = "learn.cv"
inputs = { features = "sites.forcing", target = "sites.ssm", split = "loso.split", hyperparameters = "search.best" }
params = { model = "lstm", epochs = 1, folds = [2] }
)");
  const std::string runs = " --runs-dir " + (tmp.path / "runs").string() + " ";
  auto out = testutil::run(cli_threads(2) + runs + wf.string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  const auto dir = tmp.path / "runs/search/latest/artifacts";
  auto trials = artifact<Table>(dir / "search/trials.h5");
  REQUIRE(trials->rows() == 3);
  CHECK(trials->numbers("proposed")[2] == 1);
  for (std::size_t r = 0; r < 3; ++r) {
    CHECK(trials->numbers("cached")[r] == 0);
    CHECK(std::isfinite(trials->numbers("score")[r]));
    CHECK(trials->numbers("hidden")[r] >= 2);
    CHECK(trials->numbers("hidden")[r] <= 6);
  }
  auto best = artifact<Table>(dir / "search/best.h5");
  auto model = artifact<Model>(dir / "cv/best_model.h5");
  CHECK(model->config.find("hidden = " + std::to_string(static_cast<int>(best->numbers("hidden")[0])) + "\n") !=
        std::string::npos);

  // One more trial: the first three resume from their finished checkpoints instead of training again.
  out = testutil::run(cli_threads(2) + "--set search.trials=4" + runs + wf.string());
  REQUIRE(out.code == 0);
  auto more = artifact<Table>(dir / "search/trials.h5");
  REQUIRE(more->rows() == 4);
  for (std::size_t r = 0; r < 3; ++r) {
    CHECK(more->numbers("cached")[r] == 1);
    CHECK(more->numbers("score")[r] == trials->numbers("score")[r]);
  }

  // A model that is not a LossTerm, and a term reading a variable nobody has, are named.
  std::string text = testutil::read_file(wf);
  testutil::write_file(wf, text + R"(
[[node]]
id = "bad_term"
plugin = "learn.lstm"
inputs = { features = "sites.forcing", target = "sites.ssm", physics_loss_1 = "cv.best_model" }
params = { epochs = 1, hidden = 2, seq_len = 5 }
)");
  out = testutil::run(cli_threads(1) + runs + wf.string());
  CHECK(out.code != 0);
  CHECK(out.text.find("input 'physics_loss_1': a model of type 'learn.lstm' is not a LossTerm") != std::string::npos);
  testutil::write_file(wf, text + R"(
[[node]]
id = "term"
plugin = "learn.loss_direction"
params = { infiltration = "NOPE" }

[[node]]
id = "bad_variable"
plugin = "learn.lstm"
inputs = { features = "sites.forcing", target = "sites.ssm", physics_loss_1 = "term.term" }
params = { epochs = 1, hidden = 2, seq_len = 5 }
)");
  out = testutil::run(cli_threads(1) + runs + wf.string());
  CHECK(out.code != 0);
  CHECK(out.text.find("input 'features', variable 'NOPE'") != std::string::npos);
  CHECK(out.text.find("the physics loss terms read: NOPE, EV, ES") != std::string::npos);
}

TEST_CASE("learn: a LossTerm from another plugin (the plugin author guide's example) trains with learn.lstm") {
  testutil::TempDir tmp("learn-lossdemo");
  const std::string data = std::string(COUPLET_SOURCE_DIR) + "/data/uscrn";
  const auto wf = tmp.path / "step.toml";
  testutil::write_file(wf, R"(couplet = 1
name = "step"
seed = 5

[[node]]
id = "sites"
plugin = "io.uscrn"
params = { dir = ")" + data + R"(", stations = ["KS_Manhattan_6_SSW", "OK_Stillwater_2_W"], start = "2018-01-01", end = "2018-12-31" }

[[node]]
id = "step"
plugin = "lossdemo.step"
params = { beta = 5.0, max_step = 0.01 }

[[node]]
id = "lstm"
plugin = "learn.lstm"
inputs = { features = "sites.forcing", target = "sites.ssm", physics_loss_1 = "step.term" }
params = { epochs = 2, hidden = 4, seq_len = 7 }
)");
  const auto out = testutil::run(testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " --plugin-path " +
                                 COUPLET_LOSSDEMO_DIR + " run -t 1 --runs-dir " + (tmp.path / "runs").string() + " " +
                                 wf.string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  auto hist = artifact<Table>(tmp.path / "runs/step/latest/artifacts/lstm/history.h5");
  REQUIRE(hist->has("physics_loss_1"));
  CHECK(std::isfinite(hist->numbers("physics_loss_1")[1]));
  auto model = artifact<Model>(tmp.path / "runs/step/latest/artifacts/lstm/model.h5");
  CHECK(model->attrs.at("physics_losses") == "lossdemo.step beta=5");
}
