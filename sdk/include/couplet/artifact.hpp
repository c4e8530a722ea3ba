// couplet SDK — artifacts: the values that travel along workflow edges.
//
// Artifacts are plain data (no behaviour), immutable once a node has produced them, and serialisable to
// HDF5 by the framework. Behaviour for a Model (prediction, surrogate calls) comes from the plugin that
// registered its model type (see node.hpp, ModelFactory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

// Types that cross the plugin boundary keep default visibility, so that dynamic_cast and exception
// matching work between libraries built with -fvisibility=hidden.
#define COUPLET_API __attribute__((visibility("default")))

namespace couplet {

enum class ArtifactKind { Dataset, Table, Model };

inline const char* to_string(ArtifactKind k) {
  switch (k) {
    case ArtifactKind::Dataset: return "Dataset";
    case ArtifactKind::Table: return "Table";
    case ArtifactKind::Model: return "Model";
  }
  return "?";
}

/// Free-form string attributes (CF-style: "units", "long_name", provenance notes).
using Attributes = std::map<std::string, std::string>;

class COUPLET_API Artifact {
 public:
  virtual ~Artifact() = default;
  virtual ArtifactKind kind() const = 0;
  Attributes attrs;  ///< global attributes
};

enum class DType { Float32, Float64, String };

inline const char* to_string(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::String: return "string";
  }
  return "?";
}

/// One named n-dimensional array over named dimensions, row-major, NaN = missing.
class COUPLET_API Variable {
 public:
  Variable() = default;
  Variable(std::string name, std::vector<std::string> dims, std::vector<std::size_t> shape,
           std::vector<double> values, Attributes attrs = {})
      : name_(std::move(name)), dims_(std::move(dims)), shape_(std::move(shape)),
        data_(std::move(values)), attrs_(std::move(attrs)) { check(); }
  Variable(std::string name, std::vector<std::string> dims, std::vector<std::size_t> shape,
           std::vector<float> values, Attributes attrs = {})
      : name_(std::move(name)), dims_(std::move(dims)), shape_(std::move(shape)),
        data_(std::move(values)), attrs_(std::move(attrs)) { check(); }
  Variable(std::string name, std::vector<std::string> dims, std::vector<std::size_t> shape,
           std::vector<std::string> values, Attributes attrs = {})
      : name_(std::move(name)), dims_(std::move(dims)), shape_(std::move(shape)),
        data_(std::move(values)), attrs_(std::move(attrs)) { check(); }

  const std::string& name() const { return name_; }
  const std::vector<std::string>& dims() const { return dims_; }
  const std::vector<std::size_t>& shape() const { return shape_; }
  const Attributes& attrs() const { return attrs_; }
  Attributes& attrs() { return attrs_; }
  std::string attr(const std::string& key, const std::string& fallback = "") const {
    auto it = attrs_.find(key);
    return it == attrs_.end() ? fallback : it->second;
  }
  std::size_t size() const {
    std::size_t n = 1;
    for (auto s : shape_) n *= s;
    return n;
  }
  DType dtype() const {
    if (std::holds_alternative<std::vector<float>>(data_)) return DType::Float32;
    if (std::holds_alternative<std::vector<double>>(data_)) return DType::Float64;
    return DType::String;
  }
  /// Typed access; throws if the stored type differs (no silent conversion).
  template <class T> const std::vector<T>& values() const {
    if (auto* p = std::get_if<std::vector<T>>(&data_)) return *p;
    throw std::runtime_error("variable '" + name_ + "' is " + to_string(dtype()) +
                             ", not the requested type");
  }
  template <class T> std::vector<T>& values() {
    if (auto* p = std::get_if<std::vector<T>>(&data_)) return *p;
    throw std::runtime_error("variable '" + name_ + "' is " + to_string(dtype()) +
                             ", not the requested type");
  }
  /// Numeric values as double whatever the storage (a copy for float32).
  std::vector<double> as_double() const {
    if (auto* p = std::get_if<std::vector<double>>(&data_)) return *p;
    if (auto* p = std::get_if<std::vector<float>>(&data_)) return {p->begin(), p->end()};
    throw std::runtime_error("variable '" + name_ + "' holds strings, not numbers");
  }
  /// Index of a dimension in this variable, or -1.
  int axis(const std::string& dim) const {
    for (std::size_t i = 0; i < dims_.size(); ++i)
      if (dims_[i] == dim) return static_cast<int>(i);
    return -1;
  }

