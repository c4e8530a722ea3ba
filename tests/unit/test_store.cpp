// Artifact store: exact HDF5 round trips, atomic writes, clear errors, CSV/Markdown reports, and files
// that h5py and xarray open as they are.
#include <couplet/framework/store.hpp>

#include <doctest/doctest.h>
#include <hdf5.h>  // only to make an HDF5 file that is not an artifact

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <thread>
#include <chrono>

namespace fs = std::filesystem;
using namespace couplet;

namespace {

// A fresh directory per test case, removed afterwards.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("couplet-test-store-" + std::to_string(::getpid()));
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  fs::path operator/(const std::string& name) const { return dir / name; }
};

std::vector<fs::path> temp_files_in(const fs::path& dir) {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) found.push_back(e.path());
  return found;
}

std::string slurp(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

float float_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

void check_same(const Variable& a, const Variable& b) {
  INFO("variable ", a.name());
  CHECK(a.name() == b.name());
  CHECK(a.dims() == b.dims());
  CHECK(a.shape() == b.shape());
  CHECK(a.attrs() == b.attrs());
  REQUIRE(a.dtype() == b.dtype());
  switch (a.dtype()) {
    case DType::Float32: CHECK(same_bits(a.values<float>(), b.values<float>())); break;
    case DType::Float64: CHECK(same_bits(a.values<double>(), b.values<double>())); break;
    case DType::String: CHECK(a.values<std::string>() == b.values<std::string>()); break;
  }
}

void check_same(const Dataset& a, const Dataset& b) {
  CHECK(a.attrs == b.attrs);
  CHECK(a.dim_names() == b.dim_names());
  for (const auto& d : a.dim_names()) CHECK(a.dim(d) == b.dim(d));
  REQUIRE(a.variables().size() == b.variables().size());
  for (std::size_t i = 0; i < a.variables().size(); ++i) check_same(a.variables()[i], b.variables()[i]);
}

void check_same(const Table& a, const Table& b) {
  CHECK(a.attrs == b.attrs);
  CHECK(a.rows() == b.rows());
  REQUIRE(a.columns().size() == b.columns().size());
  for (std::size_t i = 0; i < a.columns().size(); ++i) {
    const auto &x = a.columns()[i], &y = b.columns()[i];
    INFO("column ", x.name);
    CHECK(x.name == y.name);
    CHECK(x.units == y.units);
    CHECK(x.doc == y.doc);
    REQUIRE(x.is_numeric() == y.is_numeric());
    if (x.is_numeric())
      CHECK(same_bits(std::get<std::vector<double>>(x.data), std::get<std::vector<double>>(y.data)));
    else
      CHECK(std::get<std::vector<std::string>>(x.data) == std::get<std::vector<std::string>>(y.data));
  }
}

template <class T>
std::shared_ptr<const T> round_trip(const T& a, const fs::path& file) {
  store::write_artifact(a, file);
  auto back = std::dynamic_pointer_cast<const T>(store::read_artifact(file));
  REQUIRE(back != nullptr);
  return back;
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Two sites × three days × four layers, with a string coordinate, a time coordinate, a dimension
// without a coordinate, NaNs, and attributes.
Dataset sample_dataset() {
  Dataset ds;
  ds.attrs = {{"title", "sample forcing"}, {"history", "made by test_store — ünïcode"}, {"empty", ""}};
  ds.add_dim("layer", 4);  // declared first, used last: declaration order must survive
  ds.add(Variable("site", {"site"}, {2}, std::vector<std::string>{"A", "B"}));
  ds.add(Variable("time", {"time"}, {3}, std::vector<double>{18262, 18263, 18264},
                  {{"units", "days since 1970-01-01"}, {"calendar", "standard"}}));
  std::vector<float> precip(24);
  for (std::size_t i = 0; i < precip.size(); ++i) precip[i] = static_cast<float>(i) + 0.5f;
  precip[6] = std::numeric_limits<float>::quiet_NaN();  // [0, 1, 2]
  precip[7] = float_bits(0x7fc01234u);                  // a NaN with a payload
  precip[8] = -0.0f;
  ds.add(Variable("precip", {"site", "time", "layer"}, {2, 3, 4}, precip, {{"units", "mm d-1"}, {"long_name", "precipitation"}}));
  ds.add(Variable("ssm", {"site", "time"}, {2, 3}, std::vector<double>{0.1, kNaN, 0.3, 0.4, 0.5, 1e-300},
                  {{"units", "m3 m-3"}}));
  ds.add(Variable("flag", {"time", "site"}, {3, 2}, std::vector<std::string>{"ok", "", "gap, filled", "ok", "é", "ok"}));
  ds.add(Variable("area", {}, {}, std::vector<double>{42.0}, {{"units", "km2"}}));
  return ds;
}

Table sample_table() {
  Table t;
  t.attrs = {{"workflow", "compare"}};
  t.add_column("site", std::vector<std::string>{"A", "B, \"north\"", "C"}, "", "site id");
  t.add_column("rmse", std::vector<double>{0.0123456789012, kNaN, 2.5}, "m3 m-3", "root-mean-square error");
  t.add_column("n", std::vector<double>{365, 0, 1e6});
  return t;
}


// A streamed Dataset: sites × days (× layers), several chunk groups long (163 rows per chunk).
constexpr std::size_t kSites = 500, kDays = 400, kLayers = 4;
double ssm_at(std::size_t s, std::size_t t) { return static_cast<double>(s) + static_cast<double>(t) / 1000.0; }
float temp_at(std::size_t s, std::size_t t, std::size_t l) { return static_cast<float>(s * 0.5 + t + l * 0.25); }

ChunkedLayout streamed_layout() {
  ChunkedLayout l;
  l.dim = "site";
  l.length = kSites;
  std::vector<std::string> ids;
  for (std::size_t s = 0; s < kSites; ++s) ids.push_back("S" + std::to_string(s));
  l.header.add(Variable("site", {"site"}, {kSites}, ids));
  std::vector<double> days(kDays);
  for (std::size_t t = 0; t < kDays; ++t) days[t] = 18262.0 + static_cast<double>(t);
  l.header.add(Variable("time", {"time"}, {kDays}, days, {{"units", "days since 1970-01-01"}}));
  l.header.add(Variable("lat", {"site"}, {kSites}, std::vector<double>(kSites, 45.0), {{"units", "degrees_north"}}));
  l.header.attrs = {{"title", "streamed"}};
  l.variables = {{"ssm", {"site", "time"}, {kDays}, DType::Float64, {{"units", "m3 m-3"}}},
                 {"temp", {"site", "time", "layer"}, {kDays, kLayers}, DType::Float32, {{"units", "K"}}}};
  return l;
}

// Rows [begin, begin + n) of the streamed variables.
Dataset streamed_rows(std::size_t begin, std::size_t n) {
  std::vector<double> ssm;
  std::vector<float> temp;
  for (std::size_t s = begin; s < begin + n; ++s)
    for (std::size_t t = 0; t < kDays; ++t) {
      ssm.push_back(ssm_at(s, t));
      for (std::size_t l = 0; l < kLayers; ++l) temp.push_back(temp_at(s, t, l));
    }
  Dataset rows;
  rows.add(Variable("ssm", {"site", "time"}, {n, kDays}, ssm));
  rows.add(Variable("temp", {"site", "time", "layer"}, {n, kDays, kLayers}, temp));
  return rows;
}

// The same Dataset built whole in memory.
Dataset streamed_whole() {
  ChunkedLayout l = streamed_layout();
  Dataset ds = l.header;
  const Dataset rows = streamed_rows(0, kSites);
  for (const auto& v : rows.variables()) {
    Variable copy = v;
    copy.attrs() = v.name() == "ssm" ? l.variables[0].attrs : l.variables[1].attrs;
    ds.add(copy);
  }
  return ds;
}

// Blocks of `block` rows covering all sites, in order.
std::vector<std::pair<std::size_t, std::size_t>> in_order(std::size_t block) {
  std::vector<std::pair<std::size_t, std::size_t>> blocks;
  for (std::size_t b = 0; b < kSites; b += block) blocks.emplace_back(b, std::min(block, kSites - b));
  return blocks;
}

// Blocks of varied sizes covering all sites, shuffled.
std::vector<std::pair<std::size_t, std::size_t>> shuffled() {
  std::vector<std::pair<std::size_t, std::size_t>> blocks;
  std::mt19937 rng(7);
  for (std::size_t b = 0; b < kSites;) {
    const std::size_t n = std::min<std::size_t>(1 + rng() % 120, kSites - b);
    blocks.emplace_back(b, n);
    b += n;
  }
  std::shuffle(blocks.begin(), blocks.end(), rng);
  return blocks;
}

void write_streamed(const fs::path& file, const std::vector<std::pair<std::size_t, std::size_t>>& blocks) {
  store::ChunkedDatasetFile f(file, streamed_layout());
  for (auto [b, n] : blocks) f.write_rows(b, streamed_rows(b, n));
  f.close();
}

}  // namespace

TEST_CASE("store: dataset round trip is exact (dtypes, NaN bits, strings, 3-D, attributes, order)") {
  Scratch s;
  const Dataset ds = sample_dataset();
  check_same(ds, *round_trip(ds, s / "forcing.h5"));
}

TEST_CASE("store: a variable named like a dimension but not its coordinate round trips") {
  Scratch s;
  Dataset ds;
  ds.add(Variable("x", {"y", "x"}, {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}));
  ds.add(Variable("y", {"y"}, {2}, std::vector<double>{10, 20}));
  check_same(ds, *round_trip(ds, s / "grid.h5"));
}

TEST_CASE("store: large variables are compressed and still round trip exactly") {
  Scratch s;
  Dataset ds;
  std::vector<double> values(400 * 1000);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i % 100);
  values[12345] = kNaN;
  ds.add(Variable("big", {"site", "time"}, {400, 1000}, values));
  const auto back = round_trip(ds, s / "big.h5");
  check_same(ds, *back);
  CHECK(fs::file_size(s / "big.h5") < values.size() * sizeof(double) / 4);
}

