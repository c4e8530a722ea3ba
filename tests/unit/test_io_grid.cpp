// io_grid: the ERA5/ERA5-Land and SMAP readers and the NetCDF-4 writer, on the real sample files in
// data/era5land_smap_samples (bundled copies of ../shared/data/era5land_smap_samples) and on small bad-input files made here.
// The expected numbers were read independently with h5py 3.7 + numpy (Debian's /usr/bin/python3), as
// each comment says; hdf5-tools (h5dump) is not installed on the build machines.
#include "common.hpp"

#include "io_grid/grid.hpp"

#include <couplet/context.hpp>
#include <couplet/files.hpp>
#include <couplet/time.hpp>

#include <doctest/doctest.h>
#include <hdf5.h>
#include <hdf5_hl.h>

#include <cmath>
#include <cstdlib>
#include <limits>

using namespace couplet;
using testutil::contains;
using testutil::error_of;
using testutil::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kSamples = fs::path(COUPLET_SOURCE_DIR) / "data" / "era5land_smap_samples";
const fs::path kEra5Wa = kSamples / "ERA5" / "Western-Australia";
const fs::path kEra5WaJan = kEra5Wa / "ERA5_Western-Australia_20200101_20200128.nc";  // ERA5-Land 0.1°, 744 h
const fs::path kEra5WaOct = kEra5Wa / "ERA5_Western-Australia_2020_10_01_07.nc";      // ERA5 0.25°, 168 h
const fs::path kEra5India = kSamples / "ERA5" / "India2" / "ERA5_India2_2020_01_01_31.nc";
const fs::path kSmapPak = kSamples / "SMAP" / "Pakistan_9km_smap";
const fs::path kSmapWa = kSamples / "SMAP" / "Western-Australia_20200101_20200228";

// The sample data is outside the repository: say so clearly instead of failing on a file name.
void require_samples() {
  REQUIRE_MESSAGE(fs::is_directory(kSamples), "the sample data is missing: expected " << kSamples.string()
                                                                                     << " (data/era5land_smap_samples)");
}

grid::Loaded era5(const std::vector<fs::path>& files, bool daily, const std::string& mask = "lsm",
                  double threshold = 0.5, const std::string& variable = "swvl1") {
  grid::Era5Options o;
  o.files = files;
  o.daily_mean = daily;
  o.mask_variable = mask;
  o.mask_threshold = threshold;
  o.variable = variable;
  return grid::read_era5(o);
}

// Value of a (time, lat, lon) float32 variable.
double at(const Dataset& ds, const std::string& var, std::size_t t, std::size_t i, std::size_t j) {
  const auto& v = ds.var(var);
  return v.values<float>().at((t * v.shape()[1] + i) * v.shape()[2] + j);
}

std::size_t day_of(const Dataset& ds, const char* date) {
  const auto& time = ds.var("time").values<double>();
  for (std::size_t t = 0; t < time.size(); ++t)
    if (time[t] == static_cast<double>(parse_date(date))) return t;
  throw std::runtime_error(std::string("no time step on ") + date);
}

// Mean of the finite values of a float32 variable, and how many are NaN.
std::pair<double, std::size_t> finite_mean(const Variable& v) {
  double sum = 0;
  std::size_t n = 0, nan = 0;
  for (float x : v.values<float>()) {
    if (std::isnan(x)) ++nan;
    else sum += x, ++n;
  }
  return {n ? sum / static_cast<double>(n) : std::nan(""), nan};
}

// A (time, lat, lon) Dataset over `hours` hourly steps from 2020-01-01T00, values from `value`.
template <class F>
Dataset hourly_dataset(std::size_t hours, std::vector<double> lat, std::vector<double> lon, F value,
                       std::size_t first_hour = 0) {
  Dataset ds;
  std::vector<double> t;
  for (std::size_t h = 0; h < hours; ++h) t.push_back(static_cast<double>(parse_date("2020-01-01")) + (first_hour + h) / 24.0);
  ds.add(Variable("time", {"time"}, {hours}, t, {{"units", kTimeUnits}}));
  const std::size_t ny = lat.size(), nx = lon.size();
  ds.add(Variable("lat", {"lat"}, {ny}, std::move(lat), {{"units", "degrees_north"}}));
  ds.add(Variable("lon", {"lon"}, {nx}, std::move(lon), {{"units", "degrees_east"}}));
  std::vector<float> v;
  for (std::size_t h = 0; h < hours; ++h)
    for (std::size_t i = 0; i < ny; ++i)
      for (std::size_t j = 0; j < nx; ++j) v.push_back(static_cast<float>(value(first_hour + h, i, j)));
  ds.add(Variable("swvl1", {"time", "lat", "lon"}, {hours, ny, nx}, std::move(v), {{"units", "m3 m-3"}}));
  return ds;
}

