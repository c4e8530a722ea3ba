// Shared helpers for the framework tests.
#pragma once

#include <couplet/context.hpp>
#include <couplet/framework/plugins.hpp>

#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace testutil {

namespace fs = std::filesystem;

/// A fresh directory under the system temp dir, removed when the object dies.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path = fs::temp_directory_path() /
           ("couplet-test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

struct Output {
  int code = -1;
  std::string text;  // stdout and stderr together
};

/// Runs a shell command, capturing its output and exit code.
inline Output run(const std::string& cmd) {
  Output o;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return o;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) o.text.append(buf.data(), n);
  int status = ::pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

/// The message of the couplet::NodeError that `f` throws ("" if it throws none).
template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const couplet::NodeError& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

inline std::string cli() { return COUPLET_CLI; }
inline std::string good_plugins() { return std::string(COUPLET_TEST_PLUGIN_DIR) + "/good"; }
inline std::string broken_plugin(const std::string& name) {
  return std::string(COUPLET_TEST_PLUGIN_DIR) + "/broken/" + name;
}

/// The testing plugin alone (the framework's default directory is not searched here).
inline couplet::framework::PluginSet testing_plugins() {
  couplet::framework::PluginSet ps;
  ps.load_directory(good_plugins());
  return ps;
}

inline nlohmann::json provenance(const fs::path& run_dir) {
  return nlohmann::json::parse(read_file(run_dir / "provenance.json"));
}

/// Status ("executed", "cached", ...) of each node, from provenance.json.
inline std::map<std::string, std::string> statuses(const fs::path& run_dir) {
  std::map<std::string, std::string> m;
  const nlohmann::json prov = provenance(run_dir);  // named: a temporary would die before the loop body
  for (auto& n : prov["nodes"]) m[n["id"].get<std::string>()] = n["status"].get<std::string>();
  return m;
}

}  // namespace testutil
