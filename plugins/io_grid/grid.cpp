#include "io_grid/grid.hpp"
#include "common/text.hpp"

#include <couplet/context.hpp>
#include <couplet/series.hpp>
#include <couplet/time.hpp>

#include <hdf5.h>
#include <hdf5_hl.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

namespace couplet::grid {

namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

using text::join;

std::string fmt(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

// A time in seconds since 1970 as "YYYY-MM-DDTHH:MM" for messages.
std::string format_time(double seconds) {
  const double day = std::floor(seconds / 86400.0);
  const auto in_day = static_cast<long>(std::llround(seconds - day * 86400.0));
  char buf[48];
  std::snprintf(buf, sizeof buf, "T%02ld:%02ld", in_day / 3600, (in_day % 3600) / 60);
  return format_date(static_cast<std::int64_t>(day)) + buf;
}

// ---------------------------------------------------------------------------------------------------
// HDF5 plumbing

// Serialises this plugin's HDF5 work: the high-level H5DS calls are outside the thread-safe library's
// lock, and two io_grid nodes may run at once.
std::mutex g_hdf5;

// Held around all HDF5 work: failures become NodeErrors instead of HDF5 printing its error stack. (In a
// thread-safe HDF5 build the printing switch is per thread, so other threads keep their own setting.)
class Session {
 public:
  Session() : lock_(g_hdf5) {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Session() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The innermost message on HDF5's error stack: where the failure started ("truncated file", ...).
std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &reason);
  return reason;
}

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  const std::string reason = hdf5_reason();
  throw NodeError(file.string() + ": " + what + (reason.empty() ? "" : " (HDF5: " + reason + ")"));
}

void check(herr_t status, const fs::path& file, const std::string& what) {
  if (status < 0) fail(file, what);
}

// Owns an HDF5 identifier.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer closer, const fs::path& file, const std::string& what) : id_(id), close_(closer) {
    if (id_ < 0) fail(file, what);
  }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_, close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { reset(); }
  operator hid_t() const { return id_; }
  // For a file being written: its close must succeed before the data counts as written.
  void close(const fs::path& file, const std::string& what) {
    const herr_t status = close_(id_);
    id_ = -1;
    check(status, file, what);
  }

 private:
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  Closer close_ = nullptr;
};

// Opens a NetCDF-4 file for reading, after checking that it is one.
Id open_netcdf4(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw NodeError(file.string() + ": no such file");
  if (fs::is_directory(file, ec)) throw NodeError(file.string() + ": is a directory, expected a NetCDF-4 file");
  char head[4] = {};
  std::ifstream in(file, std::ios::binary);
  if (!in) throw NodeError(file.string() + ": cannot be opened for reading: " + std::strerror(errno));
  in.read(head, sizeof head);
  if (in.gcount() == 4 && std::memcmp(head, "CDF", 3) == 0 && (head[3] == 1 || head[3] == 2 || head[3] == 5))
    throw NodeError(file.string() + ": is a NetCDF-3 (classic format) file; expected NetCDF-4, which is HDF5 inside "
                    "(convert it, e.g. with `nccopy -k nc4`)");
  if (H5Fis_hdf5(file.c_str()) <= 0)
    throw NodeError(file.string() + ": is not an HDF5 file; expected a NetCDF-4 file (HDF5 inside)");
  return Id(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, file, "cannot open the file");
}

// Names of the root group's links (variables and netCDF dimensions), for messages.
std::vector<std::string> root_names(hid_t file) {
  std::vector<std::string> names;
  hsize_t idx = 0;
  H5Literate(
      file, H5_INDEX_NAME, H5_ITER_INC, &idx,
      [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
      },
      &names);
  return names;
}

bool has_dataset(hid_t file, const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || H5Lexists(file, name.c_str(), H5P_DEFAULT) <= 0)
    return false;
  H5O_info_t info;
  return H5Oget_info_by_name(file, name.c_str(), &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET;
}

// A string attribute (fixed-length or variable-length), or nullopt when absent or not a string.
std::optional<std::string> attr_string(hid_t obj, const char* name, const fs::path& file) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  const std::string what = std::string("cannot read attribute '") + name + "'";
  Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, file, what);
  Id ftype(H5Aget_type(attr), H5Tclose, file, what);
  if (H5Tget_class(ftype) != H5T_STRING) return std::nullopt;
  Id space(H5Aget_space(attr), H5Sclose, file, what);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  if (n < 1) return std::string();
  // HDF5 converts no character set into another: read in the attribute's own.
  const H5T_cset_t cset = H5Tget_cset(ftype);
  if (H5Tis_variable_str(ftype) > 0) {
    Id mem(H5Tcopy(H5T_C_S1), H5Tclose, file, what);
    check(H5Tset_size(mem, H5T_VARIABLE), file, what);
    check(H5Tset_cset(mem, cset), file, what);
    std::vector<char*> ptrs(static_cast<std::size_t>(n), nullptr);
    check(H5Aread(attr, mem, ptrs.data()), file, what);
    std::string s = ptrs[0] ? ptrs[0] : "";
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
    return s;
  }
  const std::size_t size = H5Tget_size(ftype);
  Id mem(H5Tcopy(H5T_C_S1), H5Tclose, file, what);
  check(H5Tset_size(mem, size), file, what);
  check(H5Tset_cset(mem, cset), file, what);
  std::vector<char> buf(size * static_cast<std::size_t>(n) + 1, '\0');
  check(H5Aread(attr, mem, buf.data()), file, what);
  std::string s(buf.data(), strnlen(buf.data(), size));
  while (!s.empty() && s.back() == ' ') s.pop_back();  // space-padded strings
  return s;
}

// A numeric attribute's values as doubles, or nullopt when absent; NodeError when it is not numeric.
std::optional<std::vector<double>> attr_numbers(hid_t obj, const char* name, const fs::path& file,
                                                const std::string& owner) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  const std::string what = std::string("cannot read attribute '") + name + "' of " + owner;
  Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose, file, what);
  Id ftype(H5Aget_type(attr), H5Tclose, file, what);
  const H5T_class_t cls = H5Tget_class(ftype);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw NodeError(file.string() + ": attribute '" + name + "' of " + owner + " is not a number");
  Id space(H5Aget_space(attr), H5Sclose, file, what);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<double> v(static_cast<std::size_t>(std::max<hssize_t>(n, 0)));
  if (!v.empty()) check(H5Aread(attr, H5T_NATIVE_DOUBLE, v.data()), file, what);
  return v;
}

// A dataset of the file, opened, with its rank, extents and dimension names (from its dimension scales;
// "" for an axis without one).
struct Var {
  Id id;
  std::string name;
  std::vector<hsize_t> shape;
  std::vector<std::string> dims;

  std::size_t size() const {
    std::size_t n = 1;
    for (auto e : shape) n *= static_cast<std::size_t>(e);
    return n;
  }
  std::string dims_text() const {
    std::vector<std::string> parts;
    for (std::size_t a = 0; a < dims.size(); ++a)
      parts.push_back((dims[a].empty() ? "?" : dims[a]) + " " + std::to_string(shape[a]));
    return "(" + join(parts) + ")";
  }
};

