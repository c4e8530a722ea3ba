// Gridded learning through the CLI: workflows/convlstm_transfer.toml on a tiny world (CNN, per-pixel LSTM and
// ConvLSTM × transfer / no transfer), the report's maps, byte-identical reruns, and the errors a user meets.
// The networks, samples and trainer are tested in tests/torch/test_grid.cpp.
#include "common.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>

using namespace couplet;

namespace {
std::string grid_cli(int threads = 1) {
  return testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q -t " + std::to_string(threads) + " ";
}
/// The transfer workflow on 4 × 5 cells, 2 epochs per training, hidden 4.
std::string small_transfer() {
  std::string s = "--set world.rows=4 --set world.cols=5 ";
  for (const char* k : {"cnn", "convlstm", "lstm"})
    for (const char* v : {"pretrain", "transfer", "scratch"}) s += std::string("--set ") + k + "_" + v + ".epochs=2 ";
  for (const char* k : {"cnn", "convlstm", "lstm"})
    for (const char* v : {"pretrain", "scratch"}) s += std::string("--set ") + k + "_" + v + ".hidden=4 ";
  return s;
}
std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto p = text.find(part); p != std::string::npos; p = text.find(part, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("grid: workflows/convlstm_transfer.toml runs small, forecasts the test year only, draws maps, repeats itself") {
  testutil::TempDir tmp("grid-transfer");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/convlstm_transfer.toml";
  for (const char* dir : {"a", "b"}) {
    const auto out = testutil::run(grid_cli() + small_transfer() + "--runs-dir " + (tmp.path / dir).string() + " " + workflow);
    INFO(out.text);
    REQUIRE(out.code == 0);
  }
  const auto run = tmp.path / "a/convlstm_transfer/latest";
  const double test_start = static_cast<double>(parse_date("2018-01-01"));
  for (const char* k : {"cnn", "convlstm", "lstm"})
    for (const char* v : {"transfer", "scratch"}) {
      const std::string id = std::string(k) + "_" + v;
      INFO(id);
      auto pred = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run / "artifacts" / (id + "_forecast") / "prediction.h5"));
      REQUIRE(pred);
      const auto time = pred->var("time").as_double();
      const auto& f3 = pred->var("SSM_lead3").values<float>();
      const std::size_t HW = 20;
      REQUIRE(f3.size() == time.size() * HW);
      std::size_t before = 0, inside = 0, n_inside = 0;
      for (std::size_t t = 0; t < time.size(); ++t)
        for (std::size_t k2 = 0; k2 < HW; ++k2) {
          const float x = f3[t * HW + k2];
          if (time[t] < test_start) before += !std::isnan(x);
          else inside += std::isfinite(x) && x > -0.2f && x < 0.8f, ++n_inside;
        }
      CHECK(before == 0);              // nothing before 2018 is forecast
      CHECK(inside == n_inside);       // every cell of every 2018 day, plausible values
      for (const char* ref : {"smap", "truth"}) {
        auto scores = std::dynamic_pointer_cast<const Table>(store::read_artifact(run / "artifacts" / (id + "_vs_" + ref) / "scores.h5"));
        REQUIRE(scores);
        REQUIRE(scores->rows() == 3);
        CHECK(scores->numbers("lead") == std::vector<double>{3, 5, 7});
        for (double x : scores->numbers("RMSE")) CHECK((std::isfinite(x) && x > 0 && x < 0.3));
        for (double n : scores->numbers("n")) CHECK(n > 0);
      }
      // Maps in the report: a rectangle per cell with a value (20) plus the background and 20 colour-bar steps.
      const auto svg = testutil::read_file(run / "report" / (id + "_vs_truth.maps.rmse_lead5.svg"));
      CHECK(svg.rfind("<svg", 0) == 0);
      CHECK(count(svg, "<rect") == 20 + 1 + 20);
      CHECK(svg.find("</svg>") != std::string::npos);
    }
  const auto readme = testutil::read_file(run / "report/README.md");
  CHECK(readme.find("![error_mean_lead3](convlstm_transfer_vs_smap.maps.error_mean_lead3.svg)") != std::string::npos);
  // The fine-tuned model is a learn.grid model with the pre-trained model's configuration.
  auto pre = std::dynamic_pointer_cast<const Model>(store::read_artifact(run / "artifacts/convlstm_pretrain/model.h5"));
  auto ft = std::dynamic_pointer_cast<const Model>(store::read_artifact(run / "artifacts/convlstm_transfer/model.h5"));
  REQUIRE(pre);
  REQUIRE(ft);
  CHECK(ft->type == "learn.grid");
  CHECK(ft->config == pre->config);
  CHECK(ft->config.find("kind = convlstm") != std::string::npos);
  // Same seed, same threads: the same bytes.
  for (const char* file : {"convlstm_transfer/model.h5", "lstm_scratch/model.h5", "cnn_transfer_forecast/prediction.h5",
                           "convlstm_transfer_vs_truth/scores.h5"})
    CHECK_MESSAGE(testutil::read_file(run / "artifacts" / file) ==
                      testutil::read_file(tmp.path / "b/convlstm_transfer/latest/artifacts" / file), file);
}

