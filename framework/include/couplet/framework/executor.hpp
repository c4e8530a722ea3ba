// couplet framework — runs a resolved workflow: concurrent, cached, atomic, with a run directory.
#pragma once

#include <couplet/framework/plugins.hpp>
#include <couplet/framework/workflow.hpp>

#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace couplet::framework {

struct RunOptions {
  std::filesystem::path runs_dir = "runs";  ///< run directories go to <runs_dir>/<name>/<timestamp>/
  int jobs = 1;                             ///< nodes running at once
  int threads = 1;                          ///< threads each node may use (and LibTorch's intra-op threads)
  bool reuse_cache = true;                  ///< false: execute every node (the cache is still refreshed)
  bool progress_tty = false;                ///< redraw one progress line instead of printing lines
  bool quiet = false;                       ///< only warnings and errors on the console
  std::vector<std::string> command_line;    ///< recorded in provenance
  const std::atomic<bool>* interrupt = nullptr;  ///< set by Ctrl-C: stop starting nodes, cancel running ones
};

enum class NodeStatus { NotRun, Executed, Cached, Failed, Cancelled };
const char* to_string(NodeStatus s);

struct NodeResult {
  std::string id, plugin;
  NodeStatus status = NodeStatus::NotRun;
  std::string cache_key;
  double seconds = 0;
  std::string error;
  std::map<std::string, std::filesystem::path> outputs;  ///< port → artifact file in the run directory
};

struct RunResult {
  std::filesystem::path run_dir;
  bool ok = false;
  bool interrupted = false;
  std::string error;  ///< the first failure, "node 'id' (plugin) failed: ..."
  std::vector<NodeResult> nodes;  ///< in workflow order
  const NodeResult* node(const std::string& id) const;
};

/// Runs `wf`, which must have passed resolve(). Never throws for a node's failure: it is reported in
/// the result (and the run directory's provenance.json and run.log). Throws only when the run directory
/// cannot be created.
RunResult run_workflow(const Workflow& wf, const PluginSet& plugins, const RunOptions& opt);

/// The cache key of every node (workflow order): hash of plugin, versions, parameters (and the
/// fingerprint of every path parameter), node seed, and the keys of its inputs.
std::vector<std::string> cache_keys(const Workflow& wf);

}  // namespace couplet::framework