std::string dim_name(hid_t var, unsigned axis) {
  if (H5DSget_num_scales(var, axis) <= 0) return "";
  std::string path;
  H5DSiterate_scales(
      var, axis, nullptr,
      [](hid_t, unsigned, hid_t scale, void* out) -> herr_t {
        const ssize_t len = H5Iget_name(scale, nullptr, 0);
        if (len <= 0) return -1;
        auto& s = *static_cast<std::string*>(out);
        s.assign(static_cast<std::size_t>(len) + 1, '\0');
        H5Iget_name(scale, s.data(), s.size());
        s.resize(static_cast<std::size_t>(len));
        return 1;  // the first scale names the dimension
      },
      &path);
  return path.substr(path.rfind('/') + 1);
}

// Opens variable `name`; NodeError naming the file and listing what it has when it is missing. `role`
// says what it is for ("the variable", "the land mask").
Var open_var(hid_t file, const fs::path& path, const std::string& name, const std::string& role,
             const std::string& hint = "") {
  if (!has_dataset(file, name))
    throw NodeError(path.string() + ": no variable '" + name + "' (" + role + "); the file has: " +
                    join(root_names(file)) + hint);
  Var v;
  v.name = name;
  const std::string what = "cannot open variable '" + name + "'";
  v.id = Id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose, path, what);
  Id space(H5Dget_space(v.id), H5Sclose, path, what);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(path, what);
  v.shape.resize(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, v.shape.data(), nullptr), path, what);
  if (H5DSis_scale(v.id) > 0 && rank == 1) {
    v.dims = {name};
  } else {
    for (int a = 0; a < rank; ++a) v.dims.push_back(dim_name(v.id, static_cast<unsigned>(a)));
  }
  Id type(H5Dget_type(v.id), H5Tclose, path, what);
  const H5T_class_t cls = H5Tget_class(type);
  if (cls != H5T_INTEGER && cls != H5T_FLOAT)
    throw NodeError(path.string() + ": variable '" + name + "' does not hold numbers (expected integers or floats)");
  return v;
}

// CF packing and missing values of a variable: stored values equal to _FillValue or missing_value, or
// outside valid_min/valid_max/valid_range (all in stored units), become NaN; the others are unpacked
// as stored · scale_factor + add_offset.
struct Packing {
  double scale = 1, offset = 0;
  std::vector<double> missing;
  double lo = -kInf, hi = kInf;

  void apply(double* v, std::size_t n) const {
    const bool unpack = scale != 1 || offset != 0;
    for (std::size_t i = 0; i < n; ++i) {
      double& x = v[i];
      if (std::isnan(x)) continue;
      if (x < lo || x > hi || std::find(missing.begin(), missing.end(), x) != missing.end()) {
        x = kNaN;
        continue;
      }
      if (unpack) x = x * scale + offset;
    }
  }
};

Packing packing_of(const Var& v, const fs::path& file) {
  Packing p;
  const std::string owner = "variable '" + v.name + "'";
  auto one = [&](const char* name) -> std::optional<double> {
    auto a = attr_numbers(v.id, name, file, owner);
    if (!a) return std::nullopt;
    if (a->size() != 1)
      throw NodeError(file.string() + ": attribute '" + name + "' of " + owner + " has " + std::to_string(a->size()) +
                      " values, expected 1");
    return a->front();
  };
  if (auto s = one("scale_factor")) p.scale = *s;
  if (auto o = one("add_offset")) p.offset = *o;
  if (auto f = one("_FillValue"); f && !std::isnan(*f)) p.missing.push_back(*f);
  if (auto m = attr_numbers(v.id, "missing_value", file, owner))
    for (double x : *m)
      if (!std::isnan(x)) p.missing.push_back(x);
  if (auto lo = one("valid_min")) p.lo = *lo;
  if (auto hi = one("valid_max")) p.hi = *hi;
  if (auto r = attr_numbers(v.id, "valid_range", file, owner)) {
    if (r->size() != 2)
      throw NodeError(file.string() + ": attribute 'valid_range' of " + owner + " has " + std::to_string(r->size()) +
                      " values, expected 2");
    p.lo = (*r)[0], p.hi = (*r)[1];
  }
  return p;
}

// Reads the block [start, start + count) of a variable as doubles (HDF5 converts integer and float
// storage), not yet unpacked.
void read_block(const Var& v, const fs::path& file, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                double* out) {
  const std::string what = "cannot read variable '" + v.name + "'";
  std::size_t n = 1;
  for (auto c : count) n *= static_cast<std::size_t>(c);
  if (n == 0) return;
  Id fspace(H5Dget_space(v.id), H5Sclose, file, what);
  if (!count.empty())
    check(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), file, what);
  Id mspace(count.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr),
            H5Sclose, file, what);
  check(H5Dread(v.id, H5T_NATIVE_DOUBLE, mspace, fspace, H5P_DEFAULT, out), file, what);
}

// The whole variable as unpacked doubles.
std::vector<double> read_all(const Var& v, const fs::path& file) {
  std::vector<double> out(v.size());
  read_block(v, file, std::vector<hsize_t>(v.shape.size(), 0), v.shape, out.data());
  packing_of(v, file).apply(out.data(), out.size());
  return out;
}

// The times of a time variable, as seconds since 1970-01-01 UTC, from its `units` (and `calendar`).
std::vector<double> read_times(const Var& t, const fs::path& file) {
  const auto units = attr_string(t.id, "units", file);
  if (!units) throw NodeError(file.string() + ": time variable '" + t.name + "' has no 'units' attribute");
  const auto tu = parse_time_units(*units);
  if (!tu)
    throw NodeError(file.string() + ": time variable '" + t.name + "' has units '" + *units +
                    "'; expected '<seconds|minutes|hours|days> since <YYYY-MM-DD[ hh:mm:ss]>'");
  if (auto cal = attr_string(t.id, "calendar", file)) {
    std::string c = *cal;
    for (auto& ch : c) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (c != "standard" && c != "gregorian" && c != "proleptic_gregorian")
      throw NodeError(file.string() + ": time variable '" + t.name + "' uses calendar '" + *cal +
                      "'; expected standard, gregorian or proleptic_gregorian");
  }
  auto v = read_all(t, file);
  for (double& x : v) x = x * tu->scale + tu->offset;
  return v;
}

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

// Whether a dimension's coordinate variable says it is latitude / longitude / time.
bool is_axis(hid_t file, const fs::path& path, const std::string& dim, char axis) {
  if (dim.empty()) return false;
  if (axis == 'y' && one_of(dim, {"latitude", "lat"})) return true;
  if (axis == 'x' && one_of(dim, {"longitude", "lon"})) return true;
  if (!has_dataset(file, dim)) return false;
  Id ds(H5Dopen2(file, dim.c_str(), H5P_DEFAULT), H5Dclose, path, "cannot open dimension '" + dim + "'");
  const std::string units = attr_string(ds, "units", path).value_or("");
  const std::string standard = attr_string(ds, "standard_name", path).value_or("");
  if (axis == 'y') return standard == "latitude" || one_of(units, {"degrees_north", "degree_north", "degrees_N"});
  if (axis == 'x') return standard == "longitude" || one_of(units, {"degrees_east", "degree_east", "degrees_E"});
  return standard == "time" || parse_time_units(units).has_value();
}