// A NetCDF-4-like file written with the HDF5 C API directly: an int16 variable packed with scale_factor
// and add_offset, with _FillValue and missing_value, over (time, latitude, longitude) dimension scales,
// as ECMWF's packed NetCDF files are. Stored values: -32767 (fill), -32766 (missing), and k = 0..5.
void write_packed_fixture(const fs::path& file) {
  hid_t f = H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(f >= 0);
  auto scale = [&](const char* name, const std::vector<double>& values, const char* units) {
    const hsize_t n = values.size();
    hid_t sp = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5LTset_attribute_string(f, name, "units", units);
    H5DSset_scale(d, name);
    H5Sclose(sp);
    return d;
  };
  hid_t t = scale("time", {0, 6, 12, 18, 24, 30}, "hours since 2020-01-01 00:00:00");
  hid_t y = scale("latitude", {10.0, 9.0}, "degrees_north");
  hid_t x = scale("longitude", {20.0, 21.0}, "degrees_east");
  const hsize_t dims[3] = {6, 2, 2};
  hid_t sp = H5Screate_simple(3, dims, nullptr);
  hid_t v = H5Dcreate2(f, "swvl1", H5T_STD_I16LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<short> data(24);
  for (int s = 0; s < 6; ++s)
    for (int c = 0; c < 4; ++c) data[static_cast<std::size_t>(s * 4 + c)] = static_cast<short>(s);
  data[1] = -32767;   // step 0, cell (0, 1): _FillValue
  data[2] = -32766;   // step 0, cell (1, 0): missing_value
  data[7] = -32767;   // step 1, cell (1, 1): _FillValue
  H5Dwrite(v, H5T_NATIVE_SHORT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
  const short fill = -32767, missing = -32766;
  const double sf = 0.01, off = 0.2;
  H5LTset_attribute_short(f, "swvl1", "_FillValue", &fill, 1);
  H5LTset_attribute_short(f, "swvl1", "missing_value", &missing, 1);
  H5LTset_attribute_double(f, "swvl1", "scale_factor", &sf, 1);
  H5LTset_attribute_double(f, "swvl1", "add_offset", &off, 1);
  H5LTset_attribute_string(f, "swvl1", "units", "m**3 m**-3");
  H5DSattach_scale(v, t, 0);
  H5DSattach_scale(v, y, 1);
  H5DSattach_scale(v, x, 2);
  for (hid_t d : {t, y, x, v}) H5Dclose(d);
  H5Sclose(sp);
  REQUIRE(H5Fclose(f) >= 0);
}

std::vector<fs::path> temp_files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir))
    if (contains(e.path().filename().string(), ".tmp-")) out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("io_grid: ERA5-Land sample: dimensions, a stored hourly value, the land mask and the daily means") {
  require_samples();
  // Hourly, no mask: the values as stored.
  const auto raw = era5({kEra5WaJan}, false, "");
  const Dataset& h = raw.data;
  CHECK(h.dim("time") == 744);  // h5py: valid_time (744,), 2020-01-01T00 .. 2020-01-31T23, hourly
  CHECK(h.dim("lat") == 51);    // latitude -27 .. -32 by -0.1
  CHECK(h.dim("lon") == 61);    // longitude 116 .. 122 by 0.1
  CHECK(h.var("swvl1").dims() == std::vector<std::string>{"time", "lat", "lon"});
  const auto& time = h.var("time").values<double>();
  CHECK(time.front() == static_cast<double>(parse_date("2020-01-01")));
  CHECK(time[1] == doctest::Approx(time[0] + 1.0 / 24).epsilon(1e-12));
  CHECK(h.var("lat").values<double>()[10] == doctest::Approx(-28.0));
  CHECK(h.var("lon").values<double>()[20] == doctest::Approx(118.0));
  // h5py: f["swvl1"][0, 10, 20] == np.float32(0.020889282) (2020-01-01T00, lat -28.0, lon 118.0)
  CHECK(at(h, "swvl1", 0, 10, 20) == 0.020889282f);
  // h5py: f["lsm"][0, 25, 50] == 0.3694779729 (below 0.5; lat -29.5, lon 121.0); f["swvl1"][0, 25, 50] == 0.03564453125
  CHECK(at(h, "swvl1", 0, 25, 50) == 0.03564453125f);
  CHECK(h.var("swvl1").attr("units") == "m3 m-3");  // stored as "m**3 m**-3"

  // Daily means with the land mask (lsm >= 0.5).
  const auto daily = era5({kEra5WaJan}, true);
  const Dataset& d = daily.data;
  CHECK(d.dim("time") == 31);
  CHECK(d.var("time").values<double>().back() == static_cast<double>(parse_date("2020-01-31")));
  CHECK(d.var("time").attr("units") == "days since 1970-01-01");
  // numpy: f["swvl1"][14*24:15*24, 10, 20].astype(float64).mean() == 0.24882253 (2020-01-15)
  CHECK(at(d, "swvl1", day_of(d, "2020-01-15"), 10, 20) == doctest::Approx(0.24882253).epsilon(1e-7));
  // numpy: the mean over the 24 hours of 2020-01-31 at lat -32.0, lon 122.0 == 0.0990899404 (lsm 0.968)
  CHECK(at(d, "swvl1", 30, 50, 60) == doctest::Approx(0.0990899404).epsilon(1e-7));
  CHECK(std::isnan(at(d, "swvl1", 0, 25, 50)));  // masked: lsm 0.369
  // numpy: 12 of the 3111 cells have lsm < 0.5, so 12 × 31 daily values are NaN; the mean of all the
  // others (daily means of float64 hours, lsm >= 0.5) is 0.0681047281.
  const auto [mean, nan] = finite_mean(d.var("swvl1"));
  CHECK(nan == 12 * 31);
  CHECK(mean == doctest::Approx(0.0681047281).epsilon(1e-6));
  CHECK(contains(d.attrs.at("attribution"), "Contains modified Copernicus Climate Change Service information 2020"));
  CHECK(contains(d.var("swvl1").attr("cell_methods"), "time: mean"));
  // numpy: 541 hourly values are below 0 (lowest -6.6e-20), none in a masked cell: reported, not changed
  REQUIRE(daily.warnings.size() == 1);
  CHECK(contains(daily.warnings[0], "541 values of 'swvl1' below 0"));
}

