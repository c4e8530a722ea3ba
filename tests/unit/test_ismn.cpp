// io_ismn: the Header + values parser, the flag screen, the depth selection and the UTC daily means,
// checked on the hand-written fixtures of tests/fixtures/ismn (values worked out by hand in comments),
// and the errors on the corrupt files of tests/fixtures/ismn_bad.
#include "common.hpp"

#include "io_ismn/ismn.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>

using namespace couplet;
using testutil::contains;
using testutil::error_of;
namespace fs = std::filesystem;

namespace {

const fs::path kGood = fs::path(COUPLET_SOURCE_DIR) / "tests" / "fixtures" / "ismn";
const fs::path kBad = fs::path(COUPLET_SOURCE_DIR) / "tests" / "fixtures" / "ismn_bad";

double at(const Dataset& ds, std::size_t site, const char* date) {
  const auto& time = ds.var("time").values<double>();
  const double day = static_cast<double>(parse_date(date));
  for (std::size_t t = 0; t < time.size(); ++t)
    if (time[t] == day) return ds.var("SSM").values<float>()[site * time.size() + t];
  throw std::runtime_error(std::string("no day ") + date);
}

ismn::LoadOptions options() {
  ismn::LoadOptions opt;
  opt.dir = kGood;
  return opt;
}

}  // namespace

TEST_CASE("ismn: parses the header and the value lines") {
  std::istringstream in(
      "RISMA      RISMA      CEF             45.38546 -75.71978                 79.0 0.0000 0.0500 Hydraprobe II Sdi-12_B\n"
      "2015/04/11 15:00 0.428 G Out of WFV average range,NA,NA,OK,OK,OK\n"
      "\n"
      "2015/04/16 16:00 0.335 D05,D04 Out of WFV average range,NA,NA,OK,OK,OK\n"
      "2015/04/17 00:00 nan M\n");
  const auto f = ismn::parse_stm(in, "x.stm");
  CHECK(f.header.cse == "RISMA");
  CHECK(f.header.network == "RISMA");
  CHECK(f.header.station == "CEF");
  CHECK(f.header.latitude == doctest::Approx(45.38546));
  CHECK(f.header.longitude == doctest::Approx(-75.71978));
  CHECK(f.header.elevation == doctest::Approx(79.0));
  CHECK(f.header.depth_from == 0.0);
  CHECK(f.header.depth_to == doctest::Approx(0.05));
  CHECK(f.header.sensor == "Hydraprobe II Sdi-12_B");
  REQUIRE(f.records.size() == 3);
  CHECK(f.records[0].day == parse_date("2015-04-11"));
  CHECK(f.records[0].minute == 15 * 60);
  CHECK(f.records[0].value == doctest::Approx(0.428));
  CHECK(f.records[0].flag == "G");
  CHECK(f.records[1].flag == "D05,D04");
  CHECK(std::isnan(f.records[2].value));
  CHECK(f.records[2].flag == "M");
}