// A 1-D coordinate: strictly monotonic and finite, else NodeError.
void check_monotonic(const std::vector<double>& c, const fs::path& file, const std::string& name) {
  bool up = true, down = true, finite = true;
  for (std::size_t i = 0; i < c.size(); ++i) {
    finite = finite && std::isfinite(c[i]);
    if (i) up = up && c[i] > c[i - 1], down = down && c[i] < c[i - 1];
  }
  if (!finite || !(up || down))
    throw NodeError(file.string() + ": coordinate '" + name + "' is not strictly increasing or decreasing");
}

// ---------------------------------------------------------------------------------------------------
// Grids

// Cell edges of an axis of centres, ascending, and whether the centres descend.
struct Axis {
  std::vector<double> edges;
  bool descending = false;
  std::size_t n() const { return edges.size() - 1; }
};

Axis axis_of(const std::vector<double>& centres) {
  Axis a;
  std::vector<double> c = centres;
  a.descending = c.size() >= 2 && c[1] < c[0];
  if (a.descending) std::reverse(c.begin(), c.end());
  const std::size_t n = c.size();
  a.edges.resize(n + 1);
  a.edges[0] = c[0] - (c[1] - c[0]) / 2;
  for (std::size_t k = 1; k < n; ++k) a.edges[k] = (c[k - 1] + c[k]) / 2;
  a.edges[n] = c[n - 1] + (c[n - 1] - c[n - 2]) / 2;
  return a;
}

// Slack on the outer edges, so that a point on a grid bound written in decimal is not lost to rounding.
constexpr double kEdgeSlack = 1e-9;

std::ptrdiff_t locate(const Axis& a, double x) {
  if (!std::isfinite(x) || x < a.edges.front() - kEdgeSlack || x > a.edges.back() + kEdgeSlack) return -1;
  auto it = std::upper_bound(a.edges.begin(), a.edges.end(), x);
  std::ptrdiff_t i = (it - a.edges.begin()) - 1;
  i = std::clamp<std::ptrdiff_t>(i, 0, static_cast<std::ptrdiff_t>(a.n()) - 1);
  return a.descending ? static_cast<std::ptrdiff_t>(a.n()) - 1 - i : i;
}

// Longitudes are wrapped by ±360° onto the axis' range before locating.
std::ptrdiff_t locate_lon(const Axis& a, double x) {
  std::ptrdiff_t i = locate(a, x);
  if (i < 0 && std::isfinite(x)) i = locate(a, x < a.edges.front() ? x + 360 : x - 360);
  return i;
}

void check_grid(const LatLonGrid& g, const std::string& what) {
  for (const auto* c : {&g.lat, &g.lon}) {
    const char* name = c == &g.lat ? "lat" : "lon";
    if (c->size() < 2)
      throw NodeError(what + ": coordinate '" + name + "' has " + std::to_string(c->size()) +
                      " values; a grid needs at least 2 cells along each axis");
    check_monotonic(*c, what, name);
  }
}

// Per-cell sums and counts of one day.
struct Accumulator {
  std::vector<double> sum;
  std::vector<std::uint32_t> count;
  explicit Accumulator(std::size_t cells = 0) : sum(cells, 0.0), count(cells, 0) {}
};

// ---------------------------------------------------------------------------------------------------
// ERA5

struct MaskLayout {
  bool per_step = false;  // the mask has the variable's time dimension: one mask per time step
};

struct Era5File {
  fs::path path;
  std::vector<double> t;  // seconds since 1970-01-01
  std::vector<double> lat, lon;
  std::string units, long_name, institution;
  MaskLayout mask;
};

std::string grid_text(const Era5File& f) {
  return std::to_string(f.lat.size()) + " × " + std::to_string(f.lon.size()) + " cells (lat " + fmt(f.lat.front()) +
         " .. " + fmt(f.lat.back()) + ", lon " + fmt(f.lon.front()) + " .. " + fmt(f.lon.back()) + ")";
}

// Opens `opt.variable` and checks that it is (time, latitude, longitude); `dims_out` gets the names.
Var open_era5_var(hid_t file, const fs::path& path, const Era5Options& opt) {
  Var v = open_var(file, path, opt.variable, "the variable to read");
  const std::string expected = "; expected (time, latitude, longitude)";
  if (v.shape.size() != 3)
    throw NodeError(path.string() + ": variable '" + opt.variable + "' has " + std::to_string(v.shape.size()) +
                    " dimensions " + v.dims_text() + expected);
  if (std::any_of(v.dims.begin(), v.dims.end(), [](const std::string& d) { return d.empty(); }))
    throw NodeError(path.string() + ": variable '" + opt.variable + "' has no NetCDF-4 dimension scales " +
                    v.dims_text() + expected);
  const char* roles[3] = {"a time coordinate", "a latitude", "a longitude"};
  const char axes[3] = {'t', 'y', 'x'};
  for (std::size_t a = 0; a < 3; ++a) {
    if (is_axis(file, path, v.dims[a], axes[a])) continue;
    std::string why = "'" + v.dims[a] + "' is not " + roles[a];
    if (has_dataset(file, v.dims[a])) {
      Id c(H5Dopen2(file, v.dims[a].c_str(), H5P_DEFAULT), H5Dclose, path, "cannot open '" + v.dims[a] + "'");
      why += " (units '" + attr_string(c, "units", path).value_or("") + "'" +
             (a == 0 ? "; expected '<seconds|minutes|hours|days> since YYYY-MM-DD'" : "") + ")";
    }
    throw NodeError(path.string() + ": variable '" + opt.variable + "' has dimensions " + v.dims_text() + expected +
                    ": " + why);
  }
  return v;
}