TEST_CASE("io_grid: ERA5 0.25° sample: a land mask given per time step over valid_time") {
  require_samples();
  // h5py: lsm is float32 (744, 15, 25) over (valid_time, latitude, longitude), the same every hour;
  // only cell [14, 0] (lat 25.0, lon 67.0) has lsm < 0.9.
  const auto r = era5({kEra5India}, true, "lsm", 0.9);
  const Dataset& d = r.data;
  CHECK(d.dim("time") == 31);
  CHECK(d.dim("lat") == 15);
  CHECK(d.dim("lon") == 25);
  // numpy: mean over the 24 hours of 2020-01-10 at lat 26.75, lon 70.0 == 0.0365936911
  CHECK(at(d, "swvl1", day_of(d, "2020-01-10"), 7, 12) == doctest::Approx(0.0365936911).epsilon(1e-7));
  const auto [mean, nan] = finite_mean(d.var("swvl1"));
  CHECK(nan == 31);  // the one masked cell, every day
  CHECK(mean == doctest::Approx(0.089952443).epsilon(1e-6));
  for (std::size_t t = 0; t < 31; ++t) CHECK(std::isnan(at(d, "swvl1", t, 14, 0)));
  // numpy: 24 hourly values below 0 remain at lsm >= 0.9, the lowest -0.0092076
  REQUIRE(r.warnings.size() == 1);
  CHECK(contains(r.warnings[0], "24 values of 'swvl1' below 0 (lowest -0.00920762)"));
}

TEST_CASE("io_grid: packed int16 values: scale_factor, add_offset, _FillValue, missing_value, daily means") {
  TempDir tmp("grid-packed");
  const fs::path file = tmp.path / "packed.nc";
  write_packed_fixture(file);
  const auto steps = era5({file}, false, "");
  const Dataset& h = steps.data;
  REQUIRE(h.dim("time") == 6);
  CHECK(std::isnan(at(h, "swvl1", 0, 0, 1)));  // _FillValue
  CHECK(std::isnan(at(h, "swvl1", 0, 1, 0)));  // missing_value
  CHECK(at(h, "swvl1", 0, 0, 0) == doctest::Approx(0.2));           // 0 · 0.01 + 0.2
  CHECK(at(h, "swvl1", 3, 1, 1) == doctest::Approx(0.23));          // 3 · 0.01 + 0.2
  CHECK(h.var("time").values<double>()[5] == doctest::Approx(18262.0 + 30.0 / 24));  // hours since 2020-01-01
  CHECK(h.var("swvl1").attr("units") == "m3 m-3");

  // Steps 0, 6, 12, 18 h are 2020-01-01; 24 and 30 h are 2020-01-02 (2 of the 4 six-hourly steps).
  const auto days = era5({file}, true, "");
  const Dataset& d = days.data;
  REQUIRE(d.dim("time") == 2);
  CHECK(at(d, "swvl1", 0, 0, 0) == doctest::Approx(0.2 + 0.01 * (0 + 1 + 2 + 3) / 4.0));
  CHECK(at(d, "swvl1", 0, 0, 1) == doctest::Approx(0.2 + 0.01 * (1 + 2 + 3) / 3.0));  // the fill hour left out
  CHECK(at(d, "swvl1", 0, 1, 1) == doctest::Approx(0.2 + 0.01 * (0 + 2 + 3) / 3.0));
  CHECK(at(d, "swvl1", 1, 1, 0) == doctest::Approx(0.2 + 0.01 * (4 + 5) / 2.0));
  REQUIRE(days.warnings.size() == 1);
  CHECK(contains(days.warnings[0], "1 day(s) have fewer than 4 time steps (first: 2020-01-02 with 2)"));
}

