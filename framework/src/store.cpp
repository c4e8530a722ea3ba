#include <couplet/framework/store.hpp>

#include <hdf5.h>
#include <hdf5_hl.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>

namespace couplet::store {

namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------------------------------------------
// Atomic replacement of a file

std::atomic<unsigned long> g_temp_counter{0};

// Owns a POSIX file descriptor.
class Fd {
 public:
  Fd(const fs::path& p, int flags, mode_t mode = 0644) : fd_(::open(p.c_str(), flags | O_CLOEXEC, mode)) {
    if (fd_ < 0) throw std::runtime_error("cannot open '" + p.string() + "': " + std::strerror(errno));
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { ::close(fd_); }
  operator int() const { return fd_; }

 private:
  int fd_;
};

void fsync_path(const fs::path& p) {
  Fd fd(p, O_RDONLY);
  if (::fsync(fd) != 0) throw std::runtime_error("cannot flush '" + p.string() + "' to disk: " + std::strerror(errno));
}

// A fresh temp name next to `file` (same directory, so that the rename is atomic); creates the directory.
fs::path temp_for(const fs::path& file) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  return file.string() + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_temp_counter++);
}

// Flushes a finished temp file and renames it onto `file`.
void publish(const fs::path& temp, const fs::path& file) {
  fsync_path(temp);
  fs::rename(temp, file);
  // Makes the rename itself durable. Best effort: not every file system can sync a directory, and the
  // file is already complete under its final name.
  const fs::path parent = file.has_parent_path() ? file.parent_path() : fs::path(".");
  int dir = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

// Runs `fill` on a temp file next to `file`, then publishes it. `what` names the kind of file in the
// error message.
void replace_atomically(const fs::path& file, const char* what, const std::function<void(const fs::path&)>& fill) {
  fs::path temp;
  try {
    temp = temp_for(file);
    fill(temp);
    publish(temp, file);
  } catch (const std::exception& e) {
    std::error_code ignored;
    if (!temp.empty()) fs::remove(temp, ignored);
    throw std::runtime_error(std::string("cannot write ") + what + " '" + file.string() + "': " + e.what());
  }
}

void write_text(const fs::path& file, const char* what, const std::string& text) {
  replace_atomically(file, what, [&](const fs::path& temp) {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write '" + temp.string() + "': " + std::strerror(errno));
  });
}

// ---------------------------------------------------------------------------------------------------
// Integrity: HDF5 1.10 can crash on a damaged file (a corrupt global heap, where variable-length
// strings live, is read without bounds checks), so artifacts carry a checksum that is verified before
// HDF5 parses anything. It lives in a 512-byte HDF5 user block at the start of the file, which HDF5,
// h5py and xarray skip.

constexpr std::size_t kUserBlock = 512;
const std::string kSealMagic = "couplet artifact\nchecksum ";

// A fast 64-bit checksum of the file from offset kUserBlock on. Every step is a bijection of the running
// value, so any change confined to one 8-byte word is always detected; it guards against damage, not
// against deliberate tampering.
std::uint64_t body_checksum(int fd, const fs::path& file) {
  std::vector<unsigned char> buf(std::size_t{1} << 20);
  std::uint64_t h = 0x9E3779B97F4A7C15ULL;
  std::uint64_t total = 0;
  for (;;) {
    std::size_t got = 0;
    while (got < buf.size()) {
      const ssize_t r = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(kUserBlock + total + got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) throw std::runtime_error("cannot read '" + file.string() + "': " + std::strerror(errno));
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    std::size_t i = 0;
    for (; i + 8 <= got; i += 8) {
      std::uint64_t w;
      std::memcpy(&w, buf.data() + i, 8);
      h ^= w;
      h = ((h << 29) | (h >> 35)) * 0xBF58476D1CE4E5B9ULL;
    }
    for (; i < got; ++i) h = (h ^ buf[i]) * 0x100000001B3ULL;
    total += got;
    if (got < buf.size()) break;
  }
  h ^= total;
  h = (h ^ (h >> 31)) * 0x94D049BB133111EBULL;
  return h ^ (h >> 29);
}

std::string seal_text(std::uint64_t checksum) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(checksum));
  return kSealMagic + hex + "\n";
}

// Writes the checksum into the user block of a closed HDF5 file created with one.
void seal(const fs::path& file) {
  Fd fd(file, O_RDWR);
  const std::string text = seal_text(body_checksum(fd, file));
  if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw std::runtime_error("cannot write '" + file.string() + "': " + std::strerror(errno));
}

// Checks a sealed file's checksum; files without a seal (not written by the store) pass unchecked.
void verify_seal(const fs::path& file) {
  Fd fd(file, O_RDONLY);
  std::string head(kSealMagic.size() + 17, '\0');
  if (::pread(fd, head.data(), head.size(), 0) == static_cast<ssize_t>(head.size()) &&
      head.compare(0, kSealMagic.size(), kSealMagic) == 0 && head != seal_text(body_checksum(fd, file)))
    throw std::runtime_error("damaged: its checksum does not match (changed or corrupted after it was written)");
}

// ---------------------------------------------------------------------------------------------------
// HDF5 plumbing

// The thread-safe HDF5 build does not cover the high-level H5DS calls, and the error-printing switch
// below is per-process in non-thread-safe builds: the store does its HDF5 work one call at a time.
std::mutex g_hdf5;

// Held around all HDF5 work: serialises it and keeps HDF5 from printing its error stack to stderr
// (failures become exceptions instead).
class Hdf5Session {
 public:
  Hdf5Session() : lock_(g_hdf5) {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Hdf5Session() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  Hdf5Session(const Hdf5Session&) = delete;
  Hdf5Session& operator=(const Hdf5Session&) = delete;

 private:
  std::lock_guard<std::mutex> lock_;
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// The innermost message on HDF5's error stack (where the failure started, e.g. "truncated file" or
// "Permission denied"), to say why a call failed.
std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        try {
          if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        } catch (...) {
          return -1;
        }
        return 0;
      },
      &reason);
  return reason;
}

[[noreturn]] void fail(const std::string& what) {
  const std::string reason = hdf5_reason();
  throw std::runtime_error(reason.empty() ? what : what + " (HDF5: " + reason + ")");
}

void check(herr_t status, const std::string& what) {
  if (status < 0) fail(what);
}

// Owns an HDF5 identifier; converts to hid_t for the C API.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id(hid_t id, Closer closer, const std::string& what) : id_(id), close_(closer) {
    if (id_ < 0) fail(what);
  }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Id& operator=(Id&&) = delete;
  ~Id() {
    if (id_ >= 0) close_(id_);
  }
  operator hid_t() const { return id_; }
  // For the file, whose close must succeed before the data counts as written.
  void close(const std::string& what) {
    herr_t status = close_(id_);
    id_ = -1;
    check(status, what);
  }

 private:
  hid_t id_;
  Closer close_;
};