Era5File inspect_era5(const fs::path& path, const Era5Options& opt) {
  Era5File f;
  f.path = path;
  Id file = open_netcdf4(path);
  Var v = open_era5_var(file, path, opt);
  auto coord = [&](const std::string& dim, hsize_t extent) {
    if (!has_dataset(file, dim))
      throw NodeError(path.string() + ": dimension '" + dim + "' of variable '" + opt.variable +
                      "' has no coordinate variable");
    Var c = open_var(file, path, dim, "a coordinate");
    if (c.shape.size() != 1 || c.shape[0] != extent)
      throw NodeError(path.string() + ": coordinate '" + dim + "' has shape " + c.dims_text() + ", expected " +
                      std::to_string(extent) + " values");
    return c;
  };
  f.t = read_times(coord(v.dims[0], v.shape[0]), path);
  if (f.t.empty()) throw NodeError(path.string() + ": variable '" + opt.variable + "' has no time steps");
  for (std::size_t i = 1; i < f.t.size(); ++i)
    if (!(f.t[i] > f.t[i - 1]))
      throw NodeError(path.string() + ": time steps are not increasing at " + format_time(f.t[i]));
  f.lat = read_all(coord(v.dims[1], v.shape[1]), path);
  f.lon = read_all(coord(v.dims[2], v.shape[2]), path);
  check_monotonic(f.lat, path, v.dims[1]);
  check_monotonic(f.lon, path, v.dims[2]);
  f.units = attr_string(v.id, "units", path).value_or("");
  f.long_name = attr_string(v.id, "long_name", path).value_or("");
  f.institution = attr_string(file, "institution", path).value_or("");

  if (!opt.mask_variable.empty()) {
    Var m = open_var(file, path, opt.mask_variable, "the land-sea mask",
                     "; set mask_variable = \"\" to read without a mask");
    const std::size_t r = m.shape.size();
    bool ok = r >= 2 && m.dims[r - 2] == v.dims[1] && m.dims[r - 1] == v.dims[2] && m.shape[r - 2] == v.shape[1] &&
              m.shape[r - 1] == v.shape[2];
    if (ok && r == 3 && m.dims[0] == v.dims[0] && m.shape[0] == v.shape[0]) {
      f.mask.per_step = true;
    } else {
      for (std::size_t a = 0; ok && a + 2 < r; ++a) ok = m.shape[a] == 1;
    }
    if (!ok)
      throw NodeError(path.string() + ": mask '" + opt.mask_variable + "' has dimensions " + m.dims_text() +
                      "; expected (" + v.dims[1] + ", " + v.dims[2] + ") of variable '" + opt.variable +
                      "', with leading dimensions of length 1 or its time dimension '" + v.dims[0] + "'");
  }
  return f;
}

bool same_axis(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::fabs(a[i] - b[i]) > 1e-6) return false;
  return true;
}

}  // namespace

// -----------------------------------------------------------------------------------------------------
// Public helpers

std::optional<TimeUnits> parse_time_units(const std::string& units) {
  std::istringstream in(units);
  std::string unit, since, date, time;
  if (!(in >> unit >> since >> date)) return std::nullopt;
  in >> time;
  std::string rest;
  if (in >> rest) {
    if (rest != "UTC" && rest != "Z" && rest != "+00:00" && rest != "+0:00" && rest != "00:00") return std::nullopt;
    if (in >> rest) return std::nullopt;
  }
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (auto& c : since) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (since != "since") return std::nullopt;
  TimeUnits tu;
  if (one_of(unit, {"seconds", "second", "secs", "sec", "s"})) tu.scale = 1;
  else if (one_of(unit, {"minutes", "minute", "mins", "min"})) tu.scale = 60;
  else if (one_of(unit, {"hours", "hour", "hrs", "hr", "h"})) tu.scale = 3600;
  else if (one_of(unit, {"days", "day", "d"})) tu.scale = 86400;
  else return std::nullopt;
  // "1970-01-01T00:00:00Z" or "1970-01-01 00:00:00"
  if (auto t = date.find('T'); t != std::string::npos) {
    if (!time.empty()) return std::nullopt;
    time = date.substr(t + 1);
    date.resize(t);
  }
  if (!time.empty() && (time.back() == 'Z')) time.pop_back();
  int y = 0, m = 0, d = 0;
  char tail = 0;
  if (std::sscanf(date.c_str(), "%d-%d-%d%c", &y, &m, &d, &tail) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
    return std::nullopt;
  double seconds = 0;
  if (!time.empty()) {
    int hh = 0, mm = 0;
    double ss = 0;
    const int got = std::sscanf(time.c_str(), "%d:%d:%lf%c", &hh, &mm, &ss, &tail);
    if (got < 2 || got > 3 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss >= 61) return std::nullopt;
    seconds = hh * 3600.0 + mm * 60.0 + ss;
  }
  tu.offset = static_cast<double>(days_from_civil(y, m, d)) * 86400.0 + seconds;
  return tu;
}

std::optional<std::int64_t> date_from_name(const std::string& name) {
  std::optional<std::int64_t> found;
  auto digit = [&](std::size_t i) { return i < name.size() && std::isdigit(static_cast<unsigned char>(name[i])); };
  auto try_date = [&](const std::string& text) {
    try {
      found = parse_date(text);
      return true;
    } catch (const std::invalid_argument&) {
      return false;
    }
  };
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (i > 0 && digit(i - 1)) continue;  // a date starts a run of digits
    if (i + 10 <= name.size() && name[i + 4] == '-' && name[i + 7] == '-' && !digit(i + 10)) {
      bool ok = true;
      for (std::size_t k : {0, 1, 2, 3, 5, 6, 8, 9}) ok = ok && digit(i + k);
      if (ok && try_date(name.substr(i, 10))) continue;
    }
    std::size_t run = 0;
    while (digit(i + run)) ++run;
    if (run == 8) try_date(name.substr(i, 8));
  }
  return found;
}

std::string cf_units(const std::string& units) {
  std::string s = units;
  for (std::size_t p; (p = s.find("**")) != std::string::npos;) s.erase(p, 2);
  return s;
}

// -----------------------------------------------------------------------------------------------------
// ERA5