TEST_CASE("io_grid: several ERA5 files are concatenated in time order, a day split between files is one mean") {
  require_samples();
  TempDir tmp("grid-concat");
  // The sample's hours, written back as two files split at 2020-01-16T12 (hour 372), listed out of order.
  const Dataset hours = era5({kEra5WaJan}, false, "").data;
  auto part = [&](std::size_t first, std::size_t n) {
    Dataset p;
    const auto& t = hours.var("time").values<double>();
    p.add(Variable("time", {"time"}, {n}, std::vector<double>(t.begin() + first, t.begin() + first + n),
                   {{"units", kTimeUnits}}));
    p.add(hours.var("lat"));
    p.add(hours.var("lon"));
    const auto& v = hours.var("swvl1").values<float>();
    const std::size_t cells = 51 * 61;
    p.add(Variable("swvl1", {"time", "lat", "lon"}, {n, 51, 61},
                   std::vector<float>(v.begin() + first * cells, v.begin() + (first + n) * cells), {{"units", "m3 m-3"}}));
    return p;
  };
  grid::write_netcdf(part(372, 372), tmp.path / "a_late.nc");
  grid::write_netcdf(part(0, 372), tmp.path / "b_early.nc");
  const Dataset joined = era5({tmp.path / "a_late.nc", tmp.path / "b_early.nc"}, true, "").data;
  const Dataset whole = era5({kEra5WaJan}, true, "").data;
  REQUIRE(joined.dim("time") == 31);
  CHECK(joined.var("time").values<double>() == whole.var("time").values<double>());
  CHECK(joined.var("swvl1").values<float>() == whole.var("swvl1").values<float>());  // bit for bit, day 16 too

  // Overlapping time steps: both files named.
  fs::copy_file(kEra5WaJan, tmp.path / "copy.nc");
  const std::string overlap = error_of([&] { era5({kEra5WaJan, tmp.path / "copy.nc"}, true); });
  CHECK(contains(overlap, "the files' time steps overlap"));
  CHECK(contains(overlap, kEra5WaJan.string()));
  CHECK(contains(overlap, (tmp.path / "copy.nc").string()));
  CHECK(contains(overlap, "covers 2020-01-01T00:00 .. 2020-01-31T23:00"));
  // Different grids (ERA5-Land 0.1° in January, ERA5 0.25° in October): both files named.
  const std::string grids = error_of([&] { era5({kEra5WaJan, kEra5WaOct}, true); });
  CHECK(contains(grids, "the files' grids differ"));
  CHECK(contains(grids, kEra5WaJan.string() + " has 51 × 61 cells"));
  CHECK(contains(grids, kEra5WaOct.string() + " has 21 × 25 cells"));
}

TEST_CASE("io_grid: SMAP 9 km point list onto a regular 0.1° grid: nearest cell, mean per cell, date from the name") {
  require_samples();
  grid::SmapOptions o;
  o.files = {kSmapPak / "Pakistan_9km_smap_2020-01-04.nc"};
  o.grid = grid::regular_grid(0.1, 25.0, 28.5, 67.0, 73.0);
  const auto r = grid::read_smap(o);
  const Dataset& d = r.data;
  CHECK(d.dim("time") == 1);
  CHECK(d.dim("lat") == 35);
  CHECK(d.dim("lon") == 60);
  CHECK(d.var("time").values<double>()[0] == static_cast<double>(parse_date("2020-01-04")));  // from the file name
  CHECK(d.var("lat").values<double>()[0] == doctest::Approx(25.05));
  // h5py + numpy (cells by floor((lat - 25) / 0.1), floor((lon - 67) / 0.1)): 3899 points, all inside;
  // every one of the 2100 cells has at least one; cell (0, 12) (25.05°N, 68.25°E) has 4 points, mean
  // 0.278838284; the mean of the 2100 cell means is 0.14802979.
  CHECK(at(d, "n_obs", 0, 0, 12) == 4.0f);
  CHECK(at(d, "soil_moisture", 0, 0, 12) == doctest::Approx(0.278838284).epsilon(1e-6));
  double total = 0;
  for (float n : d.var("n_obs").values<float>()) total += n;
  CHECK(total == 3899);
  const auto [mean, nan] = finite_mean(d.var("soil_moisture"));
  CHECK(nan == 0);
  CHECK(mean == doctest::Approx(0.14802979).epsilon(1e-6));
  CHECK(d.var("soil_moisture").attr("units") == "m3 m-3");
  CHECK(r.warnings.empty());

  o.variable = "soil_moisture_dca";
  CHECK(grid::read_smap(o).data.has("soil_moisture_dca"));
}

TEST_CASE("io_grid: SMAP January onto the ERA5-Land grid (decreasing latitudes) through its coordinates") {
  require_samples();
  grid::SmapOptions o;
  o.files = files::list_files(kSmapWa, {"Western-Australia_2020-01-*.nc"}, /*recursive=*/false);
  REQUIRE(o.files.size() == 31);
  o.grid = grid::grid_of(era5({kEra5WaJan}, true).data, "the ERA5 grid");
  const auto r = grid::read_smap(o);
  const Dataset& d = r.data;
  CHECK(d.dim("time") == 31);
  CHECK(d.dim("lat") == 51);
  CHECK(d.var("lat").values<double>()[0] == doctest::Approx(-27.0));
  // h5py + numpy (nearest centre by argmin |lat - latitude|, |lon - longitude|): 107760 points, all on the
  // grid; 64883 (day, cell) pairs hold at least one; on 2020-01-15 cell (1, 7) (27.1°S, 116.7°E) has 4,
  // mean 0.143045072; the mean of all (day, cell) means is 0.081695722. Western-Australia_2020-01-29.nc
  // holds no points: its day is there, all NaN.
  double total = 0;
  std::size_t cells = 0;
  for (float n : d.var("n_obs").values<float>()) total += n, cells += n > 0;
  CHECK(total == 107760);
  CHECK(cells == 64883);
  CHECK(at(d, "n_obs", day_of(d, "2020-01-15"), 1, 7) == 4.0f);
  CHECK(at(d, "soil_moisture", day_of(d, "2020-01-15"), 1, 7) == doctest::Approx(0.143045072).epsilon(1e-6));
  CHECK(finite_mean(d.var("soil_moisture")).first == doctest::Approx(0.081695722).epsilon(1e-6));
  const std::size_t empty_day = day_of(d, "2020-01-29");
  for (std::size_t c = 0; c < 51 * 61; ++c) CHECK(at(d, "n_obs", empty_day, c / 61, c % 61) == 0.0f);
  REQUIRE(r.warnings.size() == 1);
  CHECK(contains(r.warnings[0], "1 file(s) hold no points"));
  CHECK(contains(d.attrs.at("attribution"), "NASA National Snow and Ice Data Center"));
}