TEST_CASE("ismn: load screens flags, selects the depth and averages UTC days") {
  std::vector<std::string> seen;
  const auto out = ismn::load(options(), [&](std::size_t done, std::size_t total, const fs::path& file) {
    CHECK(done == seen.size());
    CHECK(total == 5);  // the five _sm_ files; the _ts_ file does not match the default pattern
    seen.push_back(file.filename().string());
  });
  const auto& ssm = out.ssm;
  CHECK(ssm.dim_names() == std::vector<std::string>{"site", "time"});
  CHECK(series::site_names(ssm) == std::vector<std::string>{"NetA_StationOne", "NetA_StationTwo", "NetB_Site-3"});
  const auto time = series::time_days(ssm);
  REQUIRE(time.size() == 5);  // 2019-12-31 (Site-3's first value) .. 2020-01-04 (its last)
  CHECK(time.front() == parse_date("2019-12-31"));
  CHECK(time.back() == parse_date("2020-01-04"));
  CHECK(ssm.var("SSM").attr("units") == "m3 m-3");
  CHECK(ssm.var("SSM").dtype() == DType::Float32);
  CHECK(contains(ssm.attrs.at("citation"), "doi:10.5194/hess-25-5749-2021"));

  // StationOne, 0.05 m file: 0.300, 0.310, 0.320 kept, 0.500 (D04) dropped; no line on 01-02; 01-03 0.250, 0.270.
  CHECK(at(ssm, 0, "2020-01-01") == doctest::Approx(0.31).epsilon(1e-6));
  CHECK(std::isnan(at(ssm, 0, "2020-01-02")));
  CHECK(at(ssm, 0, "2020-01-03") == doctest::Approx(0.26).epsilon(1e-6));
  CHECK(std::isnan(at(ssm, 0, "2019-12-31")));
  // StationTwo, two sensors pooled: 01-01 (0.200 + 0.220 + 0.230) / 3; 01-02 0.240 (0.260 is "D05,D04").
  CHECK(at(ssm, 1, "2020-01-01") == doctest::Approx(0.65 / 3).epsilon(1e-6));
  CHECK(at(ssm, 1, "2020-01-02") == doctest::Approx(0.24).epsilon(1e-6));
  // Site-3: 23:00 on 12-31 is that UTC day; the NaN flagged M on 01-01 is dropped.
  CHECK(at(ssm, 2, "2019-12-31") == doctest::Approx(0.15).epsilon(1e-6));
  CHECK(at(ssm, 2, "2020-01-01") == doctest::Approx(0.16).epsilon(1e-6));
  CHECK(std::isnan(at(ssm, 2, "2020-01-03")));
  CHECK(at(ssm, 2, "2020-01-04") == doctest::Approx(0.17).epsilon(1e-6));

  // Station coordinates, in the ssm Dataset and in sites.
  for (const Dataset* ds : {&out.ssm, &out.sites}) {
    CHECK(ds->var("lat").as_double() == std::vector<double>{45.1, 46.0, -33.5});
    CHECK(ds->var("lon").as_double() == std::vector<double>{-75.2, -74.0, 150.25});
    CHECK(ds->var("elevation").as_double() == std::vector<double>{79.0, 120.5, 10.0});
  }
  CHECK(out.sites.var("network").values<std::string>() == std::vector<std::string>{"NetA", "NetA", "NetB"});
  CHECK(out.sites.var("station").values<std::string>()[2] == "Site-3");
  CHECK(out.sites.var("depth_to").as_double()[0] == doctest::Approx(0.05));

  REQUIRE(out.warnings.size() == 2);
  CHECK(out.warnings[0] == "dropped 3 of 15 values whose ISMN flag is not in good_flags (G): D04: 1, D05,D04: 1, M: 1");
  CHECK(out.warnings[1] ==
        "pooled the good values of several sensors in the depth range at 1 site(s): NetA_StationTwo (Hydraprobe II "
        "Sdi-12_A (0-0.05 m), Hydraprobe II Sdi-12_B (0-0.05 m))");
  REQUIRE(out.notes.size() == 1);
  CHECK(contains(out.notes[0], "skipped 1 file(s) with sensors outside 0-0.05 m: "
                               "NetA_NetA_StationOne_sm_0.100000_0.100000_ThetaProbe-ML2X_20200101_20200103.stm (0.1-0.1 m)"));
}

TEST_CASE("ismn: options change what is kept") {
  SUBCASE("min_values drops partial days, with a warning") {
    auto opt = options();
    opt.min_values = 2;
    const auto out = ismn::load(opt);
    CHECK(at(out.ssm, 0, "2020-01-01") == doctest::Approx(0.31).epsilon(1e-6));  // 3 values
    CHECK(at(out.ssm, 0, "2020-01-03") == doctest::Approx(0.26).epsilon(1e-6));  // 2 values
    CHECK(std::isnan(at(out.ssm, 1, "2020-01-02")));                              // 1 value
    CHECK(std::isnan(at(out.ssm, 2, "2020-01-01")));
    CHECK(out.warnings.at(1) == "4 site-days have fewer than min_values = 2 good values and are NaN");
  }
  SUBCASE("good_flags") {
    auto opt = options();
    opt.good_flags = {"G", "D04"};
    const auto out = ismn::load(opt);
    CHECK(at(out.ssm, 0, "2020-01-01") == doctest::Approx((0.3 + 0.31 + 0.32 + 0.5) / 4).epsilon(1e-6));
    CHECK(at(out.ssm, 1, "2020-01-02") == doctest::Approx(0.24).epsilon(1e-6));  // D05,D04: D05 is not good
  }
  SUBCASE("a deeper range takes the 0.10 m sensor too") {
    auto opt = options();
    opt.depth_to = 0.1;
    const auto out = ismn::load(opt);
    CHECK(at(out.ssm, 0, "2020-01-02") == doctest::Approx(0.41).epsilon(1e-6));
    CHECK(at(out.ssm, 0, "2020-01-01") == doctest::Approx((0.3 + 0.31 + 0.32 + 0.4) / 4).epsilon(1e-6));
    CHECK(out.notes.empty());
  }
  SUBCASE("start and end fix the time axis") {
    auto opt = options();
    opt.start = static_cast<double>(parse_date("2020-01-02"));
    opt.end = static_cast<double>(parse_date("2020-01-06"));
    const auto out = ismn::load(opt);
    const auto time = series::time_days(out.ssm);
    REQUIRE(time.size() == 5);
    CHECK(time.front() == parse_date("2020-01-02"));
    CHECK(std::isnan(at(out.ssm, 2, "2020-01-06")));
    CHECK(at(out.ssm, 1, "2020-01-02") == doctest::Approx(0.24).epsilon(1e-6));
    CHECK(contains(out.warnings.at(0), "dropped 1 of 5 values"));  // only 01-02..01-06 counted
  }
  SUBCASE("files and recursion") {
    auto opt = options();
    opt.files = {"NetB_*"};
    const auto out = ismn::load(opt);  // the _ts_ file is read as well: the pattern asks for it
    CHECK(series::site_names(out.ssm) == std::vector<std::string>{"NetB_Site-3"});
    CHECK(contains(out.warnings.back(), "pooled"));
    opt.recursive = false;
    CHECK(contains(error_of([&] { ismn::load(opt); }), "'NetB_*' matches no file in"));
  }
}