Loaded read_era5(const Era5Options& opt, const FileHook& before_file) {
  if (opt.files.empty()) throw NodeError("no ERA5 files to read");
  if (opt.variable.empty()) throw NodeError("parameter 'variable' is empty");
  if (one_of(opt.variable, {"time", "lat", "lon"}))
    throw NodeError("parameter 'variable': '" + opt.variable + "' is an output coordinate name; read a data variable");
  Session session;

  // Pass 1: coordinates and checks of every file, before reading any values.
  std::vector<Era5File> files;
  for (const auto& p : opt.files) files.push_back(inspect_era5(p, opt));
  std::sort(files.begin(), files.end(), [](const Era5File& a, const Era5File& b) { return a.t.front() < b.t.front(); });
  for (std::size_t k = 1; k < files.size(); ++k) {
    const Era5File &a = files[k - 1], &b = files[k];
    if (!same_axis(a.lat, b.lat) || !same_axis(a.lon, b.lon))
      throw NodeError("the files' grids differ: " + a.path.string() + " has " + grid_text(a) + ", " + b.path.string() +
                      " has " + grid_text(b) + "; all files must share one grid");
    if (b.t.front() <= a.t.back())
      throw NodeError("the files' time steps overlap: " + a.path.string() + " covers " + format_time(a.t.front()) +
                      " .. " + format_time(a.t.back()) + ", " + b.path.string() + " starts at " +
                      format_time(b.t.front()) + "; give each time step once");
    if (a.units != b.units)
      throw NodeError("variable '" + opt.variable + "' has units '" + a.units + "' in " + a.path.string() + " but '" +
                      b.units + "' in " + b.path.string());
  }

  const std::vector<double>& lat = files.front().lat;
  const std::vector<double>& lon = files.front().lon;
  const std::size_t cells = lat.size() * lon.size();
  std::size_t steps = 0;
  double min_step = kInf;
  for (const auto& f : files) {
    steps += f.t.size();
    for (std::size_t i = 1; i < f.t.size(); ++i) min_step = std::min(min_step, f.t[i] - f.t[i - 1]);
  }

  // The output's time axis: UTC days holding at least one step (daily) or the steps themselves.
  std::vector<std::int64_t> days;  // per step, in file order
  for (const auto& f : files)
    for (double t : f.t) days.push_back(static_cast<std::int64_t>(std::floor(t / 86400.0)));
  std::vector<std::int64_t> out_days = days;
  out_days.erase(std::unique(out_days.begin(), out_days.end()), out_days.end());

  std::vector<float> hourly;  // aggregate = none
  Accumulator acc;            // daily mean: (day, cell) sums and counts
  if (opt.daily_mean) acc = Accumulator(out_days.size() * cells);
  else hourly.resize(steps * cells);

  std::size_t negative = 0;
  double min_value = kInf;
  std::size_t step0 = 0, day_index = 0;
  for (std::size_t k = 0; k < files.size(); ++k) {
    const Era5File& f = files[k];
    if (before_file) before_file(k, files.size(), f.path.filename().string());
    Id file = open_netcdf4(f.path);
    Var v = open_era5_var(file, f.path, opt);
    const Packing packing = packing_of(v, f.path);
    std::vector<double> mask;
    Var m;
    Packing mask_packing;
    if (!opt.mask_variable.empty()) {
      m = open_var(file, f.path, opt.mask_variable, "the land-sea mask");
      mask_packing = packing_of(m, f.path);
      if (!f.mask.per_step) {
        mask = read_all(m, f.path);
      }
    }
    // Blocks of whole time steps, about 64 MiB of doubles each.
    const std::size_t block = std::max<std::size_t>(1, (std::size_t{8} << 20) / std::max<std::size_t>(cells, 1));
    std::vector<double> values, step_mask;
    for (std::size_t b = 0; b < f.t.size(); b += block) {
      const std::size_t nb = std::min(block, f.t.size() - b);
      values.resize(nb * cells);
      read_block(v, f.path, {b, 0, 0}, {nb, lat.size(), lon.size()}, values.data());
      packing.apply(values.data(), values.size());
      if (f.mask.per_step) {
        step_mask.resize(nb * cells);
        read_block(m, f.path, {b, 0, 0}, {nb, lat.size(), lon.size()}, step_mask.data());
        mask_packing.apply(step_mask.data(), step_mask.size());
      }
      for (std::size_t s = 0; s < nb; ++s) {
        const std::size_t step = step0 + b + s;
        while (opt.daily_mean && out_days[day_index] != days[step]) ++day_index;
        double* row = values.data() + s * cells;
        const double* mrow = f.mask.per_step ? step_mask.data() + s * cells : mask.empty() ? nullptr : mask.data();
        for (std::size_t c = 0; c < cells; ++c) {
          double x = row[c];
          if (mrow && !(mrow[c] >= opt.mask_threshold)) x = kNaN;
          if (x < 0) ++negative, min_value = std::min(min_value, x);
          if (opt.daily_mean) {
            if (!std::isnan(x)) acc.sum[day_index * cells + c] += x, acc.count[day_index * cells + c]++;
          } else {
            hourly[step * cells + c] = static_cast<float>(x);
          }
        }
      }
    }
    step0 += f.t.size();
  }

  Loaded out;
  // Days with fewer steps than a whole day of the files' step (e.g. 24 for hourly data).
  if (opt.daily_mean && std::isfinite(min_step) && min_step > 0 && std::fmod(86400.0, min_step) == 0) {
    const auto expected = static_cast<std::size_t>(86400.0 / min_step);
    std::size_t short_days = 0, first_count = 0;
    std::int64_t first_short = 0;
    for (std::size_t i = 0, d = 0; d < out_days.size(); ++d) {
      std::size_t n = 0;
      while (i < days.size() && days[i] == out_days[d]) ++i, ++n;
      if (n < expected && short_days++ == 0) first_short = out_days[d], first_count = n;
    }
    if (short_days)
      out.warnings.push_back(std::to_string(short_days) + " day(s) have fewer than " + std::to_string(expected) +
                             " time steps (first: " + format_date(first_short) + " with " + std::to_string(first_count) +
                             "); their means cover only the steps present");
  }
  const std::string cf = cf_units(files.front().units);
  if (negative && cf == "m3 m-3")
    out.warnings.push_back(std::to_string(negative) + " values of '" + opt.variable + "' below 0 (lowest " +
                           fmt(min_value) + ") remain after masking; kept as they are");

  Dataset& ds = out.data;
  std::vector<double> time;
  if (opt.daily_mean) {
    for (auto d : out_days) time.push_back(static_cast<double>(d));
  } else {
    for (const auto& f : files)
      for (double t : f.t) time.push_back(t / 86400.0);
  }
  Variable tc = series::time_coord(time);
  tc.attrs()["calendar"] = "proleptic_gregorian";
  tc.attrs()["standard_name"] = "time";
  ds.add(std::move(tc));
  ds.add(Variable("lat", {"lat"}, {lat.size()}, lat,
                  {{"units", "degrees_north"}, {"standard_name", "latitude"}, {"long_name", "latitude"}}));
  ds.add(Variable("lon", {"lon"}, {lon.size()}, lon,
                  {{"units", "degrees_east"}, {"standard_name", "longitude"}, {"long_name", "longitude"}}));
  Attributes va;
  if (!cf.empty()) va["units"] = cf;
  if (!files.front().long_name.empty()) va["long_name"] = files.front().long_name;
  if (!opt.mask_variable.empty()) {
    va["comment"] = "cells where " + opt.mask_variable + " < " + fmt(opt.mask_threshold) + " (or is missing) set to NaN";
  }
  std::vector<float> values;
  if (opt.daily_mean) {
    va["cell_methods"] = "time: mean (UTC days; mean of the finite time steps present, NaN if none)";
    values.resize(acc.sum.size());
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = acc.count[i] ? static_cast<float>(acc.sum[i] / acc.count[i]) : std::numeric_limits<float>::quiet_NaN();
  } else {
    values = std::move(hourly);
  }
  ds.add(Variable(opt.variable, {"time", "lat", "lon"}, {time.size(), lat.size(), lon.size()}, std::move(values), va));

  std::vector<std::string> names;
  for (const auto& f : files) names.push_back(f.path.filename().string());
  ds.attrs["title"] = "ERA5/ERA5-Land " + opt.variable + (opt.daily_mean ? ", daily means" : ", as stored");
  ds.attrs["source"] = "ECMWF ERA5/ERA5-Land (Copernicus Climate Change Service) files: " + join(names);
  if (!files.front().institution.empty()) ds.attrs["institution"] = files.front().institution;
  ds.attrs["attribution"] = kEra5Attribution;
  ds.attrs["references"] = kEra5References;
  ds.attrs["history"] = std::string("couplet io.era5: ") +
                        (opt.daily_mean ? "UTC daily means of the time steps present; " : "time steps as stored; ") +
                        (opt.mask_variable.empty() ? "no land mask" : "land mask " + opt.mask_variable + " >= " + fmt(opt.mask_threshold));
  ds.attrs["Conventions"] = "CF-1.8";
  return out;
}

// -----------------------------------------------------------------------------------------------------
// Grids and SMAP