TEST_CASE("io_grid: gridding rules, dates, time units, CF units") {
  // Cell of a value on an axis of centres: nearest centre; halfway goes to the larger coordinate.
  const std::vector<double> up{0.5, 1.5, 2.5}, down{2.5, 1.5, 0.5};
  CHECK(grid::cell_index(up, 1.0) == 1);
  CHECK(grid::cell_index(up, 0.99) == 0);
  CHECK(grid::cell_index(down, 1.0) == 1);  // the cell of 1.5, which is index 1 going down
  CHECK(grid::cell_index(down, 0.99) == 2);
  CHECK(grid::cell_index(up, 0.0) == 0);  // on the outer edge
  CHECK(grid::cell_index(up, 3.0) == 2);
  CHECK(grid::cell_index(up, -0.01) == -1);
  CHECK(grid::cell_index(up, 3.01) == -1);
  CHECK(grid::cell_index(up, std::nan("")) == -1);

  // Two points in one cell are averaged; a NaN point is ignored; one outside is counted; longitudes wrap.
  const grid::LatLonGrid g = grid::regular_grid(1.0, 0.0, 2.0, 350.0, 352.0);  // centres 0.5/1.5, 350.5/351.5
  const auto p = grid::grid_points(g, {0.2, 0.8, 1.5, 1.5, 5.0}, {-9.8, -9.2, 351.2, 351.3, 351.0},
                                   {0.1, 0.3, std::nan(""), 0.4, 0.9});
  CHECK(p.count == std::vector<std::uint32_t>{2, 0, 0, 1});
  CHECK(p.mean[0] == doctest::Approx(0.2));  // -9.8°E and -9.2°E are 350.2° and 350.8°
  CHECK(std::isnan(p.mean[1]));
  CHECK(p.mean[3] == doctest::Approx(0.4));
  CHECK(p.outside == 1);

  CHECK(contains(error_of([] { grid::regular_grid(0.3, 25, 28.5, 67, 73); }),
                 "the span 3.5 degrees is not a whole number of cells of 0.3 degrees"));
  CHECK(contains(error_of([] { grid::regular_grid(0.1, 28, 25, 67, 73); }), "'lat_min' (28) must be below 'lat_max' (25)"));
  CHECK(contains(error_of([] { grid::regular_grid(0.0, 25, 28, 67, 73); }), "'resolution' must be above 0"));
  Dataset no_grid;
  no_grid.add(Variable("x", {"x"}, {2}, std::vector<double>{1, 2}));
  CHECK(contains(error_of([&] { grid::grid_of(no_grid, "input 'like'"); }), "input 'like' has no coordinate 'lat'"));

  CHECK(grid::date_from_name("Western-Australia_2020-01-14.nc") == parse_date("2020-01-14"));
  CHECK(grid::date_from_name("ERA5_Pakistan_20200101_20200107.nc") == parse_date("2020-01-07"));  // the last one
  CHECK(grid::date_from_name("SMAP_L3_20201399.h5") == std::nullopt);  // not a date
  CHECK(grid::date_from_name("x_123456789.nc") == std::nullopt);       // 9 digits
  CHECK(grid::date_from_name("plain.nc") == std::nullopt);

  const auto s = grid::parse_time_units("seconds since 1970-01-01");
  REQUIRE(s);
  CHECK(s->scale == 1);
  CHECK(s->offset == 0);
  const auto h = grid::parse_time_units("hours since 1900-01-01 00:00:00.0");
  REQUIRE(h);
  CHECK(h->scale == 3600);
  CHECK(h->offset == static_cast<double>(days_from_civil(1900, 1, 1)) * 86400);
  const auto d = grid::parse_time_units("days since 2000-01-01T12:00:00Z");
  REQUIRE(d);
  CHECK(d->offset == (static_cast<double>(parse_date("2000-01-01")) + 0.5) * 86400);
  CHECK_FALSE(grid::parse_time_units("fortnights since 2000-01-01"));
  CHECK_FALSE(grid::parse_time_units("days after 2000-01-01"));
  CHECK_FALSE(grid::parse_time_units("m3 m-3"));

  CHECK(grid::cf_units("m**3 m**-3") == "m3 m-3");
}

