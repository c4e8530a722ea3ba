#include <couplet/framework/diagnostics.hpp>

#include <algorithm>

namespace couplet::framework {

std::string SourcePos::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string Diagnostic::str() const { return pos.str() + ": error: " + message; }

static std::string join(const std::vector<Diagnostic>& d) {
  std::string s;
  for (auto& x : d) s += (s.empty() ? "" : "\n") + x.str();
  return s;
}

ValidationError::ValidationError(std::vector<Diagnostic> d) : std::runtime_error(join(d)), diags_(std::move(d)) {}

std::size_t edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: Levenshtein plus adjacent transpositions, the commonest typo.
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

std::string suggest(const std::string& wrong, const std::vector<std::string>& candidates) {
  if (candidates.empty()) return "";
  std::size_t best = std::string::npos;
  std::string name;
  for (auto& c : candidates) {
    std::size_t d = edit_distance(wrong, c);
    if (d < best) best = d, name = c;
  }
  // Close enough to be a typo: at most a third of the longer name differs.
  if (best * 3 <= std::max(wrong.size(), name.size())) return "; did you mean '" + name + "'?";
  std::string list;
  for (std::size_t i = 0; i < candidates.size() && i < 12; ++i) list += (i ? ", " : "") + candidates[i];
  if (candidates.size() > 12) list += ", ...";
  return " (valid: " + list + ")";
}

}  // namespace couplet::framework
