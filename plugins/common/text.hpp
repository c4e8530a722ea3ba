// Helpers for the plain-text readers of couplet_plugin_code (io_uscrn, io_ismn, io_statics): splitting a
// line into fields, strict number parsing and errors that point at a file's line; and the one way plugins
// list names in a message (join). Header-only.
#pragma once

#include <couplet/context.hpp>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace couplet::text {

/// "a, b, c": at most `max_listed` items, then ", ..." if there are more.
inline std::string join(const std::vector<std::string>& items, std::size_t max_listed = static_cast<std::size_t>(-1),
                        const char* sep = ", ") {
  std::string s;
  for (std::size_t i = 0; i < items.size() && i < max_listed; ++i) s += (i ? sep : "") + items[i];
  if (items.size() > max_listed) s += std::string(sep) + "...";
  return s;
}

/// NodeError "<source>:<line>: <what>".
[[noreturn]] inline void fail(const std::string& source, std::size_t line, const std::string& what) {
  throw NodeError(source + ":" + std::to_string(line) + ": " + what);
}

/// A field as it appears in an error message: quoted, and cut short if the line is garbage.
inline std::string excerpt(std::string_view field) {
  constexpr std::size_t kMax = 40;
  return "'" + std::string(field.substr(0, kMax)) + (field.size() > kMax ? "...'" : "'");
}

/// The fields of a line separated by runs of white space (none for a blank line).
inline std::vector<std::string_view> split_whitespace(std::string_view line) {
  std::vector<std::string_view> out;
  const char* ws = " \t\r\v\f";
  std::size_t i = line.find_first_not_of(ws);
  while (i != std::string_view::npos) {
    const std::size_t j = line.find_first_of(ws, i);
    out.push_back(line.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    i = line.find_first_not_of(ws, j);
  }
  return out;
}

/// Parses a whole field as a finite number, or returns false.
inline bool to_number(std::string_view s, double& v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(v);
}

}  // namespace couplet::text
