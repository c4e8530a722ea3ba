// couplet framework — finding, checking and loading plugin libraries (Boost.DLL).
#pragma once

#include <couplet/plugin.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace couplet::framework {

/// One loaded library. Destroy everything the library created before it (see keep_alive()).
struct LoadedPlugin;

struct NodeType {
  const NodeDecl* decl = nullptr;
  std::shared_ptr<LoadedPlugin> plugin;
  const std::string& plugin_name() const;
  const std::string& plugin_version() const;
  const std::filesystem::path& file() const;
};

struct LibraryInfo {
  std::filesystem::path file;
  std::string name, version, framework_version, torch_version, compiler;
  std::vector<std::string> nodes;
};

struct RefusedPlugin {
  std::filesystem::path file;
  std::string reason;
};

class PluginSet {
 public:
  PluginSet();
  ~PluginSet();
  PluginSet(PluginSet&&) noexcept;
  PluginSet& operator=(PluginSet&&) noexcept;

  /// Loads one library; throws PluginError naming the file and what mismatched.
  void load_file(const std::filesystem::path& file);
  /// Loads every libcouplet_*.so in the directory (sorted by name). A library whose file name was
  /// already loaded from an earlier directory is skipped (earlier search paths win). A refused library
  /// is recorded in refused() and skipped; a duplicate node name is always an error (throws).
  void load_directory(const std::filesystem::path& dir);
  /// Loads the directories in order (missing directories are skipped).
  void load_search_path(const std::vector<std::filesystem::path>& dirs);

  const NodeType* find(const std::string& node_name) const;
  std::vector<std::string> node_names() const;
  const std::vector<RefusedPlugin>& refused() const { return refused_; }
  std::vector<LibraryInfo> library_info() const;

  /// Behaviour for a Model artifact, from the plugin that registered its type (nullptr if none).
  std::shared_ptr<Predictor> predictor(const Model& m) const;
  std::shared_ptr<Surrogate> surrogate(const Model& m) const;
  std::shared_ptr<void> loss_term(const Model& m) const;  ///< a couplet::LossTerm (torch_bridge.hpp)

  /// Tells every library's thread hook (e.g. LibTorch's intra-op threads) the chosen count.
  void configure_threads(int threads) const;

 private:
  std::vector<std::shared_ptr<LoadedPlugin>> libs_;
  std::map<std::string, NodeType> nodes_;
  std::vector<RefusedPlugin> refused_;
  std::vector<std::string> loaded_names_;  // file names, for shadowing
};

/// Wraps an object created by a plugin so that the plugin's library outlives it.
std::shared_ptr<const Artifact> keep_alive(std::shared_ptr<const Artifact> a, std::shared_ptr<LoadedPlugin> p);

/// The default search path: --plugin-path entries, COUPLET_PLUGIN_PATH, workflow [plugins] paths,
/// then the build's plugin directory and <exe>/../lib/couplet/plugins.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::filesystem::path>& cli_paths,
                                                      const std::vector<std::filesystem::path>& workflow_paths);

/// Library file names that are plugins: libcouplet_<name>.so
bool is_plugin_file_name(const std::string& filename);

}  // namespace couplet::framework
