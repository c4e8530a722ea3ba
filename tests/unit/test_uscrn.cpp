// io_uscrn: the daily01 parser, the derived variables and the Datasets, checked against values read by
// hand from the bundled files (data/uscrn).
#include "common.hpp"

#include "io_uscrn/uscrn.hpp"
#include "io_statics/statics.hpp"
#include "tem_wbm/simulate.hpp"

#include <couplet/context.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

using namespace couplet;
using testutil::error_of;
namespace fs = std::filesystem;

namespace {

const fs::path kData = fs::path(COUPLET_SOURCE_DIR) / "data" / "uscrn";
const fs::path kBad = fs::path(COUPLET_SOURCE_DIR) / "tests" / "fixtures" / "uscrn_bad";

const uscrn::DailyRecord& on_day(const std::vector<uscrn::DailyRecord>& records, const char* date) {
  const auto day = parse_date(date);
  for (auto& r : records)
    if (r.day == day) return r;
  throw std::runtime_error(std::string("no record on ") + date);
}

// Value of a (site, time) variable at site index s and a date.
double at(const Dataset& ds, const char* var, std::size_t s, const char* date) {
  const auto& time = ds.var("time").values<double>();
  const auto t = static_cast<std::size_t>(static_cast<double>(parse_date(date)) - time.front());
  return ds.var(var).values<float>().at(s * time.size() + t);
}

}  // namespace

TEST_CASE("uscrn: parses a real daily01 line field by field") {
  // data/uscrn/daily01/2017/CRND0103-2017-AL_Gadsden_19_N.txt, line 19:
  // 63857 20170119  2.422  -85.96   34.29    16.1    10.1    13.1    14.0    31.4     3.35 C    19.0     9.6
  //   13.9    97.5    70.6    87.4   0.188   0.178   0.194   0.243   0.286    13.8    13.6    13.4    13.4    13.2
  const auto records = uscrn::read_daily01(kData / "daily01/2017/CRND0103-2017-AL_Gadsden_19_N.txt");
  REQUIRE(records.size() == 365);
  const auto& r = records[18];
  CHECK(r.wban == "63857");
  CHECK(format_date(r.day) == "2017-01-19");
  CHECK(r.longitude == doctest::Approx(-85.96));
  CHECK(r.latitude == doctest::Approx(34.29));
  CHECK(r.t_mean == doctest::Approx(13.1));
  CHECK(r.t_avg == doctest::Approx(14.0));
  CHECK(r.precip == doctest::Approx(31.4));
  CHECK(r.solarad == doctest::Approx(3.35));
  CHECK(r.rh_avg == doctest::Approx(87.4));
  CHECK(r.sm[0] == doctest::Approx(0.188));
  CHECK(r.sm[1] == doctest::Approx(0.178));
  CHECK(r.sm[4] == doctest::Approx(0.286));
  CHECK(r.soil_t[0] == doctest::Approx(13.8));
}

TEST_CASE("uscrn: missing-value codes become NaN") {
  // 2019-01-31 at AL_Gadsden_19_N is missing throughout: -9999.0, -9999.00 (solar), -99.000 (SM).
  const auto gadsden = uscrn::read_daily01(kData / "daily01/2019/CRND0103-2019-AL_Gadsden_19_N.txt");
  const auto& r = on_day(gadsden, "2019-01-31");
  CHECK(std::isnan(r.precip));
  CHECK(std::isnan(r.solarad));
  CHECK(std::isnan(r.t_avg));
  CHECK(std::isnan(r.rh_avg));
  CHECK(std::isnan(r.sm[0]));
  CHECK(std::isnan(r.soil_t[0]));
  CHECK(r.longitude == doctest::Approx(-85.96));  // the station fields are still there

  // AZ_Williams_35_NNW 2016-01-12: 5 cm SM is -99.000, 10 cm is 0.169, soil temperature at 20 cm -9999.0.
  const auto williams = uscrn::read_daily01(kData / "daily01/2016/CRND0103-2016-AZ_Williams_35_NNW.txt");
  const auto& w = on_day(williams, "2016-01-12");
  CHECK(std::isnan(w.sm[0]));
  CHECK(w.sm[1] == doctest::Approx(0.169));
  CHECK(std::isnan(w.soil_t[2]));
  CHECK(w.soil_t[0] == doctest::Approx(-0.2));
}