TEST_CASE("store: table round trip (strings, units, docs, NaN)") {
  Scratch s;
  const Table t = sample_table();
  check_same(t, *round_trip(t, s / "metrics.h5"));
}

TEST_CASE("store: zero-row table round trip") {
  Scratch s;
  Table t;
  t.add_column("site", std::vector<std::string>{});
  t.add_column("rmse", std::vector<double>{}, "m3 m-3");
  const auto back = round_trip(t, s / "empty.h5");
  check_same(t, *back);
  CHECK(back->rows() == 0);
}

TEST_CASE("store: model round trip (arrays of every dtype, config, attributes)") {
  Scratch s;
  Model m;
  m.type = "learn.lstm";
  m.config = R"({"hidden": 64, "layers": 1})" + std::string(100000, ' ');  // beyond HDF5's 64 KiB header limit
  m.attrs = {{"trained_on", "sites 1-10"}};
  m.arrays.emplace("w", Variable("w", {"out", "in"}, {2, 3}, std::vector<float>{1, 2, 3, 4, 5, float_bits(0x7fc00001u)}));
  m.arrays.emplace("mean", Variable("forcing_mean", {"feature"}, {2}, std::vector<double>{0.5, kNaN}, {{"units", "mixed"}}));
  m.arrays.emplace("features", Variable("features", {"feature"}, {2}, std::vector<std::string>{"precip", "tair"}));
  m.arrays.emplace("beta", Variable("beta", {}, {}, std::vector<double>{0.1}));
  const auto back = round_trip(m, s / "model.h5");
  CHECK(back->type == m.type);
  CHECK(back->config == m.config);
  CHECK(back->attrs == m.attrs);
  REQUIRE(back->arrays.size() == m.arrays.size());
  for (const auto& [key, v] : m.arrays) check_same(v, back->array(key));
}