LatLonGrid regular_grid(double res, double lat_min, double lat_max, double lon_min, double lon_max) {
  if (!(res > 0)) throw NodeError("parameter 'resolution' must be above 0 degrees");
  LatLonGrid g;
  auto axis = [&](const char* lo_name, double lo, const char* hi_name, double hi, std::vector<double>& out) {
    if (!(lo < hi))
      throw NodeError(std::string("parameter '") + lo_name + "' (" + fmt(lo) + ") must be below '" + hi_name + "' (" +
                      fmt(hi) + ")");
    const double cells = (hi - lo) / res;
    const double whole = std::round(cells);
    if (std::fabs(cells - whole) > 1e-6)
      throw NodeError(std::string("parameters '") + lo_name + "' and '" + hi_name + "': the span " + fmt(hi - lo) +
                      " degrees is not a whole number of cells of " + fmt(res) + " degrees (" + fmt(cells) + ")");
    if (whole < 2)
      throw NodeError(std::string("parameters '") + lo_name + "' and '" + hi_name + "' hold " + fmt(whole) +
                      " cell(s) of 'resolution'; a grid needs at least 2 along each axis");
    for (std::size_t i = 0; i < static_cast<std::size_t>(whole); ++i) out.push_back(lo + (static_cast<double>(i) + 0.5) * res);
  };
  axis("lat_min", lat_min, "lat_max", lat_max, g.lat);
  axis("lon_min", lon_min, "lon_max", lon_max, g.lon);
  return g;
}

LatLonGrid grid_of(const Dataset& ds, const std::string& what) {
  auto coord = [&](const char* a, const char* b) {
    for (const char* name : {a, b}) {
      if (!ds.has(name)) continue;
      const Variable& v = ds.var(name);
      if (v.dims() != std::vector<std::string>{name} || v.dtype() == DType::String)
        throw NodeError(what + ": '" + name + "' is not a numeric coordinate over dimension '" + name + "'");
      return v.as_double();
    }
    throw NodeError(what + " has no coordinate '" + a + "' (or '" + b +
                    "'): expected a gridded Dataset over (time, lat, lon), e.g. io.era5's output");
  };
  LatLonGrid g{coord("lat", "latitude"), coord("lon", "longitude")};
  check_grid(g, what);
  return g;
}

std::ptrdiff_t cell_index(const std::vector<double>& centres, double x) {
  if (centres.size() < 2) throw NodeError("a grid axis needs at least 2 cell centres");
  return locate(axis_of(centres), x);
}

Gridded grid_points(const LatLonGrid& g, const std::vector<double>& lat, const std::vector<double>& lon,
                    const std::vector<double>& value) {
  check_grid(g, "the grid");
  if (lat.size() != lon.size() || lat.size() != value.size())
    throw NodeError("grid_points: latitude, longitude and value have different lengths");
  const Axis ya = axis_of(g.lat), xa = axis_of(g.lon);
  const std::size_t nx = g.lon.size();
  Accumulator acc(g.lat.size() * nx);
  Gridded out;
  for (std::size_t p = 0; p < value.size(); ++p) {
    if (std::isnan(value[p])) continue;
    const std::ptrdiff_t i = locate(ya, lat[p]), j = locate_lon(xa, lon[p]);
    if (i < 0 || j < 0) {
      ++out.outside;
      continue;
    }
    const std::size_t c = static_cast<std::size_t>(i) * nx + static_cast<std::size_t>(j);
    acc.sum[c] += value[p];
    acc.count[c]++;
  }
  out.mean.resize(acc.sum.size());
  for (std::size_t c = 0; c < acc.sum.size(); ++c) out.mean[c] = acc.count[c] ? acc.sum[c] / acc.count[c] : kNaN;
  out.count = std::move(acc.count);
  return out;
}