 private:
  void check() const {
    if (dims_.size() != shape_.size())
      throw std::invalid_argument("variable '" + name_ + "': " + std::to_string(dims_.size()) +
                                  " dims but " + std::to_string(shape_.size()) + " extents");
    std::size_t n = std::visit([](const auto& v) { return v.size(); }, data_);
    if (n != size())
      throw std::invalid_argument("variable '" + name_ + "': shape holds " + std::to_string(size()) +
                                  " values, data has " + std::to_string(n));
  }
  std::string name_;
  std::vector<std::string> dims_;
  std::vector<std::size_t> shape_;
  std::variant<std::vector<double>, std::vector<float>, std::vector<std::string>> data_;
  Attributes attrs_;
};

/// Named variables over named dimensions (xarray's model). A coordinate is a variable whose single
/// dimension has its name (e.g. `time(time)` in days since 1970-01-01, `site(site)` as strings).
class COUPLET_API Dataset final : public Artifact {
 public:
  ArtifactKind kind() const override { return ArtifactKind::Dataset; }

  /// Declares a dimension (idempotent for the same size; a different size is an error).
  void add_dim(const std::string& name, std::size_t size) {
    auto [it, fresh] = dims_.emplace(name, size);
    if (!fresh && it->second != size)
      throw std::invalid_argument("dimension '" + name + "' already has size " +
                                  std::to_string(it->second) + ", not " + std::to_string(size));
    if (fresh) dim_order_.push_back(name);
  }
  /// Adds (or replaces) a variable; its dimensions are declared, checked against existing sizes.
  Variable& add(Variable v) {
    for (std::size_t i = 0; i < v.dims().size(); ++i) add_dim(v.dims()[i], v.shape()[i]);
    auto it = index_.find(v.name());
    if (it != index_.end()) {
      vars_[it->second] = std::move(v);
      return vars_[it->second];
    }
    index_[v.name()] = vars_.size();
    vars_.push_back(std::move(v));
    return vars_.back();
  }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const Variable& var(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw std::out_of_range("dataset has no variable '" + name + "'" + listing());
    return vars_[it->second];
  }
  const std::vector<Variable>& variables() const { return vars_; }
  bool has_dim(const std::string& name) const { return dims_.count(name) != 0; }
  std::size_t dim(const std::string& name) const {
    auto it = dims_.find(name);
    if (it == dims_.end()) throw std::out_of_range("dataset has no dimension '" + name + "'");
    return it->second;
  }
  /// Dimensions in declaration order.
  const std::vector<std::string>& dim_names() const { return dim_order_; }

 private:
  std::string listing() const {
    std::string s = " (has:";
    for (auto& v : vars_) s += " " + v.name();
    return s + ")";
  }
  std::map<std::string, std::size_t> dims_;
  std::vector<std::string> dim_order_;
  std::vector<Variable> vars_;
  std::map<std::string, std::size_t> index_;
};

/// One variable of a streamed Dataset output (see ChunkedLayout): declared up front, written later in
/// row blocks. `dims[0]` is the chunk dimension; `shape` holds the extents of the other dimensions.
struct VariableSpec {
  std::string name;
  std::vector<std::string> dims;
  std::vector<std::size_t> shape;
  DType dtype = DType::Float64;  ///< Float32 or Float64
  Attributes attrs;
};

/// The layout of a Dataset written in chunks along its first dimension `dim` (rows 0..length-1).
/// `header` holds what is small and written whole (coordinates such as site(site), time(time); global
/// attributes in header.attrs); `variables` are the streamed ones. A header variable may use `dim`, but
/// only as its first dimension (it is then sliced like the streamed ones when rows are read).
struct ChunkedLayout {
  std::string dim;
  std::size_t length = 0;
  Dataset header;
  std::vector<VariableSpec> variables;
};

/// How a stored Dataset is streamed: its chunk dimension and its length; `dim` is empty for a Dataset
/// that was written whole.
struct Chunking {
  std::string dim;
  std::size_t length = 0;
  bool streamed() const { return !dim.empty(); }
};

