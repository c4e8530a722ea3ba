// couplet/files.hpp: glob matching and the choice of input files from a folder and patterns, as the
// readers io.era5, io.smap (one folder) and io.ismn (sub-folders too) use it.
#include "common.hpp"

#include <couplet/files.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

using couplet::files::glob_match;
using couplet::files::list_files;
using testutil::contains;
using testutil::error_of;
namespace fs = std::filesystem;

TEST_CASE("files: glob_match") {
  CHECK(glob_match("*.nc", "a.nc"));
  CHECK(glob_match("W*_2020-01-?4.nc", "Western-Australia_2020-01-14.nc"));
  CHECK_FALSE(glob_match("*.nc", "a.nc4"));
  CHECK(glob_match("a*b*c", "aXbYbc"));  // backtracks past the first 'b'
  CHECK_FALSE(glob_match("?", ""));
  CHECK(glob_match("*", ""));
}

TEST_CASE("files: list_files in one folder and with its sub-folders, errors name the parameter") {
  testutil::TempDir tmp("files");
  const fs::path dir = tmp.path;
  for (const char* name : {"timed_2020-01-01.nc", "pts_2020-01-01.nc", "square_2020-01-01.nc", "text.nc"})
    testutil::write_file(dir / name, "x");
  testutil::write_file(dir / "sub" / "deep_2020-01-01.nc", "x");
  fs::create_directory(dir / "folder_2020-01-01.nc");  // a directory is never chosen

  CHECK(contains(error_of([&] { list_files(dir, {"*.grib"}, false); }), "parameter 'files': '*.grib' matches no file in"));
  CHECK(contains(error_of([&] { list_files(dir / "text.nc", {"*.nc"}, false); }), "is not a directory"));
  // each file once, sorted
  const auto flat = list_files(dir, {"pts_*.nc", "*_2020-01-01.nc"}, false);
  CHECK(flat.size() == 3);
  CHECK(flat == std::vector<fs::path>{dir / "pts_2020-01-01.nc", dir / "square_2020-01-01.nc", dir / "timed_2020-01-01.nc"});

  const auto deep = list_files(dir, {"*_2020-01-01.nc"}, true);
  REQUIRE(deep.size() == 4);
  CHECK(deep[2] == dir / "sub" / "deep_2020-01-01.nc");
  CHECK(contains(error_of([&] { list_files(dir, {"deep_*"}, false); }), "'deep_*' matches no file in '" + dir.string() + "'"));
  CHECK(contains(error_of([&] { list_files(dir, {"*.grib"}, true); }), "matches no file in '" + dir.string() + "' or its sub-folders"));
  CHECK(contains(error_of([&] { list_files(dir, {"sub/*.nc"}, true); }), "parameter 'files': 'sub/*.nc' is not a file name or pattern (no '/')"));
  CHECK(contains(error_of([&] { list_files(dir, {}, false, "paths"); }), "parameter 'paths' is empty"));
  CHECK(error_of([&] { list_files(dir, {"text.nc"}, false); }).empty());
}