TEST_CASE("io_grid: bad input: clear errors naming the file and what was expected, no crash") {
  TempDir tmp("grid-bad");
  const fs::path dir = tmp.path;
  auto read = [](const fs::path& f) { return error_of([&] { era5({f}, true); }); };

  testutil::write_file(dir / "text.nc", "this is not NetCDF\n");
  const std::string text = read(dir / "text.nc");
  CHECK(text == (dir / "text.nc").string() + ": is not an HDF5 file; expected a NetCDF-4 file (HDF5 inside)");
  testutil::write_file(dir / "empty.nc", "");
  CHECK(contains(read(dir / "empty.nc"), "empty.nc: is not an HDF5 file"));
  testutil::write_file(dir / "classic.nc", std::string("CDF\x01\0\0\0\0", 8));
  CHECK(contains(read(dir / "classic.nc"), "classic.nc: is a NetCDF-3 (classic format) file; expected NetCDF-4"));
  CHECK(contains(read(dir / "nothing.nc"), "nothing.nc: no such file"));
  fs::create_directory(dir / "folder.nc");
  CHECK(contains(read(dir / "folder.nc"), "folder.nc: is a directory"));

  // A real file cut short: HDF5 refuses it, the error names the file.
  if (fs::exists(kEra5WaJan)) {
    const std::string bytes = testutil::read_file(kEra5WaJan);
    testutil::write_file(dir / "truncated.nc", bytes.substr(0, bytes.size() / 2));
    const std::string cut = read(dir / "truncated.nc");
    CHECK(contains(cut, (dir / "truncated.nc").string() + ": "));
    CHECK_FALSE(cut.empty());
  }

  // Valid NetCDF-4 files with the wrong content.
  Dataset other = hourly_dataset(24, {1.0, 0.0}, {5.0, 6.0}, [](std::size_t h, std::size_t, std::size_t) { return h * 0.01; });
  Dataset renamed;
  for (const auto& v : other.variables())
    renamed.add(v.name() == "swvl1" ? Variable("swvl2", v.dims(), v.shape(), v.values<float>(), v.attrs()) : v);
  grid::write_netcdf(renamed, dir / "no_var.nc");
  const std::string missing = read(dir / "no_var.nc");
  CHECK(contains(missing, (dir / "no_var.nc").string() + ": no variable 'swvl1' (the variable to read); the file has:"));
  CHECK(contains(missing, "swvl2"));

  grid::write_netcdf(other, dir / "no_mask.nc");
  CHECK(contains(read(dir / "no_mask.nc"), "no_mask.nc: no variable 'lsm' (the land-sea mask)"));
  CHECK(contains(read(dir / "no_mask.nc"), "set mask_variable = \"\" to read without a mask"));
  Dataset masked = other;
  masked.add(Variable("lsm", {"lat"}, {2}, std::vector<float>{1, 0}));
  grid::write_netcdf(masked, dir / "bad_mask.nc");
  CHECK(contains(read(dir / "bad_mask.nc"), "bad_mask.nc: mask 'lsm' has dimensions (lat 2); expected (lat, lon)"));

  Dataset flat;
  flat.add(other.var("time"));
  flat.add(other.var("lat"));
  flat.add(Variable("swvl1", {"time", "lat"}, {24, 2}, std::vector<float>(48, 0.2f)));
  grid::write_netcdf(flat, dir / "two_dims.nc");
  CHECK(contains(read(dir / "two_dims.nc"),
                 "two_dims.nc: variable 'swvl1' has 2 dimensions (time 24, lat 2); expected (time, latitude, longitude)"));

  Dataset swapped;
  for (const auto& name : {"time", "lat", "lon"}) swapped.add(other.var(name));
  swapped.add(Variable("swvl1", {"lat", "lon", "time"}, {2, 2, 24}, std::vector<float>(96, 0.2f)));
  grid::write_netcdf(swapped, dir / "swapped.nc");
  CHECK(contains(read(dir / "swapped.nc"),
                 "swapped.nc: variable 'swvl1' has dimensions (lat 2, lon 2, time 24); expected (time, latitude, longitude)"));

  Dataset odd_time = other;
  Variable t = other.var("time");
  t.attrs()["units"] = "fortnights since 2020-01-01";
  odd_time.add(t);
  grid::write_netcdf(odd_time, dir / "odd_time.nc");
  const std::string odd = read(dir / "odd_time.nc");
  CHECK(contains(odd, "odd_time.nc: variable 'swvl1' has dimensions (time 24, lat 2, lon 2); expected (time, latitude, longitude)"));
  CHECK(contains(odd, "'time' is not a time coordinate (units 'fortnights since 2020-01-01'"));

  // SMAP: missing variables, wrong dimensions, no date.
  auto smap = [&](const fs::path& f, const std::string& variable = "soil_moisture") {
    grid::SmapOptions o;
    o.files = {f};
    o.variable = variable;
    o.grid = grid::regular_grid(1.0, 0.0, 2.0, 0.0, 2.0);
    return error_of([&] { grid::read_smap(o); });
  };
  Dataset points;
  points.add(Variable("latitude", {"index"}, {2}, std::vector<float>{0.5f, 1.5f}));
  points.add(Variable("longitude", {"index"}, {2}, std::vector<float>{0.5f, 1.5f}));
  grid::write_netcdf(points, dir / "pts_2020-01-01.nc");
  CHECK(contains(smap(dir / "pts_2020-01-01.nc"), "pts_2020-01-01.nc: no variable 'soil_moisture' (the variable to read)"));
  points.add(Variable("soil_moisture", {"index"}, {2}, std::vector<float>{0.1f, 0.2f}));
  grid::write_netcdf(points, dir / "undated.nc");
  CHECK(contains(smap(dir / "undated.nc"),
                 "undated.nc: no time variable 'time' and no date (YYYY-MM-DD or YYYYMMDD) in the file name"));
  Dataset square = points;
  square.add(Variable("soil_moisture_dca", {"index", "pass"}, {2, 2}, std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f}));
  grid::write_netcdf(square, dir / "square_2020-01-01.nc");
  CHECK(contains(smap(dir / "square_2020-01-01.nc", "soil_moisture_dca"),
                 "square_2020-01-01.nc: variable 'soil_moisture_dca' has dimensions (index 2, pass 2); expected one "
                 "dimension (a point list along 'index')"));
  CHECK(contains(smap(dir / "text.nc"), "text.nc: is not an HDF5 file"));

  // A time variable in the file dates its points, whatever the name says.
  Dataset timed = points;
  timed.add(Variable("time", {"time"}, {1}, std::vector<double>{18300.25}, {{"units", "days since 1970-01-01"}}));
  grid::write_netcdf(timed, dir / "timed_2020-01-01.nc");
  grid::SmapOptions o;
  o.files = {dir / "timed_2020-01-01.nc"};
  o.grid = grid::regular_grid(1.0, 0.0, 2.0, 0.0, 2.0);
  CHECK(grid::read_smap(o).data.var("time").values<double>() == std::vector<double>{18300});

  // A per-point time that is missing matters only where the point has a value.
  Dataset per_point;
  per_point.add(Variable("latitude", {"index"}, {2}, std::vector<float>{0.5f, 1.5f}));
  per_point.add(Variable("longitude", {"index"}, {2}, std::vector<float>{0.5f, 1.5f}));
  per_point.add(Variable("soil_moisture", {"index"}, {2}, std::vector<float>{0.1f, NAN}));
  per_point.add(Variable("time", {"index"}, {2}, std::vector<double>{18300.25, NAN}, {{"units", "days since 1970-01-01"}}));
  grid::write_netcdf(per_point, dir / "gap_time.nc");
  o.files = {dir / "gap_time.nc"};
  const auto gap = grid::read_smap(o);
  CHECK(gap.data.var("time").values<double>() == std::vector<double>{18300});
  per_point.add(Variable("soil_moisture", {"index"}, {2}, std::vector<float>{0.1f, 0.3f}));
  grid::write_netcdf(per_point, dir / "bad_time.nc");
  CHECK(contains(smap(dir / "bad_time.nc"),
                 "bad_time.nc: time variable 'time' holds a missing value at point 1, which has a value of 'soil_moisture'"));
}

