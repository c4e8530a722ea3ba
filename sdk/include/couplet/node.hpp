// couplet SDK — node declarations: ports, parameters, and the run function.
//
// A node type is declared once, in code. That one declaration drives workflow validation, the
// `couplet describe` output, the generated reference docs and the error messages.
#pragma once

#include <couplet/artifact.hpp>

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace couplet {

class Context;

enum class ParamType { Bool, Int, Float, String, Path, FloatList, StringList, Date };

inline const char* to_string(ParamType t) {
  switch (t) {
    case ParamType::Bool: return "bool";
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::String: return "string";
    case ParamType::Path: return "path";
    case ParamType::FloatList: return "float list";
    case ParamType::StringList: return "string list";
    case ParamType::Date: return "date";
  }
  return "?";
}

/// A parameter value as the node sees it. Path values arrive resolved (absolute).
using ParamValue = std::variant<bool, std::int64_t, double, std::string, std::vector<double>,
                                std::vector<std::string>>;

struct ParamDecl {
  std::string name;
  ParamType type = ParamType::Float;
  std::optional<ParamValue> default_value;  ///< none → the workflow must give it
  std::optional<double> min, max;           ///< inclusive numeric bounds (Int, Float, FloatList items)
  std::vector<std::string> choices;         ///< allowed values for String
  std::string units;
  std::string doc;

  // Fluent helpers, so declarations read as one line each.
  ParamDecl& bounds(double lo, double hi) { min = lo; max = hi; return *this; }
  ParamDecl& at_least(double lo) { min = lo; return *this; }
  ParamDecl& one_of(std::vector<std::string> c) { choices = std::move(c); return *this; }
  ParamDecl& in_units(std::string u) { units = std::move(u); return *this; }
  ParamDecl& describe(std::string d) { doc = std::move(d); return *this; }
  bool required() const { return !default_value.has_value(); }
};

// Constructors for parameter declarations.
inline ParamDecl param_bool(std::string name, bool def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::Bool; p.default_value = def; p.doc = std::move(doc);
  return p;
}
inline ParamDecl param_int(std::string name, std::optional<std::int64_t> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::Int; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
inline ParamDecl param_float(std::string name, std::optional<double> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::Float; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
inline ParamDecl param_string(std::string name, std::optional<std::string> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::String; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
/// A file or directory; relative values are resolved against the workflow file's directory, and
/// the cache key includes the size and modification time of what it names.
inline ParamDecl param_path(std::string name, std::optional<std::string> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::Path; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
/// A calendar day, "YYYY-MM-DD" (a TOML date is accepted too), checked when the workflow is validated;
/// read it as a std::string. An empty default means "not set".
inline ParamDecl param_date(std::string name, std::optional<std::string> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::Date; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
inline ParamDecl param_floats(std::string name, std::optional<std::vector<double>> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::FloatList; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}
inline ParamDecl param_strings(std::string name, std::optional<std::vector<std::string>> def, std::string doc) {
  ParamDecl p; p.name = std::move(name); p.type = ParamType::StringList; p.doc = std::move(doc);
  if (def) p.default_value = *def;
  return p;
}

struct PortDecl {
  std::string name;
  ArtifactKind kind = ArtifactKind::Dataset;
  bool required = true;
  std::string doc;
};

using RunFunction = std::function<void(Context&)>;

/// Rehydrates behaviour for a Model artifact of a given type (registered by the plugin that makes it).
struct ModelFactory {
  std::string type;
  std::function<std::shared_ptr<Predictor>(const Model&)> predictor;  ///< may be empty
  std::function<std::shared_ptr<Surrogate>(const Model&)> surrogate;  ///< may be empty
  /// A physics loss term for learning plugins: really a couplet::LossTerm (torch_bridge.hpp), type-erased
  /// so that this header stays free of torch; register it with loss_term_type<T>(). May be empty.
  std::function<std::shared_ptr<void>(const Model&)> loss_term;
};

struct NodeDecl {
  std::string name;     ///< "library.what", e.g. "tem_wbm.simulate"
  std::string version;  ///< bump when outputs change for the same inputs: it invalidates caches
  std::string summary;  ///< one line
  std::string doc;      ///< longer description (Markdown)
  std::vector<PortDecl> inputs;
  std::vector<PortDecl> outputs;
  std::vector<ParamDecl> params;
  RunFunction run;

  const ParamDecl* find_param(const std::string& n) const {
    for (auto& p : params) if (p.name == n) return &p;
    return nullptr;
  }
  const PortDecl* find_input(const std::string& n) const {
    for (auto& p : inputs) if (p.name == n) return &p;
    return nullptr;
  }
  const PortDecl* find_output(const std::string& n) const {
    for (auto& p : outputs) if (p.name == n) return &p;
    return nullptr;
  }
};

/// Builder returned by Registry::node(); each call adds to the declaration.
class NodeBuilder {
 public:
  explicit NodeBuilder(NodeDecl& d) : d_(d) {}
  NodeBuilder& version(std::string v) { d_.version = std::move(v); return *this; }
  NodeBuilder& summary(std::string s) { d_.summary = std::move(s); return *this; }
  NodeBuilder& doc(std::string s) { d_.doc = std::move(s); return *this; }
  NodeBuilder& input(std::string name, ArtifactKind k, std::string doc) {
    d_.inputs.push_back({std::move(name), k, true, std::move(doc)}); return *this;
  }
  NodeBuilder& optional_input(std::string name, ArtifactKind k, std::string doc) {
    d_.inputs.push_back({std::move(name), k, false, std::move(doc)}); return *this;
  }
  NodeBuilder& output(std::string name, ArtifactKind k, std::string doc) {
    d_.outputs.push_back({std::move(name), k, true, std::move(doc)}); return *this;
  }
  NodeBuilder& param(ParamDecl p) { d_.params.push_back(std::move(p)); return *this; }
  NodeBuilder& run(RunFunction f) { d_.run = std::move(f); return *this; }

 private:
  NodeDecl& d_;
};

/// What a plugin fills at load time.
class Registry {
 public:
  NodeBuilder node(std::string name) {
    nodes_.push_back(NodeDecl{});
    nodes_.back().name = std::move(name);
    nodes_.back().version = "1";
    return NodeBuilder(nodes_.back());
  }
  void model_type(ModelFactory f) { factories_.push_back(std::move(f)); }
  /// Called with the intra-op thread count the executor chose (e.g. to set LibTorch's).
  void on_threads(std::function<void(int)> f) { thread_hook_ = std::move(f); }

  // Framework side.
  std::deque<NodeDecl>& nodes() { return nodes_; }
  std::vector<ModelFactory>& factories() { return factories_; }
  const std::function<void(int)>& thread_hook() const { return thread_hook_; }

 private:
  std::deque<NodeDecl> nodes_;  // deque: builders keep references while later nodes are added
  std::vector<ModelFactory> factories_;
  std::function<void(int)> thread_hook_;
};

}  // namespace couplet
