// couplet SDK — calendar helpers. Time coordinates are days since 1970-01-01 (proleptic Gregorian),
// stored with units "days since 1970-01-01" so that xarray decodes them.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace couplet {

inline constexpr const char* kTimeUnits = "days since 1970-01-01";

struct CivilDate {
  int year, month, day;
};

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
constexpr std::int64_t days_from_civil(int y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

constexpr CivilDate civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return CivilDate{static_cast<int>(y + (m <= 2)), static_cast<int>(m), static_cast<int>(d)};
}

constexpr bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/// Day of year, 1-based.
constexpr int day_of_year(std::int64_t days) {
  const CivilDate c = civil_from_days(days);
  return static_cast<int>(days - days_from_civil(c.year, 1, 1)) + 1;
}

/// Parses "YYYY-MM-DD" or "YYYYMMDD"; throws std::invalid_argument naming the text otherwise.
inline std::int64_t parse_date(const std::string& s) {
  int y = 0, m = 0, d = 0;
  char tail = 0;
  bool ok = false;
  if (s.size() == 10 && s[4] == '-' && s[7] == '-')
    ok = std::sscanf(s.c_str(), "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3;
  else if (s.size() == 8)
    ok = std::sscanf(s.c_str(), "%4d%2d%2d%c", &y, &m, &d, &tail) == 3;
  static constexpr int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (ok) ok = m >= 1 && m <= 12 && d >= 1 && d <= mdays[m - 1] + (m == 2 && is_leap(y) ? 1 : 0);
  if (!ok) throw std::invalid_argument("'" + s + "' is not a date of the form YYYY-MM-DD");
  return days_from_civil(y, m, d);
}

inline std::string format_date(std::int64_t days) {
  const CivilDate c = civil_from_days(days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", c.year, c.month, c.day);
  return buf;
}

}  // namespace couplet