TEST_CASE("uscrn: unit conversions and derived variables") {
  // Tetens: e_s(0 °C) = 6.108 hPa exactly; e_s(20 °C) ≈ 23.38 hPa (tables: 23.37).
  CHECK(uscrn::saturation_vapour_pressure(0.0) == doctest::Approx(6.108));
  CHECK(uscrn::saturation_vapour_pressure(20.0) == doctest::Approx(23.3828).epsilon(1e-5));
  // AL_Gadsden_19_N 2017-01-19: T_DAILY_AVG 14.0 °C, RH 87.4 % → Vp = 0.874 · 6.108 e^(17.27·14/251.3).
  CHECK(uscrn::vapour_pressure(14.0, 87.4) == doctest::Approx(13.971806).epsilon(1e-6));
  // SOLARAD 3.35 MJ m-2 d-1 → 3.35e6 J / 86400 s = 38.773 W m-2.
  CHECK(uscrn::daily_mj_to_wm2(3.35) == doctest::Approx(38.773148).epsilon(1e-6));
  CHECK(std::isnan(uscrn::vapour_pressure(14.0, std::nan(""))));

  // CA_Merced_23_WSW 2016-02-21: T_DAILY_AVG is -9999.0, so Tair falls back to T_DAILY_MEAN 10.1.
  const auto merced = uscrn::read_daily01(kData / "daily01/2016/CRND0103-2016-CA_Merced_23_WSW.txt");
  const auto& m = on_day(merced, "2016-02-21");
  CHECK(std::isnan(m.t_avg));
  CHECK(uscrn::air_temperature(m) == doctest::Approx(10.1));
  CHECK(uscrn::air_temperature(on_day(merced, "2016-02-20")) == doctest::Approx(on_day(merced, "2016-02-20").t_avg));
}

TEST_CASE("uscrn: corrupt files fail with the file name, the line number and what was expected") {
  auto message = [](const char* file) { return error_of([&] { uscrn::read_daily01(kBad / file); }); };

  const auto truncated = message("truncated.txt");
  CHECK(truncated.find((kBad / "truncated.txt").string() + ":3: expected 28 columns, found 8") != std::string::npos);

  const auto columns = message("wrong_columns.txt");
  CHECK(columns.find("wrong_columns.txt:4: expected 28 columns, found 23") != std::string::npos);

  const auto non_numeric = message("non_numeric.txt");
  CHECK(non_numeric.find("non_numeric.txt:2: expected a number in column 19 (SOIL_MOISTURE_5_DAILY), found '0.2x9'") !=
        std::string::npos);

  const auto date = message("bad_date.txt");
  CHECK(date.find("bad_date.txt:3: expected a date YYYYMMDD in column 2 (LST_DATE), found '20161303'") !=
        std::string::npos);

  CHECK(message("no_such_file.txt").find("cannot open") != std::string::npos);
}

TEST_CASE("uscrn: the parser rejects garbage without crashing") {
  const std::string good =
      "63857 20160101  2.422  -85.96   34.29     4.5     0.7     2.6     2.4     0.0     3.82 C     9.3     1.3"
      "     3.9    86.6    63.1    76.4   0.292   0.274   0.255   0.313   0.303    10.5    10.6    11.6    12.9    15.0";
  auto parse = [](const std::string& text) {
    std::istringstream in(text);
    return uscrn::parse_daily01(in, "mem.txt");
  };
  CHECK(parse("").empty());
  CHECK(parse("\n  \n" + good + "\r\n\n").size() == 1);  // blank lines and CRLF are fine

  auto message = [&](const std::string& text) { return error_of([&] { parse(text); }); };
  CHECK(message(std::string("\0\x01\xff garbage", 12)).find("mem.txt:1: expected 28 columns") != std::string::npos);
  std::string nan_field = good;
  nan_field.replace(nan_field.find("0.0 "), 3, "nan");  // P_DAILY_CALC must be a finite number
  CHECK(message(nan_field).find("mem.txt:1: expected a number in column 10 (P_DAILY_CALC), found 'nan'") !=
        std::string::npos);
  std::string long_field = good;
  long_field.replace(long_field.find("3.82"), 4, std::string(200, 'x'));
  CHECK(message(long_field).find("found 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'") != std::string::npos);
  CHECK(message(good + "\n" + good).find("mem.txt:2: expected dates in increasing order, found 2016-01-01 after "
                                         "2016-01-01") != std::string::npos);
  CHECK(message(good + "\n" + good.substr(0, good.size() - 4)).find("mem.txt:2: expected 28 columns, found 27") !=
        std::string::npos);
}