TEST_CASE("store: the same artifact written at different times gives the same bytes") {
  Scratch s;
  Model m;
  m.type = "t";
  m.arrays.emplace("w", Variable("w", {"i"}, {3}, std::vector<double>{1, 2, 3}));
  Dataset d;
  d.add(Variable("x", {"i"}, {2}, std::vector<float>{1, 2}));
  store::write_artifact(m, s / "m1.h5");
  store::write_artifact(d, s / "d1.h5");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // HDF5 timestamps have 1 s resolution
  store::write_artifact(m, s / "m2.h5");
  store::write_artifact(d, s / "d2.h5");
  CHECK(slurp(s / "m1.h5") == slurp(s / "m2.h5"));
  CHECK(slurp(s / "d1.h5") == slurp(s / "d2.h5"));
}

TEST_CASE("store: successful writes leave no temp files and replace the target") {
  Scratch s;
  const fs::path file = s / "deep/er/metrics.h5";  // parents are created
  store::write_artifact(sample_table(), file);
  Table second;
  second.add_column("only", std::vector<double>{7});
  store::write_artifact(second, file);
  check_same(second, *std::dynamic_pointer_cast<const Table>(store::read_artifact(file)));
  store::write_table_csv(second, s / "deep/metrics.csv");
  store::write_table_markdown(second, s / "deep/metrics.md");
  CHECK(temp_files_in(s.dir).empty());
}

