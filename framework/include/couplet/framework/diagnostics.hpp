// couplet framework — user-facing errors with a source position.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace couplet::framework {

/// Where something came from: a workflow file position, or a command-line override.
struct SourcePos {
  std::string file;  ///< file path, or "--set" for a command-line override
  int line = 0;
  int column = 0;
  std::string str() const;
};

struct Diagnostic {
  SourcePos pos;
  std::string message;
  std::string str() const;  ///< "file:line:col: error: message"
};

/// A workflow that must not run; carries every problem found, not only the first.
class ValidationError : public std::runtime_error {
 public:
  explicit ValidationError(std::vector<Diagnostic> d);
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }

 private:
  std::vector<Diagnostic> diags_;
};

/// A plugin library that was refused (message names the file and what mismatched).
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Edit distance counting a swap of neighbours as one edit; used to suggest the nearest valid name.
std::size_t edit_distance(const std::string& a, const std::string& b);
/// "; did you mean 'x'?" when a candidate is close enough, else "" (or a short list of valid names).
std::string suggest(const std::string& wrong, const std::vector<std::string>& candidates);

}  // namespace couplet::framework