TEST_CASE("io_grid: write_netcdf: atomic replacement, clear errors, nothing left behind") {
  TempDir tmp("grid-write");
  const Dataset ds = hourly_dataset(3, {1.0, 0.0}, {5.0, 6.0}, [](std::size_t h, std::size_t i, std::size_t j) {
    return h + i * 0.1 + j * 0.01;
  });
  const std::string missing_dir = error_of([&] { grid::write_netcdf(ds, tmp.path / "nope" / "x.nc"); });
  CHECK(missing_dir == "cannot write '" + (tmp.path / "nope" / "x.nc").string() + "': its directory '" +
                           (tmp.path / "nope").string() + "' does not exist");
  CHECK_FALSE(fs::exists(tmp.path / "nope"));

  const fs::path file = tmp.path / "out.nc";
  grid::write_netcdf(ds, file);
  const std::string first = testutil::read_file(file);
  Dataset bad = ds;
  bad.attrs["DIMENSION_LIST"] = "x";
  CHECK(contains(error_of([&] { grid::write_netcdf(bad, file); }),
                 "out.nc: attribute name 'DIMENSION_LIST' of the file is reserved"));
  CHECK(testutil::read_file(file) == first);  // the old file stays whole
  CHECK(temp_files_in(tmp.path).empty());
  grid::write_netcdf(ds, file);
  CHECK(testutil::read_file(file) == first);  // the same Dataset gives the same bytes

  // Round trip through the reader: values, coordinates and units come back.
  const Dataset back = era5({file}, false, "").data;
  CHECK(back.var("swvl1").values<float>() == ds.var("swvl1").values<float>());
  CHECK(back.var("lat").values<double>() == ds.var("lat").values<double>());
  CHECK(back.var("time").values<double>()[2] == doctest::Approx(ds.var("time").values<double>()[2]).epsilon(1e-12));
}

