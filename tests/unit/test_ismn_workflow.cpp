// workflows/ismn_fixtures.toml through the CLI: io.ismn on tests/fixtures/ismn, prep.qc and io.statics_csv.
// Expected values worked out by hand from the fixture files.
#include "common.hpp"

#include <couplet/framework/store.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

using namespace couplet;

TEST_CASE("ismn: workflows/ismn_fixtures.toml runs on the fixture stations") {
  testutil::TempDir tmp("ismn-workflow");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/ismn_fixtures.toml";
  const auto out = testutil::run(testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run " + workflow +
                                 " --runs-dir " + (tmp.path / "runs").string());
  INFO(out.text);
  REQUIRE(out.code == 0);
  // D04 at StationOne, "D05,D04" at StationTwo, M at Site-3 (the 0.10 m sensor and the _ts_ file are not read).
  CHECK(out.text.find("dropped 3 of 15 values") != std::string::npos);
  const auto run_dir = tmp.path / "runs/ismn_fixtures/latest";

  auto ssm = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run_dir / "artifacts/qc/cleaned.h5"));
  REQUIRE(ssm);
  CHECK(series::site_names(*ssm) == std::vector<std::string>{"NetA_StationOne", "NetA_StationTwo", "NetB_Site-3"});
  const auto s = series::read_site_series(*ssm, "SSM");
  REQUIRE(s.n_times() == 5);  // 2019-12-31 .. 2020-01-04
  CHECK(s.time.front() == parse_date("2019-12-31"));
  // StationOne 2020-01-01: 0.300, 0.310, 0.320 kept, 0.500 (D04) dropped → 0.31; 2020-01-02 has no value.
  CHECK(s.row(0)[1] == doctest::Approx(0.31).epsilon(1e-5));
  CHECK(std::isnan(s.row(0)[2]));
  // StationTwo 2020-01-01: sensors A (0.200, 0.220) and B (0.230) pooled → 0.65 / 3.
  CHECK(s.row(1)[1] == doctest::Approx(0.65 / 3).epsilon(1e-5));
  // Site-3 2019-12-31 23:00 UTC: 0.150.
  CHECK(s.row(2)[0] == doctest::Approx(0.15).epsilon(1e-5));

  auto st = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(run_dir / "artifacts/statics/statics.h5"));
  REQUIRE(st);
  CHECK(st->var("lat").as_double() == std::vector<double>{45.1, 46.0, -33.5});
  CHECK(st->var("elevation").as_double() == std::vector<double>{79.0, 120.5, 10.0});
  CHECK(st->var("sand").as_double() == std::vector<double>(3, 0.4));  // documented default, no CSV
}