TEST_CASE("store: failed writes throw naming the file and leave nothing behind") {
  Scratch s;
  const Dataset ds = sample_dataset();
  std::ofstream(s / "plain") << "a file, not a directory";

  SUBCASE("parent directory cannot be created") {
    const fs::path file = s / "plain/sub/x.h5";
    CHECK(error_of([&] { store::write_artifact(ds, file); }).find(file.string()) != std::string::npos);
    CHECK_THROWS_AS(store::write_table_csv(sample_table(), file), std::runtime_error);
  }
  SUBCASE("rename onto a directory fails after the HDF5 file was written") {
    fs::create_directories(s / "taken.h5");
    CHECK(error_of([&] { store::write_artifact(ds, s / "taken.h5"); }).find("taken.h5") != std::string::npos);
    CHECK(fs::is_directory(s / "taken.h5"));
  }
  SUBCASE("an invalid name is refused mid-write") {
    Dataset bad;
    bad.add(Variable("a,b", {"n"}, {1}, std::vector<double>{1}));
    const std::string msg = error_of([&] { store::write_artifact(bad, s / "bad.h5"); });
    CHECK(msg.find("bad.h5") != std::string::npos);
    CHECK(msg.find("'a,b'") != std::string::npos);
    CHECK_FALSE(fs::exists(s / "bad.h5"));
  }
  SUBCASE("a reserved attribute name is refused") {
    Dataset bad;
    bad.add(Variable("v", {"n"}, {1}, std::vector<double>{1}, {{"DIMENSION_LIST", "x"}}));
    CHECK(error_of([&] { store::write_artifact(bad, s / "bad.h5"); }).find("DIMENSION_LIST") != std::string::npos);
    CHECK_FALSE(fs::exists(s / "bad.h5"));
  }
  CHECK(temp_files_in(s.dir).empty());
}

TEST_CASE("store: reading a missing, non-HDF5 or damaged file throws naming the file") {
  Scratch s;
  SUBCASE("missing") {
    const std::string msg = error_of([&] { store::read_artifact(s / "nope.h5"); });
    CHECK(msg.find("nope.h5") != std::string::npos);
    CHECK(msg.find("no such file") != std::string::npos);
  }
  SUBCASE("text") {
    std::ofstream(s / "text.h5") << "station,date,value\nA,2020-01-01,1\n";
    const std::string msg = error_of([&] { store::read_artifact(s / "text.h5"); });
    CHECK(msg.find("text.h5") != std::string::npos);
    CHECK(msg.find("not an HDF5 file") != std::string::npos);
  }
  SUBCASE("truncated") {
    store::write_artifact(sample_dataset(), s / "cut.h5");
    fs::resize_file(s / "cut.h5", fs::file_size(s / "cut.h5") / 2);
    CHECK(error_of([&] { store::read_artifact(s / "cut.h5"); }).find("cut.h5") != std::string::npos);
  }
  SUBCASE("one byte changed") {
    store::write_artifact(sample_dataset(), s / "flip.h5");
    std::string bytes = slurp(s / "flip.h5");
    bytes[bytes.size() / 2] ^= 0x10;
    std::ofstream(s / "flip.h5", std::ios::binary | std::ios::trunc) << bytes;
    const std::string msg = error_of([&] { store::read_artifact(s / "flip.h5"); });
    CHECK(msg.find("flip.h5") != std::string::npos);
    CHECK(msg.find("checksum") != std::string::npos);
  }
}

TEST_CASE("store: reading an HDF5 file that is not an artifact says what was expected") {
  Scratch s;
  const fs::path file = s / "foreign.h5";
  const hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  H5Fclose(f);
  const std::string msg = error_of([&] { store::read_artifact(file); });
  CHECK(msg.find("foreign.h5") != std::string::npos);
  CHECK(msg.find("couplet_artifact") != std::string::npos);
  CHECK(msg.find("\"dataset\", \"table\" or \"model\"") != std::string::npos);
}

TEST_CASE("store: table as CSV") {
  Scratch s;
  store::write_table_csv(sample_table(), s / "metrics.csv");
  CHECK(slurp(s / "metrics.csv") ==
        "site,rmse,n\n"
        "A,0.0123456789,365\n"
        "\"B, \"\"north\"\"\",,0\n"
        "C,2.5,1000000\n");
}