TEST_CASE("grid: bad gridded inputs and settings are errors naming the node and what was expected") {
  testutil::TempDir tmp("grid-errors");
  const auto wf = tmp.path / "g.toml";
  testutil::write_file(wf, R"(couplet = 1
name = "grid_errors"
seed = 3

[[node]]
id = "world"
plugin = "synth.world"
params = { rows = 3, cols = 4, start = "2015-01-01", days = 200 }

[[node]]
id = "truth"
plugin = "synth.truth"
inputs = { forcing = "world.forcing", hidden_statics = "world.hidden_statics", hidden_params = "world.hidden_params" }
params = { spinup_years = 0, obs_days = 0 }

[[node]]
id = "g_forcing"
plugin = "io.sites_to_grid"
inputs = { data = "world.forcing", statics = "world.statics" }
params = { variables = ["Pr", "Tair"] }

[[node]]
id = "g_rean"
plugin = "io.sites_to_grid"
inputs = { data = "truth.reanalysis", statics = "world.statics" }

[[node]]
id = "pre"
plugin = "learn.convlstm"
inputs = { target = "g_rean.data", inputs = "g_forcing.data" }
params = { hidden = 3, epochs = 1 }

[[node]]
id = "ft"
plugin = "learn.finetune"
inputs = { init = "pre.model", target = "g_rean.data", inputs = "g_forcing.data" }
params = { epochs = 1, freeze = ["encoder"] }
)");
  const std::string base = grid_cli() + "--runs-dir " + (tmp.path / "runs").string() + " ";
  {
    const auto ok = testutil::run(base + wf.string());
    INFO(ok.text);
    REQUIRE(ok.code == 0);
  }
  struct Case {
    std::string set, expected;
  };
  const Case cases[] = {
      {"--set pre.channels='[\"Pr\", \"SSM\", \"Soil_T\"]'", "input 'inputs' has no variable 'Soil_T' (its (time, lat, lon) variables: Pr, Tair)"},
      {"--set ft.freeze='[\"decoder\"]'", "freeze: 'decoder' matches no parameter of the convlstm network (its parameters: encoder.0.gates.weight"},
      {"--set pre.kernel=4", "parameter 'kernel': must be odd"},
      {"--set pre.leads='[3, 3]'", "parameter 'leads': 3 is listed twice"},
      {"--set pre.channels='[\"Pr\", \"SSM\", \"Pr\"]'", "parameter 'channels': 'Pr' is listed twice"},
      {"--set pre.leads='[3, 2.5]'", "parameter 'leads': 2.5"},
      {"--set pre.train_end='\"2015-01-10\"'", "no training samples"},
      {"--set pre.train_start='\"2030-01-01\"'", "holds no day of the target's record (2015-01-01 .. 2015-07-19)"},
      {"--set world.n_sites=5", "has no whole row/col index (a scattered-site world has no grid)"},
  };
  for (const auto& c : cases) {
    const auto out = testutil::run(base + c.set + " " + wf.string());
    INFO(c.set);
    INFO(out.text);
    CHECK(out.code != 0);
    CHECK(out.text.find(c.expected) != std::string::npos);
  }
}

TEST_CASE("grid: workflows/era5_smap_transfer.toml fine-tunes an ERA5-Land model on real SMAP grids") {
  testutil::TempDir tmp("grid-era5");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/era5_smap_transfer.toml";
  const std::string small = "--set pretrain.epochs=2 --set transfer.epochs=2 --set scratch.epochs=2 ";
  const auto out = testutil::run(grid_cli() + small + "--runs-dir " + (tmp.path / "runs").string() + " " + workflow);
  INFO(out.text);
  REQUIRE(out.code == 0);
  const auto run = tmp.path / "runs/era5_smap_transfer/latest/artifacts";
  auto pre = std::dynamic_pointer_cast<const Model>(store::read_artifact(run / "pretrain/model.h5"));
  auto ft = std::dynamic_pointer_cast<const Model>(store::read_artifact(run / "transfer/model.h5"));
  REQUIRE(pre);
  REQUIRE(ft);
  // The fine-tuned model is a model of SMAP: its target and lagged channel took the new name.
  CHECK(pre->config.find("target = swvl1\nchannels = swvl1\n") != std::string::npos);
  CHECK(ft->config.find("target = soil_moisture\nchannels = soil_moisture\n") != std::string::npos);
  for (const char* node : {"transfer_score", "scratch_score", "persistence_score"}) {
    INFO(node);
    auto scores = std::dynamic_pointer_cast<const Table>(store::read_artifact(run / node / "scores.h5"));
    REQUIRE(scores);
    REQUIRE(scores->rows() == 3);
    for (double n : scores->numbers("n")) CHECK(n > 10000);  // February SMAP cells with a forecast
    for (double x : scores->numbers("RMSE")) CHECK((std::isfinite(x) && x < 0.3));
  }
  // A channel that is not the target needs input 'inputs'.
  const auto bad = testutil::run(grid_cli() + small + "--set scratch.channels='[\"soil_moisture\", \"x\"]' "
                                 "--runs-dir " + (tmp.path / "runs").string() + " " + workflow);
  CHECK(bad.code != 0);
  CHECK(bad.text.find("channel 'x' is not the target 'soil_moisture', so it is read from input 'inputs', which is not connected") !=
        std::string::npos);
}