Id vlen_string_type() {
  Id t(H5Tcopy(H5T_C_S1), H5Tclose, "cannot create a string type");
  check(H5Tset_size(t, H5T_VARIABLE), "cannot create a string type");
  check(H5Tset_cset(t, H5T_CSET_UTF8), "cannot create a string type");
  return t;
}

Id scalar_space() { return Id(H5Screate(H5S_SCALAR), H5Sclose, "cannot create a dataspace"); }

Id simple_space(const std::vector<hsize_t>& extents) {
  if (extents.empty()) return scalar_space();
  return Id(H5Screate_simple(static_cast<int>(extents.size()), extents.data(), nullptr), H5Sclose,
            "cannot create a dataspace");
}

// Frees the strings HDF5 allocated when reading variable-length strings into `ptrs`.
struct VlenStrings {
  hid_t type, space;
  std::vector<char*> ptrs;
  VlenStrings(hid_t memtype, hid_t dataspace, std::size_t n) : type(memtype), space(dataspace), ptrs(n, nullptr) {}
  VlenStrings(const VlenStrings&) = delete;
  VlenStrings& operator=(const VlenStrings&) = delete;
  ~VlenStrings() { H5Dvlen_reclaim(type, space, H5P_DEFAULT, ptrs.data()); }
  std::vector<std::string> strings() const {
    std::vector<std::string> out;
    out.reserve(ptrs.size());
    for (const char* p : ptrs) out.emplace_back(p ? p : "");  // HDF5 leaves never-written strings null
    return out;
  }
};

// HDF5 strings end at the first NUL: refuse rather than truncate.
const char* c_string(const std::string& s, const std::string& owner) {
  if (s.find('\0') != std::string::npos)
    throw std::runtime_error(owner + " holds a string with a NUL character, which HDF5 strings cannot hold");
  return s.c_str();
}

// ---------------------------------------------------------------------------------------------------
// Names and attributes

const char* const kNotAVariable = "This is a netCDF dimension but not a netCDF variable.";
const std::string kNonCoordPrefix = "_nc4_non_coord_";
constexpr std::size_t kChunkBytes = std::size_t{1} << 20;

// Names end up in HDF5 link names (no '/') and in comma-separated lists.
void check_name(const std::string& name, const char* what) {
  if (name.empty() || name == "." || name.find_first_of(std::string(",/\0", 3)) != std::string::npos)
    throw std::runtime_error(std::string(what) + " name '" + name + "' is not allowed (must be non-empty, without ',' or '/')");
}

bool reserved_attr(const std::string& name) {
  static const std::set<std::string> hdf5_netcdf = {"CLASS",           "NAME",          "DIMENSION_LIST",
                                                    "REFERENCE_LIST",  "_Netcdf4Dimid", "_Netcdf4Coordinates",
                                                    "_nc3_strict",     "_NCProperties"};
  return name.rfind("couplet_", 0) == 0 || hdf5_netcdf.count(name) != 0;
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ",") + n;
  return s;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  if (list.empty()) return out;
  std::size_t start = 0;
  for (;;) {
    std::size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

void write_attr(hid_t obj, const std::string& name, const std::string& value) {
  Id type = vlen_string_type();
  Id space = scalar_space();
  Id attr(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
          "cannot create attribute '" + name + "'");
  const char* p = c_string(value, "attribute '" + name + "'");
  check(H5Awrite(attr, type, &p), "cannot write attribute '" + name + "'");
}

void write_attrs(hid_t obj, const Attributes& attrs, const std::string& owner) {
  for (const auto& [name, value] : attrs) {
    if (name.empty() || name.find('\0') != std::string::npos || reserved_attr(name))
      throw std::runtime_error("attribute name '" + name + "' of " + owner + " is reserved or invalid");
    write_attr(obj, name, value);
  }
}

bool has_attr(hid_t obj, const std::string& name) { return H5Aexists(obj, name.c_str()) > 0; }

std::string read_attr(hid_t obj, const std::string& name, const std::string& owner) {
  if (!has_attr(obj, name)) throw std::runtime_error(owner + " has no attribute '" + name + "'");
  Id attr(H5Aopen(obj, name.c_str(), H5P_DEFAULT), H5Aclose, "cannot open attribute '" + name + "' of " + owner);
  Id ftype(H5Aget_type(attr), H5Tclose, "cannot read attribute '" + name + "' of " + owner);
  Id space(H5Aget_space(attr), H5Sclose, "cannot read attribute '" + name + "' of " + owner);
  if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) <= 0 || H5Sget_simple_extent_npoints(space) != 1)
    throw std::runtime_error("attribute '" + name + "' of " + owner + " is not a variable-length string");
  Id type = vlen_string_type();
  VlenStrings buf(type, space, 1);
  check(H5Aread(attr, type, buf.ptrs.data()), "cannot read attribute '" + name + "' of " + owner);
  return buf.strings().front();
}

// All attributes except the reserved ones.
Attributes read_attrs(hid_t obj, const std::string& owner) {
  std::vector<std::string> names;
  check(H5Aiterate2(
            obj, H5_INDEX_NAME, H5_ITER_INC, nullptr,
            [](hid_t, const char* name, const H5A_info_t*, void* out) -> herr_t {
              try {
                static_cast<std::vector<std::string>*>(out)->emplace_back(name);
              } catch (...) {
                return -1;
              }
              return 0;
            },
            &names),
        "cannot list the attributes of " + owner);
  Attributes attrs;
  for (const auto& n : names)
    if (!reserved_attr(n)) attrs[n] = read_attr(obj, n, owner);
  return attrs;
}

// ---------------------------------------------------------------------------------------------------
// Variables

// Chunks of at most kChunkBytes, cutting the leading (slowest-varying) axes first so that a chunk holds
// whole runs of the trailing ones.
std::vector<hsize_t> chunk_shape(const std::vector<std::size_t>& shape, std::size_t element_bytes) {
  std::vector<hsize_t> chunk(shape.begin(), shape.end());
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    hsize_t inner = element_bytes;
    for (std::size_t j = i + 1; j < chunk.size(); ++j) inner *= chunk[j];
    if (inner * chunk[i] <= kChunkBytes) break;
    chunk[i] = std::max<hsize_t>(1, kChunkBytes / inner);
  }
  return chunk;
}

// A creation property list without object timestamps: HDF5 stores creation/modification times by
// default, which would make the same artifact differ byte for byte between runs.
Id untimed_plist(hid_t cls) {
  Id p(H5Pcreate(cls), H5Pclose, "cannot create a property list");
  check(H5Pset_obj_track_times(p, 0), "cannot switch off object timestamps");
  return p;
}

std::size_t element_bytes(DType t) { return t == DType::Float32 ? 4 : 8; }
hid_t native_type(DType t) { return t == DType::Float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE; }