TEST_CASE("uscrn: stations.csv") {
  const auto stations = uscrn::read_stations(kData / "stations.csv");
  REQUIRE(stations.size() == 54);
  CHECK(stations.front().name == "AL_Gadsden_19_N");
  CHECK(stations.front().wban == "63857");
  CHECK(stations.front().longitude == doctest::Approx(-85.96));
  CHECK(stations.front().latitude == doctest::Approx(34.29));
  bool leading_zero = false;  // VA_Charlottesville_2_SSE is WBAN 03759: kept as text
  for (auto& s : stations) leading_zero |= s.name == "VA_Charlottesville_2_SSE" && s.wban == "03759";
  CHECK(leading_zero);
  CHECK(uscrn::daily01_path("d", 2017, "AL_Gadsden_19_N") == fs::path("d/daily01/2017/CRND0103-2017-AL_Gadsden_19_N.txt"));
}

TEST_CASE("uscrn: load builds (site, time) Datasets with screened soil moisture") {
  uscrn::LoadOptions opt;
  opt.dir = kData;
  opt.stations = {"AL_Gadsden_19_N", "CA_Merced_23_WSW", "AL_Selma_13_WNW", "AZ_Williams_35_NNW"};
  opt.start = parse_date("2016-01-01");
  opt.end = parse_date("2017-12-31");
  std::vector<std::string> visited;
  const auto out = uscrn::load(opt, [&](std::size_t done, std::size_t total, const std::string& station) {
    CHECK(total == 4);
    CHECK(done == visited.size());
    visited.push_back(station);
  });
  CHECK(visited == opt.stations);

  for (const Dataset* ds : {&out.forcing, &out.ssm}) {
    CHECK(ds->dim_names() == std::vector<std::string>{"site", "time"});
    CHECK(ds->dim("site") == 4);
    CHECK(ds->dim("time") == 731);
    CHECK(ds->var("site").values<std::string>() == opt.stations);
    const auto& time = ds->var("time");
    CHECK(time.attr("units") == kTimeUnits);
    CHECK(time.values<double>().front() == 16801.0);  // 2016-01-01
    CHECK(time.values<double>().back() == 17531.0);   // 2017-12-31
    CHECK(ds->attrs.at("citation").find("doi:10.1175/BAMS-D-12-00170.1") != std::string::npos);
    CHECK(ds->attrs.at("citation").find("doi:10.1175/JHM-D-12-0146.1") != std::string::npos);
    CHECK(!ds->attrs.at("source").empty());
  }
  for (const char* v : {"Pr", "SWD", "Tair", "Vp", "Tsoil"}) {
    CHECK(out.forcing.var(v).dtype() == DType::Float32);
    CHECK(out.forcing.var(v).dims() == std::vector<std::string>{"site", "time"});
  }
  CHECK(out.forcing.var("Pr").attr("units") == "mm d-1");
  CHECK(out.forcing.var("SWD").attr("units") == "W m-2");
  CHECK(out.forcing.var("Tair").attr("units") == "degC");
  CHECK(out.forcing.var("Vp").attr("units") == "hPa");
  CHECK(out.forcing.var("Tsoil").attr("units") == "degC");
  CHECK(out.ssm.var("SSM").attr("units") == "m3 m-3");
  CHECK(!out.ssm.var("SSM").attr("long_name").empty());

  // AL_Gadsden_19_N (site 0), 2017-01-19: see "parses a real daily01 line".
  CHECK(at(out.forcing, "Pr", 0, "2017-01-19") == doctest::Approx(31.4));
  CHECK(at(out.forcing, "SWD", 0, "2017-01-19") == doctest::Approx(38.773148).epsilon(1e-6));
  CHECK(at(out.forcing, "Tair", 0, "2017-01-19") == doctest::Approx(14.0));
  CHECK(at(out.forcing, "Vp", 0, "2017-01-19") == doctest::Approx(13.971806).epsilon(1e-6));
  CHECK(at(out.forcing, "Tsoil", 0, "2017-01-19") == doctest::Approx(13.8));
  CHECK(at(out.ssm, "SSM", 0, "2017-01-19") == doctest::Approx(0.188));
  CHECK(at(out.ssm, "SSM10", 0, "2017-01-19") == doctest::Approx(0.178));
  // CA_Merced_23_WSW (site 1), 2016-02-21: Tair from T_DAILY_MEAN 10.1; Vp from it and RH 82.7 %.
  CHECK(at(out.forcing, "Tair", 1, "2016-02-21") == doctest::Approx(10.1));
  CHECK(at(out.forcing, "Vp", 1, "2016-02-21") == doctest::Approx(10.223502).epsilon(1e-6));
  CHECK(at(out.forcing, "SWD", 1, "2016-02-21") == doctest::Approx(17.35 / 0.0864).epsilon(1e-6));
  // AL_Selma_13_WNW (site 2), 2016-01-01: SM 0.653 (5 cm) and 0.637 (10 cm) are > 0.6: screened.
  CHECK(std::isnan(at(out.ssm, "SSM", 2, "2016-01-01")));
  CHECK(std::isnan(at(out.ssm, "SSM10", 2, "2016-01-01")));
  // AZ_Williams_35_NNW (site 3), 2016-01-12: 5 cm missing (-99.000), 10 cm 0.169.
  CHECK(std::isnan(at(out.ssm, "SSM", 3, "2016-01-12")));
  CHECK(at(out.ssm, "SSM10", 3, "2016-01-12") == doctest::Approx(0.169));

  // Site 0's series is contiguous: its 731 days hold the 2790.0 mm of P_DAILY_CALC in the two files
  // (awk '$10 != -9999 {s += $10}') and 730 valid 5 cm values.
  const auto& pr = out.forcing.var("Pr").values<float>();
  const auto& ssm = out.ssm.var("SSM").values<float>();
  double total = 0;
  std::size_t valid_days = 0, valid_ssm = 0;
  for (std::size_t t = 0; t < 731; ++t) {
    if (!std::isnan(pr[t])) {
      total += pr[t];
      ++valid_days;
    }
    valid_ssm += !std::isnan(ssm[t]);
  }
  CHECK(total == doctest::Approx(2790.0).epsilon(1e-5));
  CHECK(valid_days == 731);
  CHECK(valid_ssm == 730);

  // One summary warning: Selma's 128 (5 cm) + 258 (10 cm) values above 0.6 in 2016–2017.
  REQUIRE(out.warnings.size() == 1);
  CHECK(out.warnings[0] ==
        "screened 386 soil moisture values outside [0, 0.6] m3 m-3 to NaN (SSM: 128, SSM10: 258) at 1 of 4 sites");

  CHECK(out.sites.dim_names() == std::vector<std::string>{"site"});
  CHECK(out.sites.var("lat").values<double>()[0] == doctest::Approx(34.29));
  CHECK(out.sites.var("lon").values<double>()[1] == doctest::Approx(-120.88));
  CHECK(out.sites.var("wban").values<std::string>()[0] == "63857");
}