TEST_CASE("store: table as Markdown") {
  Scratch s;
  const std::string expected =
      "| site       |    rmse |     n |\n"
      "|------------|--------:|------:|\n"
      "| A          | 0.01235 |   365 |\n"
      "| B, \"north\" |       — |     0 |\n"
      "| C          |     2.5 | 1e+06 |\n";
  CHECK(store::table_to_markdown(sample_table()) == expected);
  store::write_table_markdown(sample_table(), s / "metrics.md");
  CHECK(slurp(s / "metrics.md") == expected);

  Table pipes;
  pipes.add_column("a|b", std::vector<std::string>{"x|y"});
  CHECK(store::table_to_markdown(pipes) == "| a\\|b |\n|------|\n| x\\|y |\n");
  CHECK(store::table_to_markdown(Table{}).empty());
}


TEST_CASE("store: a streamed Dataset reads back whole and by rows, the same whatever the block order") {
  Scratch s;
  write_streamed(s / "ordered.h5", in_order(37));
  write_streamed(s / "shuffled.h5", shuffled());
  CHECK(slurp(s / "ordered.h5") == slurp(s / "shuffled.h5"));
  CHECK(temp_files_in(s.dir).empty());

  auto whole = std::dynamic_pointer_cast<const Dataset>(store::read_artifact(s / "shuffled.h5"));
  REQUIRE(whole);
  check_same(streamed_whole(), *whole);

  const Chunking c = store::chunking(s / "shuffled.h5");
  CHECK(c.dim == "site");
  CHECK(c.length == kSites);
  store::write_artifact(sample_dataset(), s / "whole.h5");
  CHECK_FALSE(store::chunking(s / "whole.h5").streamed());

  auto rows = store::read_rows(s / "shuffled.h5", 150, 40);  // across a chunk boundary (163)
  CHECK(rows->dim("site") == 40);
  CHECK(rows->var("site").values<std::string>().front() == "S150");
  CHECK(rows->var("lat").size() == 40);
  CHECK(rows->var("time").size() == kDays);  // not over the chunk dimension: whole
  CHECK(rows->var("ssm").values<double>()[kDays + 3] == ssm_at(151, 3));
  CHECK(rows->var("temp").values<float>().back() == temp_at(189, kDays - 1, kLayers - 1));
  CHECK(rows->attrs.at("title") == "streamed");
  CHECK(store::read_rows(s / "shuffled.h5", kSites, 0)->dim("site") == 0);
  CHECK(error_of([&] { store::read_rows(s / "shuffled.h5", 490, 20); }).find("rows [490, 510)") != std::string::npos);
  CHECK(error_of([&] { store::read_rows(s / "whole.h5", 0, 1); }).find("not a streamed Dataset") != std::string::npos);

  // the header: coordinates whole (site names included), no streamed variable read
  auto head = store::read_header(s / "shuffled.h5");
  CHECK(head->dim("site") == kSites);
  CHECK(head->var("site").values<std::string>().back() == "S" + std::to_string(kSites - 1));
  CHECK(head->var("time").size() == kDays);
  CHECK_FALSE(head->has("ssm"));
  CHECK_FALSE(head->has("temp"));
  CHECK(head->attrs.at("title") == "streamed");
  CHECK(error_of([&] { store::read_header(s / "whole.h5"); }).find("not a streamed Dataset") != std::string::npos);
}

TEST_CASE("store: a streamed Dataset with rows missing or written twice is refused, and leaves nothing") {
  Scratch s;
  const fs::path file = s / "partial.h5";
  {
    store::ChunkedDatasetFile f(file, streamed_layout());
    f.write_rows(237, streamed_rows(237, kSites - 237));
    f.write_rows(0, streamed_rows(0, 200));
    const std::string twice = error_of([&] { f.write_rows(190, streamed_rows(190, 20)); });
    CHECK(twice.find("rows [190, 210) of '" + file.string() + "'") != std::string::npos);
    CHECK(twice.find("rows [190, 200) were already written") != std::string::npos);
    const std::string missing = error_of([&] { f.close(); });
    CHECK(missing == "cannot write artifact '" + file.string() +
                         "': rows [200, 237) of dimension 'site' (length 500) were never written");
    CHECK_FALSE(fs::exists(file));
    Dataset wrong = streamed_rows(200, 37);
    wrong.add(Variable("extra", {"site"}, {37}, std::vector<double>(37)));
    CHECK(error_of([&] { f.write_rows(200, wrong); }).find("'extra' is not a streamed variable") != std::string::npos);
  }  // destroyed without close(): the temp files go
  CHECK_FALSE(fs::exists(file));
  CHECK(temp_files_in(s.dir).empty());

  ChunkedLayout bad = streamed_layout();
  bad.variables[1].dims = {"time", "site", "layer"};
  CHECK(error_of([&] { store::ChunkedDatasetFile(file, bad); }).find("must have the chunk dimension 'site' first") !=
        std::string::npos);
  bad = streamed_layout();
  bad.length = 10;  // the header's site coordinate has 500
  CHECK(error_of([&] { store::ChunkedDatasetFile(file, bad); }).find("dimension 'site' already has size 500") !=
        std::string::npos);
  CHECK(temp_files_in(s.dir).empty());
}