// Chunked storage with shuffle + deflate level 1: fast, and typically halves float data.
void compress(hid_t dcpl, const std::vector<hsize_t>& chunk, const std::string& owner) {
  check(H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data()), "cannot chunk " + owner);
  check(H5Pset_shuffle(dcpl), "cannot compress " + owner);
  check(H5Pset_deflate(dcpl, 1), "cannot compress " + owner);
}

// Creates dataset `link` in `loc` holding v's values and attributes.
Id write_variable(hid_t loc, const std::string& link, const Variable& v) {
  const std::string owner = "variable '" + v.name() + "'";
  Id space = simple_space({v.shape().begin(), v.shape().end()});
  Id dcpl = untimed_plist(H5P_DATASET_CREATE);
  if (v.dtype() != DType::String && v.size() * element_bytes(v.dtype()) > kChunkBytes)
    compress(dcpl, chunk_shape(v.shape(), element_bytes(v.dtype())), owner);
  const std::string failed = "cannot write " + owner;
  if (v.dtype() == DType::String) {
    Id type = vlen_string_type();
    Id ds(H5Dcreate2(loc, link.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose, failed);
    std::vector<const char*> ptrs;
    for (const auto& str : v.values<std::string>()) ptrs.push_back(c_string(str, owner));
    if (!ptrs.empty()) check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), failed);
    write_attrs(ds, v.attrs(), owner);
    return ds;
  }
  const hid_t type = native_type(v.dtype());
  Id ds(H5Dcreate2(loc, link.c_str(), type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose, failed);
  if (v.size() > 0) {
    const void* data = v.dtype() == DType::Float32 ? static_cast<const void*>(v.values<float>().data())
                                                   : static_cast<const void*>(v.values<double>().data());
    check(H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), failed);
  }
  write_attrs(ds, v.attrs(), owner);
  return ds;
}

// Rows [begin, begin + count) along a variable's first axis.
struct RowRange {
  std::size_t begin, count;
};

// Reads a variable whole, or only `rows` of it.
Variable read_variable(hid_t ds, const std::string& name, std::vector<std::string> dims, const RowRange* rows = nullptr) {
  const std::string owner = "variable '" + name + "'";
  const std::string failed = "cannot read " + owner;
  Id space(H5Dget_space(ds), H5Sclose, failed);
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) fail(failed);
  std::vector<hsize_t> extents(static_cast<std::size_t>(rank));
  if (rank > 0) check(H5Sget_simple_extent_dims(space, extents.data(), nullptr), failed);
  if (rows) {
    std::vector<hsize_t> start(extents.size(), 0);
    start[0] = rows->begin;
    extents[0] = rows->count;
    check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, extents.data(), nullptr), failed);
  }
  Id memspace = simple_space(extents);
  std::vector<std::size_t> shape(extents.begin(), extents.end());
  std::size_t n = 1;
  for (auto e : shape) n *= e;
  Attributes attrs = read_attrs(ds, owner);

  Id ftype(H5Dget_type(ds), H5Tclose, failed);
  const H5T_class_t cls = H5Tget_class(ftype);
  if (cls == H5T_FLOAT && H5Tget_size(ftype) == 4) {
    std::vector<float> values(n);
    if (n > 0) check(H5Dread(ds, H5T_NATIVE_FLOAT, memspace, space, H5P_DEFAULT, values.data()), failed);
    return Variable(name, std::move(dims), std::move(shape), std::move(values), std::move(attrs));
  }
  if (cls == H5T_FLOAT && H5Tget_size(ftype) == 8) {
    std::vector<double> values(n);
    if (n > 0) check(H5Dread(ds, H5T_NATIVE_DOUBLE, memspace, space, H5P_DEFAULT, values.data()), failed);
    return Variable(name, std::move(dims), std::move(shape), std::move(values), std::move(attrs));
  }
  if (cls == H5T_STRING && H5Tis_variable_str(ftype) > 0) {
    Id type = vlen_string_type();
    VlenStrings buf(type, memspace, n);
    if (n > 0) check(H5Dread(ds, type, memspace, space, H5P_DEFAULT, buf.ptrs.data()), failed);
    return Variable(name, std::move(dims), std::move(shape), buf.strings(), std::move(attrs));
  }
  throw std::runtime_error(owner + " has an unsupported HDF5 type (expected float32, float64 or variable-length string)");
}

// ---------------------------------------------------------------------------------------------------
// Datasets and tables: netCDF-4 style groups of variables over dimension scales

bool is_coordinate(const std::string& name, const std::vector<std::string>& dims) {
  return dims.size() == 1 && dims[0] == name;
}
bool is_coordinate(const Variable& v) { return is_coordinate(v.name(), v.dims()); }

// netCDF's rule: a variable that has a dimension's name without being its coordinate gets another
// link name, so that the dimension scale can take the name.
std::string link_name(const Dataset& ds, const std::string& name, const std::vector<std::string>& dims) {
  return ds.has_dim(name) && !is_coordinate(name, dims) ? kNonCoordPrefix + name : name;
}

bool has_coordinate(const Dataset& ds, const std::string& dim) { return ds.has(dim) && is_coordinate(ds.var(dim)); }

// A variable write_variables lays out: `whole` with its values, or `streamed` (created empty at full
// extent and filled later by row-block writes).
struct Entry {
  const Variable* whole = nullptr;
  const VariableSpec* streamed = nullptr;
  const std::string& name() const { return whole ? whole->name() : streamed->name; }
  const std::vector<std::string>& dims() const { return whole ? whole->dims() : streamed->dims; }
};