TEST_CASE("uscrn: days beyond the files are NaN, with a warning") {
  uscrn::LoadOptions opt;
  opt.dir = kData;
  opt.stations = {"AL_Gadsden_19_N"};
  opt.start = parse_date("2020-12-30");
  opt.end = parse_date("2021-01-02");
  const auto out = uscrn::load(opt);
  CHECK(out.forcing.dim("time") == 4);
  CHECK(!std::isnan(at(out.forcing, "Pr", 0, "2020-12-31")));
  CHECK(std::isnan(at(out.forcing, "Pr", 0, "2021-01-01")));
  CHECK(std::isnan(at(out.ssm, "SSM", 0, "2021-01-02")));
  REQUIRE(out.warnings.size() == 1);
  CHECK(out.warnings[0].find("2 site-days in 2020-12-30..2021-01-02 have no line in the files") != std::string::npos);
  CHECK(out.warnings[0].find("AL_Gadsden_19_N (2 days)") != std::string::npos);
}

TEST_CASE("uscrn: the default selection is every listed station with files") {
  uscrn::LoadOptions opt;
  opt.dir = kData;
  opt.start = opt.end = parse_date("2018-07-01");
  const auto out = uscrn::load(opt);
  CHECK(out.ssm.dim("site") == 54);
  CHECK(out.ssm.var("site").values<std::string>().front() == "AL_Gadsden_19_N");
  CHECK(out.ssm.var("site").values<std::string>().back() == "WA_Spokane_17_SSW");
}

