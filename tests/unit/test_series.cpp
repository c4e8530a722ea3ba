// The SDK's (site, time) helpers: slicing site blocks out of a Dataset held whole.
#include <couplet/series.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace couplet;

TEST_CASE("series::slice_rows cuts a block of sites at any axis and keeps the rest whole") {
  Dataset ds;
  ds.attrs["title"] = "t";
  ds.add(series::site_coord({"a", "b", "c", "d"}));
  ds.add(series::time_coord({0, 1, 2}));
  std::vector<double> st(12), ts(12);
  for (std::size_t s = 0; s < 4; ++s)
      for (std::size_t t = 0; t < 3; ++t) st[s * 3 + t] = ts[t * 4 + s] = 10.0 * static_cast<double>(s) + static_cast<double>(t);
  ds.add(Variable("x", {"site", "time"}, {4, 3}, st, {{"units", "mm"}}));
  ds.add(Variable("y", {"time", "site"}, {3, 4}, std::vector<float>(ts.begin(), ts.end())));
  ds.add(Variable("k", {"time"}, {3}, std::vector<double>{5, 6, 7}));

  const Dataset b = series::slice_rows(ds, "site", 1, 2);
  CHECK(b.dim("site") == 2);
  CHECK(b.var("site").values<std::string>() == std::vector<std::string>{"b", "c"});
  CHECK(b.var("x").values<double>() == std::vector<double>{10, 11, 12, 20, 21, 22});
  CHECK(b.var("x").attr("units") == "mm");
  // (time, site): the site axis second, cut the same way
  CHECK(b.var("y").values<float>() == std::vector<float>{10, 20, 11, 21, 12, 22});
  CHECK(b.var("k").values<double>() == std::vector<double>{5, 6, 7});
  CHECK(b.attrs.at("title") == "t");
  CHECK(series::read_site_series(b, "y").row(1)[2] == 22);
  CHECK(series::slice_rows(ds, "site", 4, 0).dim("site") == 0);
  CHECK_THROWS_AS(series::slice_rows(ds, "site", 3, 2), std::out_of_range);
}