TEST_CASE("ismn: bad selections are NodeErrors") {
  auto opt = options();
  opt.depth_from = 0.5;
  opt.depth_to = 1.0;
  CHECK(contains(error_of([&] { ismn::load(opt); }),
                 "none of the 5 selected file(s) has a sensor inside the depth range 0.5-1 m"));
  opt = options();
  opt.files = {"*.nc"};
  CHECK(contains(error_of([&] { ismn::load(opt); }), "parameter 'files': '*.nc' matches no file"));
  opt.files = {"NetA/*.stm"};
  CHECK(contains(error_of([&] { ismn::load(opt); }), "is not a file name or pattern (no '/')"));
  opt = options();
  opt.dir = kGood / "nowhere";
  CHECK(contains(error_of([&] { ismn::load(opt); }), "is not a directory"));
  opt = options();
  opt.start = static_cast<double>(parse_date("2021-01-01"));
  opt.end = static_cast<double>(parse_date("2020-01-01"));
  CHECK(contains(error_of([&] { ismn::load(opt); }), "end 2020-01-01 is before start 2021-01-01"));
  opt = options();
  opt.good_flags = {"Z"};
  CHECK(contains(error_of([&] { ismn::load(opt); }), "no good value (ISMN flags Z)"));
}

TEST_CASE("ismn: corrupt files fail with the file name, the line number and what was expected") {
  auto err = [](const char* name) { return error_of([&] { ismn::read_stm(kBad / name); }); };
  const std::string dir = kBad.string() + "/";
  CHECK(err("short_header.stm") ==
        dir + "short_header.stm:1: expected a header 'CSE network station latitude longitude elevation depth_from "
              "depth_to sensor' (at least 9 fields), found 5 fields");
  CHECK(err("bad_latitude.stm") == dir + "bad_latitude.stm:1: expected the latitude (header field 4) as a number, found 'north'");
  CHECK(err("wrong_columns.stm") ==
        dir + "wrong_columns.stm:3: expected at least 4 columns (yyyy/mm/dd hh:mm value ISMN_flag [provider_flag]), found 3");
  CHECK(err("bad_date.stm") == dir + "bad_date.stm:3: expected a date yyyy/mm/dd in column 1, found '2020/13/01'");
  CHECK(err("bad_time.stm") == dir + "bad_time.stm:3: expected a time hh:mm in column 2, found '25:00'");
  CHECK(err("bad_number.stm") == dir + "bad_number.stm:2: expected a number in column 3 (value), found '0.3x0'");
  CHECK(err("out_of_order.stm") ==
        dir + "out_of_order.stm:3: expected time stamps in increasing order, found 2020/01/01 04:00 after 2020-01-01 05:00");
  CHECK(err("truncated.stm") ==
        dir + "truncated.stm:4: expected at least 4 columns (yyyy/mm/dd hh:mm value ISMN_flag [provider_flag]), found 1");
  CHECK(contains(err("binary.stm"), "binary.stm:1: expected a header"));
  CHECK(err("empty.stm") == dir + "empty.stm:1: expected a header 'CSE network station latitude longitude elevation "
                                  "depth_from depth_to sensor', found an empty file");
  CHECK(contains(error_of([&] { ismn::read_stm(kBad / "missing.stm"); }), "cannot open"));

  // Garbage of every kind never crashes: random bytes after a good header fail or parse, nothing else.
  std::string garbage = "N N S 1 2 3 0 0.05 x\n";
  for (int i = 0; i < 2000; ++i) garbage += static_cast<char>((i * 7919 + 13) % 256);
  std::istringstream in(garbage);
  CHECK_THROWS_AS(ismn::parse_stm(in, "garbage"), NodeError);
}