// The empty dataset of a streamed variable over `length` rows, chunked by `rows_per_chunk` whole rows.
void create_streamed(hid_t loc, const std::string& link, const VariableSpec& v, std::size_t length,
                     std::size_t rows_per_chunk) {
  const std::string owner = "variable '" + v.name + "'";
  std::vector<hsize_t> extents{length}, chunk{rows_per_chunk};
  for (auto e : v.shape) extents.push_back(e), chunk.push_back(e);
  Id space = simple_space(extents);
  Id dcpl = untimed_plist(H5P_DATASET_CREATE);
  // HDF5 cannot chunk an empty dataset (chunk extents must be within 1..extent).
  if (std::find(extents.begin(), extents.end(), 0) == extents.end()) compress(dcpl, chunk, owner);
  Id ds(H5Dcreate2(loc, link.c_str(), native_type(v.dtype), space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose,
        "cannot create " + owner);
  write_attrs(ds, v.attrs, owner);
}

// Writes the dimensions and variables of `ds`, then `streamed` (over dimensions `ds` declares, first
// `chunk_dim` of `length` rows), into the root group, with the variable order under `list_attr`.
void write_variables(hid_t file, const Dataset& ds, const char* list_attr, const std::vector<VariableSpec>& streamed = {},
                     std::size_t rows_per_chunk = 0) {
  for (const auto& d : ds.dim_names()) {
    check_name(d, "dimension");
    if (has_coordinate(ds, d)) continue;
    // A netCDF-4 "dimension without variable": an empty dataset that exists to be the scale.
    Id space = simple_space({ds.dim(d)});
    Id dcpl = untimed_plist(H5P_DATASET_CREATE);
    Id scale(H5Dcreate2(file, d.c_str(), H5T_NATIVE_FLOAT, space, H5P_DEFAULT, dcpl, H5P_DEFAULT), H5Dclose,
             "cannot create dimension '" + d + "'");
    char label[96];
    std::snprintf(label, sizeof label, "%s%10zu", kNotAVariable, ds.dim(d));
    check(H5DSset_scale(scale, label), "cannot make dimension '" + d + "' a dimension scale");
  }

  std::vector<Entry> entries;
  for (const auto& v : ds.variables()) entries.push_back({&v, nullptr});
  for (const auto& v : streamed) entries.push_back({nullptr, &v});
  std::vector<std::string> names;
  for (const auto& e : entries) {
    check_name(e.name(), "variable");
    const std::string link = link_name(ds, e.name(), e.dims());
    if (e.whole) write_variable(file, link, *e.whole);
    else create_streamed(file, link, *e.streamed, ds.dim(e.dims()[0]), rows_per_chunk);
    names.push_back(e.name());
  }
  for (const auto& v : ds.variables()) {
    if (!is_coordinate(v)) continue;
    Id var(H5Dopen2(file, v.name().c_str(), H5P_DEFAULT), H5Dclose, "cannot reopen variable '" + v.name() + "'");
    check(H5DSset_scale(var, v.name().c_str()), "cannot make variable '" + v.name() + "' a dimension scale");
  }
  // Scales cannot carry scales of their own: coordinate variables are skipped.
  for (const auto& e : entries) {
    if (is_coordinate(e.name(), e.dims())) continue;
    const std::string owner = "variable '" + e.name() + "'";
    Id var(H5Dopen2(file, link_name(ds, e.name(), e.dims()).c_str(), H5P_DEFAULT), H5Dclose, "cannot reopen " + owner);
    for (unsigned axis = 0; axis < e.dims().size(); ++axis) {
      const std::string& d = e.dims()[axis];
      Id scale(H5Dopen2(file, d.c_str(), H5P_DEFAULT), H5Dclose, "cannot open dimension '" + d + "'");
      check(H5DSattach_scale(var, scale, axis), "cannot attach dimension '" + d + "' to " + owner);
    }
  }
  write_attr(file, "couplet_dims", join(ds.dim_names()));
  write_attr(file, list_attr, join(names));
}

// The name of the dimension scale attached to axis `axis` of `var`.
std::string attached_dim(hid_t var, unsigned axis, const std::string& owner) {
  if (H5DSget_num_scales(var, axis) != 1)
    throw std::runtime_error(owner + " has no single dimension scale on axis " + std::to_string(axis));
  std::string path;
  check(H5DSiterate_scales(
            var, axis, nullptr,
            [](hid_t, unsigned, hid_t scale, void* out) -> herr_t {
              ssize_t len = H5Iget_name(scale, nullptr, 0);
              if (len <= 0) return -1;
              try {
                std::string& s = *static_cast<std::string*>(out);
                s.resize(static_cast<std::size_t>(len) + 1);
                H5Iget_name(scale, s.data(), s.size());
                s.resize(static_cast<std::size_t>(len));
              } catch (...) {
                return -1;
              }
              return 1;  // the first scale is the one
            },
            &path),
        "cannot read the dimension scales of " + owner);
  return path.substr(path.rfind('/') + 1);
}

// The length of dimension `d`, from its dimension scale.
hsize_t dimension_size(hid_t file, const std::string& d) {
  const std::string owner = "dimension '" + d + "'";
  Id scale(H5Dopen2(file, d.c_str(), H5P_DEFAULT), H5Dclose, "cannot open " + owner);
  Id space(H5Dget_space(scale), H5Sclose, "cannot read " + owner);
  hsize_t size = 0;
  if (H5DSis_scale(scale) <= 0 || H5Sget_simple_extent_ndims(space) != 1 ||
      H5Sget_simple_extent_dims(space, &size, nullptr) < 0)
    throw std::runtime_error(owner + " is not a 1-D dimension scale");
  return size;
}

// Reads the dimensions and the variables listed under `list_attr` from the root group into `out`;
// with `rows`, only those rows of dimension `chunk_dim` (which variables may use as their first only).
void read_variables(hid_t file, const char* list_attr, Dataset& out, const std::string& chunk_dim = "",
                    const RowRange* rows = nullptr, const std::set<std::string>* skip = nullptr) {
  for (const auto& d : split(read_attr(file, "couplet_dims", "the root group"))) {
    const std::string owner = "dimension '" + d + "'";
    if (H5Lexists(file, d.c_str(), H5P_DEFAULT) <= 0)
      throw std::runtime_error(owner + " is listed in couplet_dims but has no dimension scale");
    hsize_t size = dimension_size(file, d);
    if (rows && d == chunk_dim) {
      if (rows->begin > size || rows->count > size - rows->begin)
        throw std::runtime_error("the rows are outside " + owner + " of length " + std::to_string(size));
      size = rows->count;
    }
    out.add_dim(d, size);
  }
  if (rows && !out.has_dim(chunk_dim)) throw std::runtime_error("chunk dimension '" + chunk_dim + "' is missing");
  for (const auto& name : split(read_attr(file, list_attr, "the root group"))) {
    if (skip && skip->count(name)) continue;
    const std::string owner = "variable '" + name + "'";
    const std::string renamed = kNonCoordPrefix + name;
    const std::string link = H5Lexists(file, renamed.c_str(), H5P_DEFAULT) > 0 ? renamed : name;
    if (H5Lexists(file, link.c_str(), H5P_DEFAULT) <= 0)
      throw std::runtime_error(owner + " is listed in " + list_attr + " but missing");
    Id var(H5Dopen2(file, link.c_str(), H5P_DEFAULT), H5Dclose, "cannot open " + owner);
    std::vector<std::string> dims;
    if (H5DSis_scale(var) > 0) {
      dims = {name};
    } else {
      Id space(H5Dget_space(var), H5Sclose, "cannot read " + owner);
      const int rank = H5Sget_simple_extent_ndims(space);
      if (rank < 0) fail("cannot read " + owner);
      for (unsigned axis = 0; axis < static_cast<unsigned>(rank); ++axis) dims.push_back(attached_dim(var, axis, owner));
    }
    for (const auto& d : dims)
      if (!out.has_dim(d)) throw std::runtime_error(owner + " uses dimension '" + d + "', which couplet_dims lacks");
    const bool sliced = rows && !dims.empty() && dims[0] == chunk_dim;
    if (rows && !sliced && std::find(dims.begin(), dims.end(), chunk_dim) != dims.end())
      throw std::runtime_error(owner + " uses chunk dimension '" + chunk_dim + "' other than as its first");
    out.add(read_variable(var, name, std::move(dims), sliced ? rows : nullptr));
  }
}

Dataset table_as_dataset(const Table& t) {
  Dataset ds;
  ds.add_dim("row", t.rows());
  for (const auto& c : t.columns()) {
    Attributes attrs;
    if (!c.units.empty()) attrs["units"] = c.units;
    if (!c.doc.empty()) attrs["long_name"] = c.doc;
    std::visit([&](const auto& values) { ds.add(Variable(c.name, {"row"}, {values.size()}, values, attrs)); }, c.data);
  }
  return ds;
}

std::shared_ptr<Table> dataset_as_table(const Dataset& ds) {
  auto t = std::make_shared<Table>();
  for (const auto& v : ds.variables()) {
    if (v.dims() != std::vector<std::string>{"row"})
      throw std::runtime_error("column '" + v.name() + "' is not 1-D over dimension 'row'");
    if (v.dtype() == DType::Float64)
      t->add_column(v.name(), v.values<double>(), v.attr("units"), v.attr("long_name"));
    else if (v.dtype() == DType::String)
      t->add_column(v.name(), v.values<std::string>(), v.attr("units"), v.attr("long_name"));
    else
      throw std::runtime_error("column '" + v.name() + "' is " + to_string(v.dtype()) + ", expected float64 or string");
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------
// Models

void write_model(hid_t file, const Model& m) {
  for (const char* key : {"model_type", "model_config"})
    if (m.attrs.count(key)) throw std::runtime_error(std::string("attribute name '") + key + "' is reserved on a model");
  write_attr(file, "model_type", m.type);
  write_attr(file, "model_config", m.config);
  Id gcpl = untimed_plist(H5P_GROUP_CREATE);
  Id group(H5Gcreate2(file, "arrays", H5P_DEFAULT, gcpl, H5P_DEFAULT), H5Gclose, "cannot create group /arrays");
  for (const auto& [key, v] : m.arrays) {
    check_name(key, "array");
    for (const auto& d : v.dims()) check_name(d, "dimension");
    Id ds = write_variable(group, key, v);
    write_attr(ds, "couplet_dims", join(v.dims()));
    if (v.name() != key) write_attr(ds, "couplet_name", v.name());
  }
}

std::shared_ptr<Model> read_model(hid_t file) {
  auto m = std::make_shared<Model>();
  m->type = read_attr(file, "model_type", "the root group");
  m->config = read_attr(file, "model_config", "the root group");
  if (H5Lexists(file, "arrays", H5P_DEFAULT) <= 0) throw std::runtime_error("group /arrays is missing");
  Id group(H5Gopen2(file, "arrays", H5P_DEFAULT), H5Gclose, "cannot open group /arrays");
  H5G_info_t info;
  check(H5Gget_info(group, &info), "cannot list group /arrays");
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) fail("cannot list group /arrays");
    std::string key(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, key.data(), key.size(), H5P_DEFAULT);
    key.resize(static_cast<std::size_t>(len));
    const std::string owner = "array '" + key + "'";
    Id ds(H5Dopen2(group, key.c_str(), H5P_DEFAULT), H5Dclose, "cannot open " + owner);
    const std::string name = has_attr(ds, "couplet_name") ? read_attr(ds, "couplet_name", owner) : key;
    m->arrays.emplace(key, read_variable(ds, name, split(read_attr(ds, "couplet_dims", owner))));
  }
  m->attrs = read_attrs(file, "the root group");
  m->attrs.erase("model_type");
  m->attrs.erase("model_config");
  return m;
}

// A new HDF5 file with room for the seal (call with an Hdf5Session held).
Id create_hdf5(const fs::path& file) {
  Id fcpl = untimed_plist(H5P_FILE_CREATE);
  check(H5Pset_userblock(fcpl, kUserBlock), "cannot reserve the user block");
  // Creation order is tracked so that h5py and xarray list variables in the order they were written.
  check(H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "cannot track link order");
  return Id(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT), H5Fclose, "cannot create HDF5 file '" + file.string() + "'");
}

