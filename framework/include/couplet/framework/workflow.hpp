// couplet framework — workflow files: parsing (toml++), strict validation, resolution of defaults.
#pragma once

#include <couplet/framework/diagnostics.hpp>
#include <couplet/node.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace couplet::framework {

class PluginSet;
struct NodeType;

/// The schema versions this couplet reads (`couplet = 1` in the file).
inline constexpr int kWorkflowSchema = 1;

struct InputRef {
  std::string node;  ///< producing node id
  std::string port;  ///< its output port
  SourcePos pos;
};

struct ParamSetting {
  ParamValue value;
  SourcePos pos;
  bool is_default = false;
};

struct NodeSpec {
  std::string id;
  std::string plugin;
  std::string doc;  ///< what this node is for, in the experiment's words
  SourcePos pos, plugin_pos;
  std::map<std::string, InputRef> inputs;      ///< input port → producer
  std::map<std::string, ParamSetting> params;  ///< as written; after resolve(): complete and typed
  const NodeType* type = nullptr;              ///< set by resolve()
  std::uint64_t seed = 0;                      ///< set by resolve()
};

struct Workflow {
  std::filesystem::path file;
  std::string text;  ///< the file as given
  int schema = 0;
  std::string name;
  std::string description;
  std::uint64_t seed = 0;
  std::vector<std::filesystem::path> plugin_paths;  ///< [plugins] paths, resolved against the file
  std::vector<NodeSpec> nodes;                       ///< in file order

  int index_of(const std::string& id) const;
};

/// Parses and checks the file's shape (keys, types, ids); throws ValidationError listing every problem.
Workflow parse_workflow(const std::filesystem::path& file);
Workflow parse_workflow_text(const std::string& text, const std::string& display_name,
                             const std::filesystem::path& base_dir);

/// Applies `node.param=value` overrides (value in TOML syntax; a bare word is taken as a string).
void apply_overrides(Workflow& wf, const std::vector<std::string>& sets);

/// Checks the workflow against the loaded plugins and fills in defaults: plugins, ports, parameter
/// names, types and bounds, required inputs, port types, cycles. Throws ValidationError listing every
/// problem with its file:line:col and the nearest valid name.
void resolve(Workflow& wf, const PluginSet& plugins);

/// The resolved workflow (every parameter explicit) as TOML text.
std::string resolved_toml(const Workflow& wf);

/// Checks a value against its declaration, converting it to the declared type (int → float, dates
/// normalised, relative paths resolved against base_dir). Returns "" or what is wrong.
std::string check_param_value(const ParamDecl& d, ParamValue& v, const std::filesystem::path& base_dir);

/// Canonical text of a parameter value (stable across runs; used in cache keys and messages).
std::string canonical(const ParamValue& v);

}  // namespace couplet::framework