TEST_CASE("uscrn: bad selections are NodeErrors that say what is valid") {
  uscrn::LoadOptions opt;
  opt.dir = kData;
  opt.start = parse_date("2016-01-01");
  opt.end = parse_date("2016-01-31");

  opt.stations = {"AL_Gadsden_19N"};
  const auto unknown = error_of([&] { uscrn::load(opt); });
  CHECK(unknown.find("unknown station 'AL_Gadsden_19N'") != std::string::npos);
  CHECK(unknown.find("nearest valid names: AL_Gadsden_19_N") != std::string::npos);
  // Only near names are offered besides the nearest one.
  CHECK(uscrn::nearest_names("wa_spokane", {"AL_Gadsden_19_N", "WA_Spokane_17_SSW", "WA_Quinault_4_NE"}) ==
        std::vector<std::string>{"WA_Spokane_17_SSW"});
  CHECK(uscrn::nearest_names("AL_Selma_13_W", {"AL_Gadsden_19_N", "AL_Selma_13_WNW", "AL_Selma_13_N"}) ==
        std::vector<std::string>{"AL_Selma_13_N", "AL_Selma_13_WNW"});

  opt.stations = {"AL_Gadsden_19_N", "AL_Gadsden_19_N"};
  CHECK(error_of([&] { uscrn::load(opt); }).find("listed twice") != std::string::npos);

  opt.stations = {};
  opt.end = parse_date("2015-12-31");
  CHECK(error_of([&] { uscrn::load(opt); }).find("is before start") != std::string::npos);

  // No station has a file in 2030: the default selection is empty.
  opt.start = parse_date("2030-01-01");
  opt.end = parse_date("2030-12-31");
  CHECK(error_of([&] { uscrn::load(opt); }).find("no station of") != std::string::npos);

  opt.dir = kBad;  // no stations.csv there
  CHECK(error_of([&] { uscrn::load(opt); }).find("cannot open") != std::string::npos);
}

// ---- statics (io.statics_csv) on the USCRN sites --------------------------------------------------------

namespace {

uscrn::Loaded two_stations() {
  uscrn::LoadOptions opt;
  opt.dir = kData;
  opt.stations = {"AL_Gadsden_19_N", "CA_Merced_23_WSW"};
  opt.start = parse_date("2017-01-01");
  opt.end = parse_date("2017-01-31");
  return uscrn::load(opt);
}

statics::Csv csv_of(const std::string& text) {
  std::istringstream in(text);
  return statics::parse_csv(in, "statics.csv");
}

}  // namespace

TEST_CASE("uscrn statics: without a CSV, location from the station list and listed defaults") {
  const auto loaded = two_stations();
  const auto built = statics::build(loaded.sites, nullptr);
  const Dataset& st = built.statics;
  CHECK(st.dim_names() == std::vector<std::string>{"site"});
  CHECK(st.var("site").values<std::string>() == std::vector<std::string>{"AL_Gadsden_19_N", "CA_Merced_23_WSW"});
  std::vector<std::string> names;
  for (const auto& v : st.variables()) names.push_back(v.name());
  CHECK(names == std::vector<std::string>{"site", "elevation", "sand", "silt", "clay", "land", "lat", "lon", "LAI"});
  CHECK(st.var("lat").as_double() == std::vector<double>{34.29, 37.24});
  CHECK(st.var("lon").as_double()[1] == doctest::Approx(-120.88));
  CHECK(st.var("sand").as_double() == std::vector<double>{0.4, 0.4});
  CHECK(st.var("clay").as_double() == std::vector<double>{0.2, 0.2});
  CHECK(st.var("elevation").as_double() == std::vector<double>{0, 0});
  CHECK(st.var("LAI").as_double() == std::vector<double>{2, 2});
  CHECK(st.var("LAI").attr("units") == "m2 m-2");
  CHECK(st.var("lat").attr("source_per_site") == "ss");
  CHECK(st.var("sand").attr("source_per_site") == "dd");
  REQUIRE(built.warnings.size() == 1);
  CHECK(built.warnings[0] ==
        "statics not given by the CSV or the sites input, set to documented defaults: elevation = 0 m (all 2 sites), "
        "sand = 0.4 (all 2 sites), silt = 0.4 (all 2 sites), clay = 0.2 (all 2 sites), land = 0 (all 2 sites), "
        "LAI = 2 m2 m-2 (all 2 sites)");
}