// Opens an artifact file read-only and reads its kind (call with an Hdf5Session held).
Id open_artifact(const fs::path& file, std::string& kind) {
  if (H5Fis_hdf5(file.c_str()) <= 0) throw std::runtime_error("not an HDF5 file (expected a couplet artifact)");
  Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose, "cannot open the HDF5 file");
  if (!has_attr(f, "couplet_artifact"))
    throw std::runtime_error(
        "no root attribute 'couplet_artifact' (expected \"dataset\", \"table\" or \"model\"; not written by couplet?)");
  kind = read_attr(f, "couplet_artifact", "the root group");
  return f;
}

void write_hdf5(const Artifact& a, const fs::path& file) {
  Hdf5Session session;
  Id f = create_hdf5(file);
  switch (a.kind()) {
    case ArtifactKind::Dataset:
      write_attr(f, "couplet_artifact", "dataset");
      write_variables(f, static_cast<const Dataset&>(a), "couplet_variables");
      break;
    case ArtifactKind::Table:
      write_attr(f, "couplet_artifact", "table");
      write_variables(f, table_as_dataset(static_cast<const Table&>(a)), "couplet_columns");
      break;
    case ArtifactKind::Model:
      write_attr(f, "couplet_artifact", "model");
      write_model(f, static_cast<const Model&>(a));
      break;
  }
  write_attrs(f, a.attrs, "the artifact");
  check(H5Fflush(f, H5F_SCOPE_LOCAL), "cannot flush '" + file.string() + "'");
  f.close("cannot close '" + file.string() + "'");
}

// ---------------------------------------------------------------------------------------------------
// Text formatting

std::string format_number(double x, const char* format) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, x);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string markdown_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n' || c == '\r') out += ' ';  // a cell is one line
    else out += c;
  }
  return out;
}

// Display width in a terminal: code points, not bytes ("—" is one column).
std::size_t display_width(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

}  // namespace

// -----------------------------------------------------------------------------------------------------

void write_artifact(const Artifact& a, const fs::path& file) {
  replace_atomically(file, "artifact", [&](const fs::path& temp) {
    write_hdf5(a, temp);
    seal(temp);
  });
}

std::shared_ptr<const Artifact> read_artifact(const fs::path& file) {
  try {
    if (!fs::exists(file)) throw std::runtime_error("no such file");
    verify_seal(file);
    Hdf5Session session;
    std::string kind;
    Id f = open_artifact(file, kind);
    if (kind == "dataset") {
      auto ds = std::make_shared<Dataset>();
      read_variables(f, "couplet_variables", *ds);
      ds->attrs = read_attrs(f, "the root group");
      return ds;
    }
    if (kind == "table") {
      Dataset columns;
      read_variables(f, "couplet_columns", columns);
      auto t = dataset_as_table(columns);
      t->attrs = read_attrs(f, "the root group");
      return t;
    }
    if (kind == "model") return read_model(f);
    throw std::runtime_error("root attribute couplet_artifact is '" + kind + "', expected \"dataset\", \"table\" or \"model\"");
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read artifact '" + file.string() + "': " + e.what());
  }
}