Loaded read_smap(const SmapOptions& opt, const FileHook& before_file) {
  if (opt.files.empty()) throw NodeError("no SMAP files to read");
  check_grid(opt.grid, "the grid");
  Session session;
  const Axis ya = axis_of(opt.grid.lat), xa = axis_of(opt.grid.lon);
  const std::size_t nx = opt.grid.lon.size(), cells = opt.grid.lat.size() * nx;
  std::map<std::int64_t, Accumulator> by_day;
  std::size_t outside = 0, points = 0, used = 0, empty_files = 0, from_name = 0;
  std::string units, long_name;

  for (std::size_t k = 0; k < opt.files.size(); ++k) {
    const fs::path& path = opt.files[k];
    if (before_file) before_file(k, opt.files.size(), path.filename().string());
    Id file = open_netcdf4(path);
    Var la = open_var(file, path, "latitude", "point latitudes");
    Var lo = open_var(file, path, "longitude", "point longitudes");
    Var va = open_var(file, path, opt.variable, "the variable to read");
    for (const Var* v : {&la, &lo, &va})
      if (v->shape.size() != 1 || la.shape.size() != 1 || v->shape[0] != la.shape[0])
        throw NodeError(path.string() + ": variable '" + v->name + "' has dimensions " + v->dims_text() +
                        "; expected one dimension (a point list along 'index'), the same for latitude, longitude "
                        "and '" + opt.variable + "'");
    const std::size_t n = la.shape[0];
    const auto lat = read_all(la, path), lon = read_all(lo, path), value = read_all(va, path);
    if (k == 0) {
      units = attr_string(va.id, "units", path).value_or("");
      long_name = attr_string(va.id, "long_name", path).value_or("");
    }

    // Each point's day: from a time variable (one per file or one per point), else from the file name.
    std::vector<std::int64_t> day(n);
    if (has_dataset(file, "time")) {
      Var tv = open_var(file, path, "time", "observation times");
      const auto t = read_times(tv, path);
      if (t.size() != 1 && t.size() != n)
        throw NodeError(path.string() + ": time variable 'time' has " + std::to_string(t.size()) +
                        " values; expected 1 (the file's day) or one per point (" + std::to_string(n) + ")");
      for (std::size_t p = 0; p < n; ++p) {
        const double s = t.size() == 1 ? t[0] : t[p];
        if (!std::isfinite(s)) {
          if (std::isnan(value[p])) continue;  // no retrieval at this point: its time does not matter
          throw NodeError(path.string() + ": time variable 'time' holds a missing value at point " + std::to_string(p) +
                          ", which has a value of '" + opt.variable + "'");
        }
        day[p] = static_cast<std::int64_t>(std::floor(s / 86400.0));
      }
      if (n == 0 && t.size() == 1 && std::isfinite(t[0]))
        by_day.try_emplace(static_cast<std::int64_t>(std::floor(t[0] / 86400.0)), cells);
    } else {
      const auto d = date_from_name(path.filename().string());
      if (!d)
        throw NodeError(path.string() + ": no time variable 'time' and no date (YYYY-MM-DD or YYYYMMDD) in the file "
                        "name; expected one of them to date the points");
      std::fill(day.begin(), day.end(), *d);
      by_day.try_emplace(*d, cells);  // a file without points still adds its (empty) day
      ++from_name;
    }
    if (n == 0) ++empty_files;
    points += n;
    for (std::size_t p = 0; p < n; ++p) {
      if (std::isnan(value[p])) continue;
      const std::ptrdiff_t i = locate(ya, lat[p]), j = locate_lon(xa, lon[p]);
      if (i < 0 || j < 0) {
        ++outside;
        continue;
      }
      auto& acc = by_day.try_emplace(day[p], cells).first->second;
      const std::size_t c = static_cast<std::size_t>(i) * nx + static_cast<std::size_t>(j);
      acc.sum[c] += value[p];
      acc.count[c]++;
      ++used;
    }
  }

  Loaded out;
  if (outside)
    out.warnings.push_back(std::to_string(outside) + " of " + std::to_string(points) +
                           " points lie outside the grid and were left out");
  if (empty_files)
    out.warnings.push_back(std::to_string(empty_files) + " file(s) hold no points: their days are all NaN");

  std::vector<double> time;
  std::vector<float> mean, count;
  mean.reserve(by_day.size() * cells), count.reserve(by_day.size() * cells);
  for (const auto& [d, acc] : by_day) {
    time.push_back(static_cast<double>(d));
    for (std::size_t c = 0; c < cells; ++c) {
      mean.push_back(acc.count[c] ? static_cast<float>(acc.sum[c] / acc.count[c]) : std::numeric_limits<float>::quiet_NaN());
      count.push_back(static_cast<float>(acc.count[c]));
    }
  }
  Dataset& ds = out.data;
  Variable tc = series::time_coord(time);
  tc.attrs()["calendar"] = "proleptic_gregorian";
  tc.attrs()["standard_name"] = "time";
  ds.add(std::move(tc));
  ds.add(Variable("lat", {"lat"}, {opt.grid.lat.size()}, opt.grid.lat,
                  {{"units", "degrees_north"}, {"standard_name", "latitude"}, {"long_name", "latitude"}}));
  ds.add(Variable("lon", {"lon"}, {nx}, opt.grid.lon,
                  {{"units", "degrees_east"}, {"standard_name", "longitude"}, {"long_name", "longitude"}}));
  const std::vector<std::size_t> shape{time.size(), opt.grid.lat.size(), nx};
  ds.add(Variable(opt.variable, {"time", "lat", "lon"}, shape, std::move(mean),
                  {{"units", units.empty() ? "m3 m-3" : cf_units(units)},
                   {"long_name", long_name.empty() ? "SMAP L3 soil moisture (" + opt.variable + ")" : long_name},
                   {"cell_methods", "area: mean (points whose nearest cell this is, all of the day's passes together)"}}));
  ds.add(Variable("n_obs", {"time", "lat", "lon"}, shape, std::move(count),
                  {{"units", "1"}, {"long_name", "number of SMAP points averaged into the cell on the day"}}));
  std::vector<std::string> names;
  for (const auto& f : opt.files) names.push_back(f.filename().string());
  ds.attrs["title"] = "SMAP L3 " + opt.variable + " on a lat/lon grid, daily";
  ds.attrs["source"] = "SMAP L3 point lists: " + join(names);
  ds.attrs["attribution"] = kSmapAttribution;
  ds.attrs["history"] = "couplet io.smap: " + std::to_string(used) + " points averaged onto their nearest cell per day; " +
                        "days from " + (from_name == opt.files.size() ? "the file names" : "the files' time variables");
  ds.attrs["Conventions"] = "CF-1.8";
  return out;
}

// -----------------------------------------------------------------------------------------------------
// Writer

namespace {

const char* const kNotAVariable = "This is a netCDF dimension but not a netCDF variable.";
const std::string kNonCoordPrefix = "_nc4_non_coord_";
constexpr std::size_t kCompressAbove = std::size_t{1} << 20;

bool reserved_attr(const std::string& name) {
  return one_of(name, {"CLASS", "NAME", "DIMENSION_LIST", "REFERENCE_LIST", "_Netcdf4Dimid", "_Netcdf4Coordinates",
                       "_nc3_strict", "_NCProperties"});
}

bool is_coordinate(const Variable& v) { return v.dims().size() == 1 && v.dims()[0] == v.name(); }

Id untimed(hid_t cls, const fs::path& file) {
  Id p(H5Pcreate(cls), H5Pclose, file, "cannot create a property list");
  // Without timestamps the same Dataset gives the same bytes.
  check(H5Pset_obj_track_times(p, 0), file, "cannot create a property list");
  return p;
}

// A text attribute as netCDF writes NC_CHAR ones: a fixed-length string (UTF-8).
void put_text(hid_t obj, const std::string& name, const std::string& value, const fs::path& file, const std::string& owner) {
  if (value.find('\0') != std::string::npos)
    throw NodeError(file.string() + ": attribute '" + name + "' of " + owner + " holds a NUL character");
  const std::string what = "cannot write attribute '" + name + "' of " + owner;
  Id type(H5Tcopy(H5T_C_S1), H5Tclose, file, what);
  check(H5Tset_size(type, std::max<std::size_t>(value.size(), 1)), file, what);
  check(H5Tset_strpad(type, H5T_STR_NULLTERM), file, what);
  check(H5Tset_cset(type, H5T_CSET_UTF8), file, what);
  Id space(H5Screate(H5S_SCALAR), H5Sclose, file, what);
  Id attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, file, what);
  std::string buf = value;
  buf.resize(std::max<std::size_t>(value.size(), 1), '\0');
  check(H5Awrite(attr, type, buf.data()), file, what);
}

void put_attrs(hid_t obj, const Attributes& attrs, const fs::path& file, const std::string& owner) {
  for (const auto& [name, value] : attrs) {
    if (name == "_FillValue") continue;  // the writer's own (NaN on float variables)
    if (name.empty() || name.find('\0') != std::string::npos || reserved_attr(name))
      throw NodeError(file.string() + ": attribute name '" + name + "' of " + owner +
                      " is reserved by HDF5 dimension scales or netCDF");
    put_text(obj, name, value, file, owner);
  }
}

// Chunks of at most ~1 MiB, cutting the leading axes first so that a chunk holds whole trailing rows.
std::vector<hsize_t> chunks_for(const std::vector<std::size_t>& shape, std::size_t elem) {
  std::vector<hsize_t> c(shape.begin(), shape.end());
  for (std::size_t i = 0; i < c.size(); ++i) {
    hsize_t inner = elem;
    for (std::size_t j = i + 1; j < c.size(); ++j) inner *= c[j];
    if (inner * c[i] <= kCompressAbove) break;
    c[i] = std::max<hsize_t>(1, kCompressAbove / inner);
  }
  return c;
}