TEST_CASE("store: h5py and xarray open written artifacts directly") {
  // Debian's interpreter, where python3-h5py, -xarray and -h5netcdf are installed (not the pyenv one).
  const char* python = "/usr/bin/python3";
  if (std::system((std::string(python) + " -c 'import h5py, h5netcdf, xarray' >/dev/null 2>&1").c_str()) != 0) {
    MESSAGE("skipped: ", python, " cannot import h5py, h5netcdf and xarray");
    return;
  }
  Scratch s;
  store::write_artifact(sample_dataset(), s / "forcing.h5");
  store::write_artifact(sample_table(), s / "metrics.h5");
  write_streamed(s / "streamed.h5", shuffled());
  std::ofstream(s / "check.py") << R"PY(
import sys
import h5py, numpy as np, xarray as xr

ds_path, table_path, streamed_path = sys.argv[1], sys.argv[2], sys.argv[3]
with h5py.File(ds_path, "r") as f:
    assert f.attrs["couplet_artifact"] == "dataset"
    assert f["precip"].dtype == np.float32 and f["precip"].shape == (2, 3, 4)
    assert f["ssm"].dtype == np.float64
    assert [d[0].name for d in f["precip"].dims] == ["/site", "/time", "/layer"]
    assert f["flag"][2, 0].decode() == "é"

ds = xr.open_dataset(ds_path, engine="h5netcdf")
assert list(ds.data_vars) == ["precip", "ssm", "flag", "area"], list(ds.data_vars)
assert ds["precip"].dims == ("site", "time", "layer")
assert ds.sizes["layer"] == 4 and "layer" not in ds.variables  # a dimension without a coordinate
assert ds["time"].dtype.kind == "M", ds["time"].dtype
assert str(ds["time"].values[0])[:10] == "2020-01-01"
assert list(ds["site"].values) == ["A", "B"]
p = ds["precip"].values
assert np.isnan(p[0, 1, 2]) and p[1, 2, 3] == np.float32(23.5)
assert ds["ssm"].attrs["units"] == "m3 m-3" and ds["precip"].attrs["long_name"] == "precipitation"
assert float(ds["area"]) == 42.0
assert ds.attrs["title"] == "sample forcing" and ds.attrs["empty"] == ""

t = xr.open_dataset(table_path, engine="h5netcdf")
assert list(t.data_vars) == ["site", "rmse", "n"], list(t.data_vars)
assert t.sizes["row"] == 3
assert t["site"].values[1] == 'B, "north"'
assert t["rmse"].attrs["units"] == "m3 m-3" and t["rmse"].attrs["long_name"] == "root-mean-square error"
assert np.isnan(t["rmse"].values[1])

with h5py.File(streamed_path, "r") as f:
    assert [d[0].name for d in f["temp"].dims] == ["/site", "/time", "/layer"]
    assert f["temp"].compression == "gzip" and f["temp"].shuffle and f["temp"].chunks[1:] == (400, 4)
s = xr.open_dataset(streamed_path, engine="h5netcdf")
assert list(s.data_vars) == ["lat", "ssm", "temp"], list(s.data_vars)
assert s["temp"].dims == ("site", "time", "layer") and s.sizes["site"] == 500
assert s["site"].values[499] == "S499" and s["ssm"].attrs["units"] == "m3 m-3"
assert s["ssm"].values[321, 7] == 321 + 7 / 1000.0
assert s["temp"].values[42, 5, 3] == np.float32(42 * 0.5 + 5 + 3 * 0.25)
print("ok")
)PY";
  const std::string cmd = std::string(python) + " " + (s / "check.py").string() + " " + (s / "forcing.h5").string() +
                          " " + (s / "metrics.h5").string() + " " + (s / "streamed.h5").string() + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) output.append(buf, n);
  const int status = ::pclose(pipe);
  INFO("python output:\n", output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