Attributes read_global_attributes(const fs::path& file) {
  try {
    if (!fs::exists(file)) throw std::runtime_error("no such file");
    Hdf5Session session;
    std::string kind;
    Id f = open_artifact(file, kind);
    Attributes a = read_attrs(f, "the root group");
    if (kind == "model") a.erase("model_type"), a.erase("model_config");
    return a;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read the attributes of artifact '" + file.string() + "': " + e.what());
  }
}

void verify_artifact(const fs::path& file) {
  try {
    if (!fs::exists(file)) throw std::runtime_error("no such file");
    verify_seal(file);
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read artifact '" + file.string() + "': " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------------
// Streamed Datasets

namespace {

std::string row_range(std::size_t begin, std::size_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

// Checks a layout; returns its header with every dimension declared (what write_variables lays out).
Dataset layout_schema(const ChunkedLayout& l) {
  check_name(l.dim, "chunk dimension");
  if (l.variables.empty()) throw std::runtime_error("the layout declares no streamed variable");
  Dataset schema = l.header;
  schema.add_dim(l.dim, l.length);  // throws when the header's coordinate has another length
  for (const auto& v : l.header.variables()) {
    const int axis = v.axis(l.dim);
    if (axis > 0)
      throw std::runtime_error("header variable '" + v.name() + "' uses chunk dimension '" + l.dim +
                               "' other than as its first");
  }
  std::set<std::string> seen;
  for (const auto& v : l.variables) {
    const std::string owner = "streamed variable '" + v.name + "'";
    check_name(v.name, "variable");
    if (l.header.has(v.name) || !seen.insert(v.name).second)
      throw std::runtime_error(owner + " is declared twice (or also in the header)");
    if (v.dims.empty() || v.dims[0] != l.dim)
      throw std::runtime_error(owner + " must have the chunk dimension '" + l.dim + "' first");
    if (v.dims.size() != v.shape.size() + 1)
      throw std::runtime_error(owner + " has " + std::to_string(v.dims.size()) + " dims but " +
                               std::to_string(v.shape.size()) + " extents (shape holds those after the first)");
    if (is_coordinate(v.name, v.dims)) throw std::runtime_error(owner + " is a coordinate: it belongs in the header");
    if (v.dtype == DType::String) throw std::runtime_error(owner + " holds strings: only float32 and float64 stream");
    for (std::size_t i = 1; i < v.dims.size(); ++i) {
      if (v.dims[i] == l.dim) throw std::runtime_error(owner + " uses the chunk dimension twice");
      check_name(v.dims[i], "dimension");
      try {
        schema.add_dim(v.dims[i], v.shape[i - 1]);
      } catch (const std::exception& e) {
        throw std::runtime_error(owner + ": " + e.what());
      }
    }
  }
  return schema;
}

const void* raw_values(const Variable& v) {
  return v.dtype() == DType::Float32 ? static_cast<const void*>(v.values<float>().data())
                                     : static_cast<const void*>(v.values<double>().data());
}

}  // namespace

// Rows reach HDF5 in "groups" of rows_per_chunk rows (one chunk of every variable), always in order, so
// that the file's bytes do not depend on the order of the blocks. Rows that cannot go yet (a gap before
// them, or an incomplete group) wait in the side file, at their final position per variable.
struct ChunkedDatasetFile::Impl {
  fs::path file, temp, side;
  std::string dim;
  std::size_t length = 0, rows_per_chunk = 1;
  std::vector<VariableSpec> vars;
  std::vector<std::string> links;             // HDF5 link name of each variable
  std::vector<std::size_t> row_bytes;         // bytes of one row of each variable
  std::vector<std::uint64_t> side_offset;     // start of each variable's region in the side file
  std::unique_ptr<Id> h5;                     // the temp file, open until close()
  std::unique_ptr<Fd> side_fd;                // created when the first row has to wait
  std::map<std::size_t, std::size_t> received;  // written blocks [begin, end), merged
  std::size_t committed = 0;                  // rows [0, committed) are in HDF5
  bool closed = false, broken = false;
  std::mutex mu;

  std::size_t group_end() const { return std::min(committed + rows_per_chunk, length); }

  // Checks a block of n rows against the layout and the rows written so far.
  void check_block(std::size_t begin, std::size_t n, const Dataset& rows) const {
    for (std::size_t i = 0; i < vars.size(); ++i) {
      const VariableSpec& spec = vars[i];
      if (!rows.has(spec.name)) throw std::runtime_error("the block lacks streamed variable '" + spec.name + "'");
      const Variable& v = rows.var(spec.name);
      const std::string owner = "variable '" + spec.name + "'";
      if (v.dims() != spec.dims) throw std::runtime_error(owner + " has dimensions (" + join(v.dims()) + "), declared (" + join(spec.dims) + ")");
      if (v.dtype() != spec.dtype)
        throw std::runtime_error(owner + " is " + to_string(v.dtype()) + ", declared " + to_string(spec.dtype));
      if (!std::equal(spec.shape.begin(), spec.shape.end(), v.shape().begin() + 1))
        throw std::runtime_error(owner + " has other extents than declared after the chunk dimension");
      if (v.shape()[0] != n)
        throw std::runtime_error(owner + " has " + std::to_string(v.shape()[0]) + " rows, '" + vars[0].name + "' " + std::to_string(n));
    }
    for (const auto& v : rows.variables())
      if (std::none_of(vars.begin(), vars.end(), [&](const VariableSpec& s) { return s.name == v.name(); }))
        throw std::runtime_error("'" + v.name() + "' is not a streamed variable of this file");
    if (begin > length || n > length - begin)
      throw std::runtime_error("beyond dimension '" + dim + "' of length " + std::to_string(length));
    auto next = received.lower_bound(begin + n);
    if (next != received.begin() && std::prev(next)->second > begin)
      throw std::runtime_error("rows " + row_range(std::max(begin, std::prev(next)->first), std::min(begin + n, std::prev(next)->second)) +
                               " were already written");
  }

  void mark_received(std::size_t begin, std::size_t end) {
    auto it = received.emplace(begin, end).first;
    if (it != received.begin() && std::prev(it)->second == begin) {
      std::prev(it)->second = end;
      it = received.erase(it), --it;
    }
    auto next = std::next(it);
    if (next != received.end() && next->first == it->second) it->second = next->second, received.erase(next);
  }

  // Writes rows [committed, group_end()) of every variable; data(i) points at row `committed` of variable i.
  template <class Data> void put_group(const Data& data) {
    const std::size_t end = group_end();
    Hdf5Session session;
    for (std::size_t i = 0; i < vars.size(); ++i) {
      if (row_bytes[i] == 0) continue;
      const std::string failed = "cannot write variable '" + vars[i].name + "'";
      Id ds(H5Dopen2(*h5, links[i].c_str(), H5P_DEFAULT), H5Dclose, failed);
      Id space(H5Dget_space(ds), H5Sclose, failed);
      std::vector<hsize_t> start(vars[i].dims.size(), 0), count{end - committed};
      count.insert(count.end(), vars[i].shape.begin(), vars[i].shape.end());
      start[0] = committed;
      check(H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr), failed);
      Id memspace = simple_space(count);
      check(H5Dwrite(ds, native_type(vars[i].dtype), memspace, space, H5P_DEFAULT, data(i)), failed);
    }
    committed = end;
  }

  // Puts rows [from, to) of the block starting at `begin` into the side file.
  void wait(const Dataset& rows, std::size_t begin, std::size_t from, std::size_t to) {
    if (!side_fd) side_fd = std::make_unique<Fd>(side, O_RDWR | O_CREAT | O_TRUNC, 0600);
    for (std::size_t i = 0; i < vars.size(); ++i) {
      const char* p = static_cast<const char*>(raw_values(rows.var(vars[i].name))) + (from - begin) * row_bytes[i];
      std::size_t left = (to - from) * row_bytes[i];
      off_t at = static_cast<off_t>(side_offset[i] + from * row_bytes[i]);
      while (left > 0) {
        const ssize_t w = ::pwrite(*side_fd, p, left, at);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) throw std::runtime_error("cannot write '" + side.string() + "': " + std::strerror(errno));
        p += w, at += w, left -= static_cast<std::size_t>(w);
      }
    }
  }

  // Moves every complete group at the front of the side file into HDF5.
  void put_waiting() {
    auto it = received.upper_bound(committed);
    if (it == received.begin()) return;
    const std::size_t ready = std::prev(it)->second;  // rows [committed, ready) are all in the side file
    std::vector<std::vector<char>> buf(vars.size());
    while (committed < length && group_end() <= ready) {
      for (std::size_t i = 0; i < vars.size(); ++i) {
        buf[i].resize((group_end() - committed) * row_bytes[i]);
        std::size_t got = 0;
        while (got < buf[i].size()) {
          const ssize_t r = ::pread(*side_fd, buf[i].data() + got, buf[i].size() - got,
                                    static_cast<off_t>(side_offset[i] + committed * row_bytes[i] + got));
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) throw std::runtime_error("cannot read '" + side.string() + "': " + (r < 0 ? std::strerror(errno) : "truncated"));
          got += static_cast<std::size_t>(r);
        }
      }
      const std::size_t first = committed;
      put_group([&](std::size_t i) { return static_cast<const void*>(buf[i].data()); });
      // Gives the disk space back (best effort): a writer going last to first would otherwise need the
      // whole uncompressed output in the side file.
      for (std::size_t i = 0; i < vars.size(); ++i)
        ::fallocate(*side_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(side_offset[i] + first * row_bytes[i]),
                    static_cast<off_t>((committed - first) * row_bytes[i]));
    }
  }

  std::string missing() const {
    std::vector<std::string> gaps;
    std::size_t at = 0;
    for (auto [b, e] : received) {
      if (b > at) gaps.push_back(row_range(at, b));
      at = e;
    }
    if (at < length) gaps.push_back(row_range(at, length));
    if (gaps.empty()) return "";
    std::string s = "rows " + gaps[0];
    for (std::size_t i = 1; i < std::min<std::size_t>(gaps.size(), 4); ++i) s += ", " + gaps[i];
    if (gaps.size() > 4) s += " and " + std::to_string(gaps.size() - 4) + " more ranges";
    return s + " of dimension '" + dim + "' (length " + std::to_string(length) + ") were never written";
  }

  // Drops the temp files (an unfinished or failed write). Never throws.
  void discard() noexcept {
    try {
      Hdf5Session session;
      h5.reset();
    } catch (...) {
    }
    side_fd.reset();
    std::error_code ignored;
    if (!temp.empty()) fs::remove(temp, ignored);
    if (!side.empty()) fs::remove(side, ignored);
  }
};