TEST_CASE("io_grid: files written by write_netcdf open in xarray with CF time, coordinates and NaN fill") {
  // Debian's interpreter, where python3-h5py, -xarray and -h5netcdf are installed (not the pyenv one).
  const char* python = "/usr/bin/python3";
  if (std::system((std::string(python) + " -c 'import h5py, h5netcdf, xarray' >/dev/null 2>&1").c_str()) != 0) {
    MESSAGE("skipped: ", python, " cannot import h5py, h5netcdf and xarray");
    return;
  }
  TempDir tmp("grid-xarray");
  Dataset ds = hourly_dataset(48, {1.0, 0.0}, {5.0, 6.0}, [](std::size_t h, std::size_t i, std::size_t j) {
    return h == 5 && i == 1 && j == 0 ? std::nan("") : h + i * 0.1 + j * 0.01;
  });
  ds.add(Variable("site", {"site"}, {2}, std::vector<std::string>{"A", "Muñoz"}));
  ds.add(Variable("elevation", {"site"}, {2}, std::vector<double>{12.5, 300}, {{"units", "m"}}));
  ds.add(Variable("big", {"time", "cell"}, {48, 8000}, std::vector<float>(48 * 8000, 0.5f)));  // > 1 MiB: compressed
  ds.attrs["attribution"] = grid::kEra5Attribution;
  grid::write_netcdf(ds, tmp.path / "out.nc");
  testutil::write_file(tmp.path / "check.py", R"PY(
import sys
import h5py, numpy as np, xarray as xr
path = sys.argv[1]
with h5py.File(path, "r") as f:
    assert [d[0].name for d in f["swvl1"].dims] == ["/time", "/lat", "/lon"]
    assert np.isnan(f["swvl1"].attrs["_FillValue"]) and f["swvl1"].attrs["_FillValue"].dtype == np.float32
    assert f["big"].compression == "gzip"
ds = xr.open_dataset(path, engine="h5netcdf")
assert list(ds.data_vars) == ["swvl1", "elevation", "big"], list(ds.data_vars)
assert ds["swvl1"].dims == ("time", "lat", "lon")
assert ds.sizes["cell"] == 8000 and "cell" not in ds.variables  # a dimension without a coordinate
assert ds["time"].dtype.kind == "M", ds["time"].dtype
assert str(ds["time"].values[0])[:19] == "2020-01-01T00:00:00"
assert str(ds["time"].values[25])[:19] == "2020-01-02T01:00:00", ds["time"].values[25]
assert list(ds["lat"].values) == [1.0, 0.0] and ds["lat"].attrs["units"] == "degrees_north"
v = ds["swvl1"].values
assert v.dtype == np.float32 and np.isnan(v[5, 1, 0]) and v[7, 0, 1] == np.float32(7.01)
assert ds["swvl1"].attrs["units"] == "m3 m-3"
assert list(ds["site"].values) == ["A", "Muñoz"]
assert ds["elevation"].values[1] == 300.0
assert ds.attrs["attribution"] == "Contains modified Copernicus Climate Change Service information 2020"
assert ds.attrs["Conventions"] == "CF-1.8"
print("ok")
)PY");
  const auto out = testutil::run(std::string(python) + " " + (tmp.path / "check.py").string() + " " +
                                 (tmp.path / "out.nc").string());
  INFO("python output:\n", out.text);
  CHECK(out.code == 0);
}

TEST_CASE("io_grid: workflows/era5_smap_samples.toml runs, io.write_netcdf writes again on a cached run") {
  require_samples();
  TempDir tmp("grid-workflow");
  const std::string workflow = std::string(COUPLET_SOURCE_DIR) + "/workflows/era5_smap_samples.toml";
  const fs::path era5_nc = tmp.path / "era5.nc", smap_nc = tmp.path / "smap.nc";
  const std::string cmd = testutil::cli() + " --plugin-path " + COUPLET_PLUGIN_DIR + " run -q " + workflow +
                          " --runs-dir " + (tmp.path / "runs").string() + " --set write_era5.path='\"" +
                          era5_nc.string() + "\"' --set write_smap.path='\"" + smap_nc.string() + "\"'";
  const auto first = testutil::run(cmd);
  INFO(first.text);
  REQUIRE(first.code == 0);
  CHECK(fs::file_size(era5_nc) > 0);
  CHECK(fs::file_size(smap_nc) > 0);
  fs::remove(era5_nc);
  const auto second = testutil::run(cmd);
  INFO(second.text);
  REQUIRE(second.code == 0);
  const auto status = testutil::statuses(tmp.path / "runs/era5_smap_samples/latest");
  CHECK(status.at("era5") == "cached");
  CHECK(status.at("smap") == "cached");
  CHECK(status.at("write_era5") == "executed");  // no outputs: never skipped by the cache
  CHECK(fs::exists(era5_nc));
  // The SMAP export is on the ERA5-Land grid, one step per January day.
  const Dataset smap = era5({smap_nc}, false, "", 0.5, "soil_moisture").data;
  CHECK(smap.dim("time") == 31);
  CHECK(smap.dim("lat") == 51);
  CHECK(smap.dim("lon") == 61);
}