/// Rows × named columns; a column holds numbers or strings. Metrics, cluster summaries, parameter sets.
class COUPLET_API Table final : public Artifact {
 public:
  struct Column {
    std::string name;
    std::variant<std::vector<double>, std::vector<std::string>> data;
    std::string units;
    std::string doc;
    bool is_numeric() const { return std::holds_alternative<std::vector<double>>(data); }
    std::size_t size() const {
      return std::visit([](const auto& v) { return v.size(); }, data);
    }
  };
  ArtifactKind kind() const override { return ArtifactKind::Table; }

  void add_column(std::string name, std::vector<double> values, std::string units = "", std::string doc = "") {
    push(Column{std::move(name), std::move(values), std::move(units), std::move(doc)});
  }
  void add_column(std::string name, std::vector<std::string> values, std::string units = "", std::string doc = "") {
    push(Column{std::move(name), std::move(values), std::move(units), std::move(doc)});
  }
  std::size_t rows() const { return cols_.empty() ? 0 : cols_.front().size(); }
  const std::vector<Column>& columns() const { return cols_; }
  bool has(const std::string& name) const {
    for (auto& c : cols_) if (c.name == name) return true;
    return false;
  }
  const Column& column(const std::string& name) const {
    for (auto& c : cols_) if (c.name == name) return c;
    throw std::out_of_range("table has no column '" + name + "'");
  }
  const std::vector<double>& numbers(const std::string& name) const {
    auto& c = column(name);
    if (!c.is_numeric()) throw std::runtime_error("table column '" + name + "' holds strings");
    return std::get<std::vector<double>>(c.data);
  }
  const std::vector<std::string>& strings(const std::string& name) const {
    auto& c = column(name);
    if (c.is_numeric()) throw std::runtime_error("table column '" + name + "' holds numbers");
    return std::get<std::vector<std::string>>(c.data);
  }

 private:
  void push(Column c) {
    if (!cols_.empty() && c.size() != rows())
      throw std::invalid_argument("table column '" + c.name + "' has " + std::to_string(c.size()) +
                                  " rows, table has " + std::to_string(rows()));
    if (has(c.name)) throw std::invalid_argument("table already has a column '" + c.name + "'");
    cols_.push_back(std::move(c));
  }
  std::vector<Column> cols_;
};

/// Something trained or calibrated: a type tag naming the plugin model type that can rehydrate it,
/// a configuration (architecture, hyper-parameters; any text format the type chooses, JSON suggested),
/// named arrays (weights, normalisation statistics, parameter values). Plain data so it can be cached.
class COUPLET_API Model final : public Artifact {
 public:
  ArtifactKind kind() const override { return ArtifactKind::Model; }
  std::string type;     ///< e.g. "baseline.climatology", "learn.lstm"
  std::string config;   ///< serialised configuration
  std::map<std::string, Variable> arrays;

  const Variable& array(const std::string& name) const {
    auto it = arrays.find(name);
    if (it == arrays.end()) throw std::out_of_range("model '" + type + "' has no array '" + name + "'");
    return it->second;
  }
};

/// Applies a trained model: Dataset in, Dataset out.
class COUPLET_API Predictor {
 public:
  virtual ~Predictor() = default;
  virtual std::shared_ptr<const Dataset> predict(const Dataset& inputs) const = 0;
};

/// What an embedded slot calls: a batch of feature vectors in, a batch of outputs out (row-major).
class COUPLET_API Surrogate {
 public:
  virtual ~Surrogate() = default;
  virtual std::size_t n_features() const = 0;
  virtual std::size_t n_outputs() const = 0;
  /// `features` holds n × n_features() values; returns n × n_outputs().
  virtual std::vector<double> evaluate(const std::vector<double>& features, std::size_t n) const = 0;
  /// The features' and outputs' names in order, where the surrogate knows them (empty: unnamed). A consumer
  /// compares them with its own, so a surrogate trained for something else is refused by name, not only by count.
  virtual std::vector<std::string> feature_names() const { return {}; }
  virtual std::vector<std::string> output_names() const { return {}; }
};

}  // namespace couplet