ChunkedDatasetFile::ChunkedDatasetFile(const fs::path& file, const ChunkedLayout& layout) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.file = file;
  m.dim = layout.dim;
  m.length = layout.length;
  m.vars = layout.variables;
  try {
    const Dataset schema = layout_schema(layout);
    std::size_t widest = 0;
    std::uint64_t offset = 0;
    for (const auto& v : m.vars) {
      std::size_t bytes = element_bytes(v.dtype);
      for (auto e : v.shape) bytes *= e;
      m.row_bytes.push_back(bytes);
      m.side_offset.push_back(offset);
      offset += static_cast<std::uint64_t>(bytes) * m.length;
      m.links.push_back(link_name(schema, v.name, v.dims));
      widest = std::max(widest, bytes);
    }
    // Whole rows, about kChunkBytes for the widest variable, never more rows than there are.
    m.rows_per_chunk = std::clamp<std::size_t>(widest ? kChunkBytes / widest : m.length, 1, std::max<std::size_t>(m.length, 1));
    m.temp = temp_for(file);
    m.side = m.temp.string() + ".rows";
    Hdf5Session session;
    m.h5 = std::make_unique<Id>(create_hdf5(m.temp));
    write_attr(*m.h5, "couplet_artifact", "dataset");
    write_attr(*m.h5, "couplet_chunk_dim", m.dim);
    std::vector<std::string> streamed_names;
    for (const auto& v : m.vars) streamed_names.push_back(v.name);
    write_attr(*m.h5, "couplet_streamed", join(streamed_names));  // so read_header can leave them out
    write_variables(*m.h5, schema, "couplet_variables", m.vars, m.rows_per_chunk);
    write_attrs(*m.h5, layout.header.attrs, "the artifact");
  } catch (const std::exception& e) {
    m.discard();
    throw std::runtime_error("cannot write artifact '" + file.string() + "': " + e.what());
  }
}

ChunkedDatasetFile::~ChunkedDatasetFile() {
  if (!impl_->closed) impl_->discard();
}

