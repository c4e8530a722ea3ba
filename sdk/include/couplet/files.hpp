// couplet SDK — choosing input files by name: a folder and a list of file names or globs, as reader
// nodes take them in their `dir` and `files` parameters. Header-only.
#pragma once

#include <couplet/context.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>
#include <vector>

namespace couplet::files {

/// Whether `name` matches the glob `pattern` (`*` any run of characters, `?` one character; no
/// character classes).
inline bool glob_match(const std::string& pattern, const std::string& name) {
  // Iterative matcher with one backtrack point for the last '*'.
  std::size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

/// The files in `dir` (and its sub-folders when `recursive`) whose names match one of `patterns` (file
/// names or globs on file names), sorted by path, each once. NodeError naming parameter 'dir' when `dir`
/// is not a directory or cannot be listed, and naming `param` when it is empty, a pattern is empty or
/// holds a '/', or a pattern matches nothing.
inline std::vector<std::filesystem::path> list_files(const std::filesystem::path& dir,
                                                     const std::vector<std::string>& patterns, bool recursive,
                                                     const std::string& param = "files") {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw NodeError("parameter 'dir': '" + dir.string() + "' is not a directory");
  if (patterns.empty()) throw NodeError("parameter '" + param + "' is empty: name at least one file or pattern");
  for (const auto& pattern : patterns)
    if (pattern.empty() || pattern.find('/') != std::string::npos)
      throw NodeError("parameter '" + param + "': '" + pattern + "' is not a file name or pattern (no '/')");
  std::vector<fs::path> all;
  auto consider = [&](const fs::directory_entry& e) {
    if (e.is_regular_file(ec)) all.push_back(e.path());
  };
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      consider(*it);
  } else {
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) consider(*it);
  }
  if (ec) throw NodeError("parameter 'dir': cannot list '" + dir.string() + "': " + ec.message());
  std::sort(all.begin(), all.end());
  std::set<fs::path> chosen;
  for (const auto& pattern : patterns) {
    std::size_t matched = 0;
    for (const auto& p : all)
      if (glob_match(pattern, p.filename().string())) chosen.insert(p), ++matched;
    if (!matched)
      throw NodeError("parameter '" + param + "': '" + pattern + "' matches no file in '" + dir.string() + "'" +
                      (recursive ? " or its sub-folders" : ""));
  }
  return {chosen.begin(), chosen.end()};
}

}  // namespace couplet::files