TEST_CASE("uscrn statics: CSV values take precedence, the output fits tem_wbm.simulate") {
  const auto loaded = two_stations();
  const auto csv = csv_of(
      "# texture from a soil survey\n"
      "site, elevation, sand, silt, clay, LAI\n"
      "AL_Gadsden_19_N, 206, 0.30, 0.45, 0.25,\n"
      "CA_Merced_23_WSW, 52, , , , 1.5\n"
      "XX_Nowhere, 1, , , ,\n");
  const auto built = statics::build(loaded.sites, &csv);
  const Dataset& st = built.statics;
  CHECK(st.var("elevation").as_double() == std::vector<double>{206, 52});
  CHECK(st.var("sand").as_double() == std::vector<double>{0.30, 0.4});
  CHECK(st.var("LAI").as_double() == std::vector<double>{2, 1.5});
  CHECK(st.var("sand").attr("source_per_site") == "cd");
  REQUIRE(built.warnings.size() == 2);
  CHECK(built.warnings[0] == "statics.csv lists 1 site(s) that are not in the data (ignored): XX_Nowhere");
  CHECK(built.warnings[1] ==
        "statics not given by the CSV or the sites input, set to documented defaults: sand = 0.4 (1 of 2 sites: "
        "CA_Merced_23_WSW), silt = 0.4 (1 of 2 sites: CA_Merced_23_WSW), clay = 0.2 (1 of 2 sites: "
        "CA_Merced_23_WSW), land = 0 (all 2 sites), LAI = 2 m2 m-2 (1 of 2 sites: AL_Gadsden_19_N)");

  // tem_wbm reads every statics variable it knows from this Dataset, LAI included (a per-site constant
  // where the forcing has no LAI series): no node-parameter fallback.
  tem_wbm::SimulateConfig cfg;
  cfg.fill = tem_wbm::FillPolicy::Linear;
  cfg.max_gap = 10;
  const auto in = tem_wbm::prepare_inputs(loaded.forcing, &st, nullptr, cfg);
  CHECK(in.statics[0].elev == 206);
  CHECK(in.statics[0].sand == doctest::Approx(0.30));
  CHECK(in.statics[0].clay == doctest::Approx(0.25));
  CHECK(in.statics[1].lat == doctest::Approx(37.24));
  CHECK(in.statics[1].land == tem_wbm::Land::Upland);
  CHECK(in.warnings.empty());
  CHECK(in.lai == std::vector<double>{2, 1.5});
  CHECK(in.day(1, 10).LAI == 1.5);
}

TEST_CASE("uscrn statics: bad CSVs fail with the file, the line and the column") {
  auto err = [](const std::string& text) { return error_of([&] { csv_of(text); }); };
  CHECK(err("site,elevation,soil_depth\n") ==
        "statics.csv:1: unknown column 'soil_depth' (column 3); expected any of elevation, sand, silt, clay, land, "
        "lat, lon, LAI");
  CHECK(err("station,elevation\n") == "statics.csv:1: expected the header to start with the column 'site', found 'station'");
  // a spreadsheet's UTF-8 byte-order mark is not part of the first column's name
  CHECK(err("\xEF\xBB\xBFsite,elevation\nAL_Gadsden_19_N,206\n").empty());
  CHECK(err("site,sand,SAND\n") == "statics.csv:1: column 'SAND' (column 3) is repeated");
  CHECK(err("site,elevation,sand\nA,1\n") == "statics.csv:2: expected 3 comma-separated fields, found 2");
  CHECK(err("site,elevation\nA,1\nB,high\n") == "statics.csv:3: expected a number in column 2 (elevation), found 'high'");
  CHECK(err("site,sand\nA,40\n") == "statics.csv:2: sand 40 (column 2) is outside [0, 1] (a fraction, not a percentage)");
  CHECK(err("site,land\nA,2\n") == "statics.csv:2: land 2 (column 2) is outside [0, 1]");
  CHECK(err("site,land\nA,0.5\n") == "statics.csv:2: land 0.5 (column 2) must be 0 (upland) or 1 (wetland)");
  CHECK(err("site,lat\nA,1\nA,2\n") == "statics.csv:3: site 'A' is listed twice");
  CHECK(err("site,sand,silt,clay\nA,0.5,0.5,0.5\n") ==
        "statics.csv:2: sand + silt + clay = 1.5 at site 'A'; expected 1 (± 0.02)");
  CHECK(err("") == "statics.csv:1: expected a header 'site,<columns>', found an empty file");
  CHECK(error_of([] { statics::read_csv(kBad / "no_such.csv"); }).find("cannot open") != std::string::npos);

  // A texture completed by defaults must still add up.
  const auto loaded = two_stations();
  const auto csv = csv_of("site,sand\nAL_Gadsden_19_N,0.8\n");
  CHECK(error_of([&] { statics::build(loaded.sites, &csv); }) ==
        "site 'AL_Gadsden_19_N': sand + silt + clay = 1.4 from sand 0.8 (CSV), silt 0.4 (default), clay 0.2 "
        "(default); expected 1 (± 0.02): give all three fractions for this site");
}