void ChunkedDatasetFile::write_rows(std::size_t begin, const Dataset& rows) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  // The block's length is that of its first streamed variable (check_block checks the others).
  const std::size_t n = rows.has(m.vars[0].name) && !rows.var(m.vars[0].name).shape().empty()
                            ? rows.var(m.vars[0].name).shape()[0] : 0;
  try {
    if (m.closed) throw std::runtime_error("the file is already closed");
    if (m.broken) throw std::runtime_error("an earlier write failed");
    m.check_block(begin, n, rows);
    if (n == 0) return;
    const std::size_t end = begin + n;
    try {
      m.mark_received(begin, end);
      if (begin == m.committed)  // the usual in-order case: whole groups go straight from the block
        while (m.committed < m.length && m.group_end() <= end) {
          const std::size_t skip = m.committed - begin;
          m.put_group([&](std::size_t i) {
            return static_cast<const void*>(static_cast<const char*>(raw_values(rows.var(m.vars[i].name))) + skip * m.row_bytes[i]);
          });
        }
      if (m.committed < end) m.wait(rows, begin, std::max(begin, m.committed), end);
      m.put_waiting();
    } catch (...) {
      m.broken = true;  // HDF5 or the side file may now hold part of the block
      throw;
    }
  } catch (const std::exception& e) {
    const std::string rows_text = n ? "rows " + row_range(begin, begin + n) : "a block at row " + std::to_string(begin);
    throw std::runtime_error("cannot write " + rows_text + " of '" + m.file.string() + "': " + e.what());
  }
}

void ChunkedDatasetFile::close() {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  try {
    if (m.closed) throw std::runtime_error("the file is already closed");
    if (m.broken) throw std::runtime_error("an earlier write failed");
    const std::string missing = m.missing();
    if (!missing.empty()) throw std::runtime_error(missing);
    {
      Hdf5Session session;
      check(H5Fflush(*m.h5, H5F_SCOPE_LOCAL), "cannot flush '" + m.temp.string() + "'");
      m.h5->close("cannot close '" + m.temp.string() + "'");
      m.h5.reset();
    }
    m.side_fd.reset();
    std::error_code ignored;
    fs::remove(m.side, ignored);
    seal(m.temp);
    publish(m.temp, m.file);
    m.closed = true;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot write artifact '" + m.file.string() + "': " + e.what());
  }
}

Chunking chunking(const fs::path& file) {
  try {
    if (!fs::exists(file)) throw std::runtime_error("no such file");
    Hdf5Session session;
    std::string kind;
    Id f = open_artifact(file, kind);
    Chunking c;
    if (kind != "dataset" || !has_attr(f, "couplet_chunk_dim")) return c;
    c.dim = read_attr(f, "couplet_chunk_dim", "the root group");
    c.length = dimension_size(f, c.dim);
    return c;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read artifact '" + file.string() + "': " + e.what());
  }
}

namespace {
// Opens a file written by ChunkedDatasetFile (in an open Hdf5Session) and gives its chunk dimension.
Id open_streamed(const fs::path& file, std::string& dim) {
  if (!fs::exists(file)) throw std::runtime_error("no such file");
  std::string kind;
  Id f = open_artifact(file, kind);
  if (kind != "dataset" || !has_attr(f, "couplet_chunk_dim"))
    throw std::runtime_error("not a streamed Dataset (it was written whole: read it with read_artifact)");
  dim = read_attr(f, "couplet_chunk_dim", "the root group");
  return f;
}
}  // namespace

std::shared_ptr<const Dataset> read_rows(const fs::path& file, std::size_t begin, std::size_t count) {
  try {
    Hdf5Session session;
    std::string dim;
    Id f = open_streamed(file, dim);
    auto ds = std::make_shared<Dataset>();
    const RowRange rows{begin, count};
    read_variables(f, "couplet_variables", *ds, dim, &rows);
    ds->attrs = read_attrs(f, "the root group");
    return ds;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read rows " + row_range(begin, begin + count) + " of artifact '" + file.string() +
                             "': " + e.what());
  }
}

std::shared_ptr<const Dataset> read_header(const fs::path& file) {
  try {
    Hdf5Session session;
    std::string dim;
    Id f = open_streamed(file, dim);
    if (!has_attr(f, "couplet_streamed"))
      throw std::runtime_error("it does not list its streamed variables (written by an older couplet: re-run its producer)");
    const auto names = split(read_attr(f, "couplet_streamed", "the root group"));
    const std::set<std::string> skip(names.begin(), names.end());
    auto ds = std::make_shared<Dataset>();
    read_variables(f, "couplet_variables", *ds, "", nullptr, &skip);
    ds->attrs = read_attrs(f, "the root group");
    return ds;
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot read the header of artifact '" + file.string() + "': " + e.what());
  }
}

void write_table_csv(const Table& t, const fs::path& file) {
  std::string out;
  for (std::size_t c = 0; c < t.columns().size(); ++c)
    out += (c ? "," : "") + csv_field(t.columns()[c].name);
  out += '\n';
  for (std::size_t r = 0; r < t.rows(); ++r) {
    for (std::size_t c = 0; c < t.columns().size(); ++c) {
      const auto& col = t.columns()[c];
      if (c) out += ',';
      if (!col.is_numeric()) {
        out += csv_field(std::get<std::vector<std::string>>(col.data)[r]);
      } else {
        const double x = std::get<std::vector<double>>(col.data)[r];
        if (!std::isnan(x)) out += format_number(x, "%.10g");
      }
    }
    out += '\n';
  }
  write_text(file, "table", out);
}

void write_text_atomic(const fs::path& file, const std::string& text) { write_text(file, "text file", text); }

void write_table_markdown(const Table& t, const fs::path& file) { write_text(file, "table", table_to_markdown(t)); }

std::string table_to_markdown(const Table& t, std::size_t max_rows) {
  const auto& cols = t.columns();
  if (cols.empty()) return "";
  const std::size_t rows = std::min(t.rows(), max_rows);
  // cells[0] is the header row.
  std::vector<std::vector<std::string>> cells(rows + 1, std::vector<std::string>(cols.size()));
  std::vector<std::size_t> width(cols.size(), 3);  // "---" is the shortest separator
  for (std::size_t c = 0; c < cols.size(); ++c) {
    cells[0][c] = markdown_cell(cols[c].name);
    for (std::size_t r = 0; r < rows; ++r) {
      if (cols[c].is_numeric()) {
        const double x = std::get<std::vector<double>>(cols[c].data)[r];
        cells[r + 1][c] = std::isnan(x) ? "—" : format_number(x, "%.4g");
      } else {
        cells[r + 1][c] = markdown_cell(std::get<std::vector<std::string>>(cols[c].data)[r]);
      }
    }
    for (const auto& row : cells) width[c] = std::max(width[c], display_width(row[c]));
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s = "|";
    for (std::size_t c = 0; c < cols.size(); ++c) {
      const std::string pad(width[c] - display_width(row[c]), ' ');
      s += " " + (cols[c].is_numeric() ? pad + row[c] : row[c] + pad) + " |";
    }
    return s + "\n";
  };
  std::string md = line(cells[0]) + "|";
  for (std::size_t c = 0; c < cols.size(); ++c)
    md += cols[c].is_numeric() ? std::string(width[c] + 1, '-') + ":|" : std::string(width[c] + 2, '-') + "|";
  md += "\n";
  for (std::size_t r = 1; r < cells.size(); ++r) md += line(cells[r]);
  return md;
}

}  // namespace couplet::store