void write_variable(hid_t file, const std::string& link, const Variable& v, bool coordinate, const fs::path& path) {
  const std::string owner = "variable '" + v.name() + "'";
  const std::string what = "cannot write " + owner;
  std::vector<hsize_t> extents(v.shape().begin(), v.shape().end());
  Id space(extents.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(extents.size()), extents.data(), nullptr),
           H5Sclose, path, what);
  Id dcpl = untimed(H5P_DATASET_CREATE, path);
  check(H5Pset_attr_creation_order(dcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), path, what);
  if (v.dtype() == DType::String) {
    Id type(H5Tcopy(H5T_C_S1), H5Tclose, path, what);
    check(H5Tset_size(type, H5T_VARIABLE), path, what);
    check(H5Tset_cset(type, H5T_CSET_UTF8), path, what);
    Id ds(H5Dcreate2(file, link.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose, path, what);
    std::vector<const char*> ptrs;
    for (const auto& s : v.values<std::string>()) {
      if (s.find('\0') != std::string::npos) throw NodeError(path.string() + ": " + owner + " holds a NUL character");
      ptrs.push_back(s.c_str());
    }
    if (!ptrs.empty()) check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), path, what);
    put_attrs(ds, v.attrs(), path, owner);
    return;
  }
  const bool f32 = v.dtype() == DType::Float32;
  const hid_t type = f32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
  const std::size_t elem = f32 ? 4 : 8;
  const float nan32 = std::numeric_limits<float>::quiet_NaN();
  const double nan64 = kNaN;
  const void* nan = f32 ? static_cast<const void*>(&nan32) : static_cast<const void*>(&nan64);
  if (!coordinate) check(H5Pset_fill_value(dcpl, type, nan), path, what);
  if (v.size() * elem > kCompressAbove) {
    const auto chunk = chunks_for(v.shape(), elem);
    check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), path, what);
    check(H5Pset_shuffle(dcpl), path, what);
    check(H5Pset_deflate(dcpl, 4), path, what);
  }
  Id ds(H5Dcreate2(file, link.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose, path, what);
  if (v.size() > 0) {
    const void* data = f32 ? static_cast<const void*>(v.values<float>().data())
                           : static_cast<const void*>(v.values<double>().data());
    check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), path, what);
  }
  if (!coordinate) {
    Id aspace(H5Screate(H5S_SCALAR), H5Sclose, path, what);
    Id attr(H5Acreate2(ds, "_FillValue", type, aspace, H5P_DEFAULT, H5P_DEFAULT), H5Aclose, path, what);
    check(H5Awrite(attr, type, nan), path, what);
  }
  Attributes attrs = v.attrs();
  // CF time: xarray and netCDF tools decode a time coordinate by its units.
  if (coordinate && v.name() == "time") {
    attrs.try_emplace("units", kTimeUnits);
    if (attrs["units"].find(" since ") != std::string::npos) attrs.try_emplace("calendar", "proleptic_gregorian");
  }
  put_attrs(ds, attrs, path, owner);
}

void write_contents(const Dataset& ds, const fs::path& temp, const fs::path& file) {
  Id fcpl = untimed(H5P_FILE_CREATE, file);
  // Creation order, as netCDF-4 keeps it: readers list variables in the order they were written.
  check(H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), file, "cannot create the file");
  check(H5Pset_attr_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), file, "cannot create the file");
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, file, "cannot create the file");
  // Readable by the HDF5 1.8 libraries that many netCDF builds still use.
  check(H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18), file, "cannot create the file");
  Id h5(H5Fcreate(temp.c_str(), H5F_ACC_EXCL, fcpl, fapl), H5Fclose, file, "cannot create the file");

  auto link_of = [&](const Variable& v) {
    return ds.has_dim(v.name()) && !is_coordinate(v) ? kNonCoordPrefix + v.name() : v.name();
  };
  for (const auto& d : ds.dim_names()) {
    if (d.empty() || d.find('/') != std::string::npos || d.find('\0') != std::string::npos)
      throw NodeError(file.string() + ": dimension name '" + d + "' is not allowed (empty, or holds '/')");
    if (ds.has(d) && is_coordinate(ds.var(d))) continue;
    // A netCDF "dimension without a variable": an empty dataset that exists to be the scale.
    const hsize_t n = ds.dim(d);
    Id space(H5Screate_simple(1, &n, nullptr), H5Sclose, file, "cannot create dimension '" + d + "'");
    Id dcpl = untimed(H5P_DATASET_CREATE, file);
    Id scale(H5Dcreate2(h5, d.c_str(), H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose, file,
             "cannot create dimension '" + d + "'");
    char label[96];
    std::snprintf(label, sizeof label, "%s%10zu", kNotAVariable, ds.dim(d));
    check(H5DSset_scale(scale, label), file, "cannot make dimension '" + d + "' a dimension scale");
  }
  for (const auto& v : ds.variables()) {
    if (v.name().empty() || v.name().find('/') != std::string::npos || v.name().find('\0') != std::string::npos)
      throw NodeError(file.string() + ": variable name '" + v.name() + "' is not allowed (empty, or holds '/')");
    write_variable(h5, link_of(v), v, is_coordinate(v), file);
    if (is_coordinate(v)) {
      Id c(H5Dopen2(h5, v.name().c_str(), H5P_DEFAULT), H5Dclose, file, "cannot reopen '" + v.name() + "'");
      check(H5DSset_scale(c, v.name().c_str()), file, "cannot make '" + v.name() + "' a dimension scale");
    }
  }
  for (const auto& v : ds.variables()) {
    if (is_coordinate(v)) continue;  // a scale cannot have scales of its own
    const std::string owner = "variable '" + v.name() + "'";
    Id var(H5Dopen2(h5, link_of(v).c_str(), H5P_DEFAULT), H5Dclose, file, "cannot reopen " + owner);
    for (unsigned a = 0; a < v.dims().size(); ++a) {
      Id scale(H5Dopen2(h5, v.dims()[a].c_str(), H5P_DEFAULT), H5Dclose, file,
               "cannot open dimension '" + v.dims()[a] + "'");
      check(H5DSattach_scale(var, scale, a), file, "cannot attach dimension '" + v.dims()[a] + "' to " + owner);
    }
  }
  Attributes global = ds.attrs;
  global.try_emplace("Conventions", "CF-1.8");
  put_attrs(h5, global, file, "the file");
  h5.close(file, "cannot finish the file");
}

std::atomic<unsigned long> g_counter{0};

void fsync_file(const fs::path& p, const fs::path& file) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw NodeError(file.string() + ": cannot flush to disk: " + why);
  }
  ::close(fd);
}

}  // namespace

void write_netcdf(const Dataset& ds, const fs::path& file) {
  if (file.empty() || !file.has_filename())
    throw NodeError("cannot write '" + file.string() + "': not a file name");
  const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw NodeError("cannot write " + quoted(file) + ": its directory " + quoted(dir) + " does not exist");
  if (fs::is_directory(file, ec)) throw NodeError("cannot write " + quoted(file) + ": it is a directory");
  const fs::path temp = file.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
  try {
    {
      Session session;
      write_contents(ds, temp, file);
    }
    fsync_file(temp, file);
    fs::rename(temp, file);
  } catch (const std::exception& e) {
    fs::remove(temp, ec);
    if (dynamic_cast<const NodeError*>(&e)) throw;
    throw NodeError(file.string() + ": cannot write: " + e.what());
  }
  // Makes the rename durable where the file system can sync a directory; the file is complete already.
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) ::fsync(fd), ::close(fd);
}

}  // namespace couplet::grid
