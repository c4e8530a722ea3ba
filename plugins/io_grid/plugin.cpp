// Plugin "io_grid": gridded readers (io.era5, io.smap) and a NetCDF-4 writer (io.write_netcdf). The
// reading, gridding and writing are in grid.cpp; docs/data/era5_smap.md describes the rules.
#include "io_grid/grid.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <memory>

using namespace couplet;

namespace {

grid::FileHook progress_of(Context& ctx) {
  return [&ctx](std::size_t done, std::size_t total, const std::string& file) {
    ctx.check_cancelled();
    ctx.progress(static_cast<double>(done), static_cast<double>(total), file);
  };
}

void finish(Context& ctx, grid::Loaded& loaded, std::size_t files) {
  for (const auto& w : loaded.warnings) ctx.warn(w);
  ctx.progress(static_cast<double>(files), static_cast<double>(files), "done");
  ctx.set_output("data", std::make_shared<Dataset>(std::move(loaded.data)));
}

/// (site, time) variables onto the (time, lat, lon) grid that the statics' row/col indices span.
void sites_to_grid(Context& ctx) {
  const Dataset& data = ctx.dataset("data");
  const Dataset& st = ctx.dataset("statics");
  for (const char* c : {"row", "col", "lat", "lon"})
    if (!st.has(c)) throw NodeError(std::string("input 'statics' has no variable '") + c + "' (synth.world's statics have row, col, lat, lon)");
  const auto& st_sites = series::site_names(st);
  const auto rows = st.var("row").as_double(), cols = st.var("col").as_double(), lats = st.var("lat").as_double(),
             lons = st.var("lon").as_double();
  std::map<std::string, std::size_t> where;
  std::size_t H = 0, W = 0;
  for (std::size_t i = 0; i < st_sites.size(); ++i) {
    if (!(rows[i] >= 0) || !(cols[i] >= 0) || rows[i] != std::floor(rows[i]) || cols[i] != std::floor(cols[i]))
      throw NodeError("input 'statics': site '" + st_sites[i] + "' has no whole row/col index (a scattered-site world "
                      "has no grid)");
    where[st_sites[i]] = i;
    H = std::max(H, static_cast<std::size_t>(rows[i]) + 1);
    W = std::max(W, static_cast<std::size_t>(cols[i]) + 1);
  }
  // Cell centres: the mean site coordinate of each row (lat) and column (lon).
  std::vector<double> lat(H, 0), lon(W, 0), nlat(H, 0), nlon(W, 0);
  std::map<std::pair<std::size_t, std::size_t>, std::string> taken;
  for (std::size_t i = 0; i < st_sites.size(); ++i) {
    const auto r = static_cast<std::size_t>(rows[i]), c = static_cast<std::size_t>(cols[i]);
    if (auto [it, fresh] = taken.emplace(std::make_pair(r, c), st_sites[i]); !fresh)
      throw NodeError("input 'statics': sites '" + it->second + "' and '" + st_sites[i] + "' share the cell row " +
                      std::to_string(r) + ", col " + std::to_string(c));
    lat[r] += lats[i], nlat[r] += 1, lon[c] += lons[i], nlon[c] += 1;
  }
  for (std::size_t r = 0; r < H; ++r) {
    if (nlat[r] == 0) throw NodeError("input 'statics': grid row " + std::to_string(r) + " has no site, so its latitude is unknown");
    lat[r] /= nlat[r];
  }
  for (std::size_t c = 0; c < W; ++c) {
    if (nlon[c] == 0) throw NodeError("input 'statics': grid column " + std::to_string(c) + " has no site, so its longitude is unknown");
    lon[c] /= nlon[c];
  }
  auto names = ctx.param<std::vector<std::string>>("variables");
  if (names.empty())
    for (auto& v : data.variables())
      if (v.dims() == std::vector<std::string>{"site", "time"} && v.dtype() != DType::String) names.push_back(v.name());
  if (names.empty()) throw NodeError("input 'data' has no numeric (site, time) variable");
  auto out = std::make_shared<Dataset>();
  const auto time = series::time_days(data);
  const std::size_t T = time.size(), HW = H * W;
  out->add(Variable("time", {"time"}, {T}, time, {{"units", "days since 1970-01-01"}}));
  out->add(Variable("lat", {"lat"}, {H}, lat, {{"units", "degrees_north"}}));
  out->add(Variable("lon", {"lon"}, {W}, lon, {{"units", "degrees_east"}}));
  for (auto& name : names) {
    auto s = series::read_site_series(data, name);
    std::vector<float> g(T * HW, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t k = 0; k < s.sites.size(); ++k) {
      auto it = where.find(s.sites[k]);
      if (it == where.end()) throw NodeError("input 'statics' has no site '" + s.sites[k] + "' of input 'data'");
      const std::size_t cell = static_cast<std::size_t>(rows[it->second]) * W + static_cast<std::size_t>(cols[it->second]);
      for (std::size_t t = 0; t < T; ++t) g[t * HW + cell] = static_cast<float>(s.values[k * T + t]);
    }
    Attributes a = data.var(name).attrs();
    out->add(Variable(name, {"time", "lat", "lon"}, {T, H, W}, std::move(g), std::move(a)));
  }
  out->attrs = data.attrs;
  ctx.set_output("data", out);
}

}  // namespace

COUPLET_PLUGIN("io_grid", "0.1.0") {
  plugin.node("io.era5")
      .summary("Reads ERA5/ERA5-Land NetCDF-4 files: one variable on the files' lat/lon grid, land-masked, "
               "as UTC daily means")
      .doc("Reads `variable` over (time, latitude, longitude) from the NetCDF-4 files that `files` names in "
           "`dir` (HDF5 C API; see docs/data/era5_smap.md). Packed values are unpacked (scale_factor, "
           "add_offset); _FillValue, missing_value and values outside valid_min/valid_max/valid_range become "
           "NaN. Cells where `mask_variable` is below `mask_threshold` (or missing) become NaN. The files "
           "are put in time order and concatenated; time steps that overlap, or grids that differ, are an "
           "error naming both files. `aggregate = \"daily_mean\"`: one value per UTC day holding at least one "
           "time step, the mean of the finite values of that day's steps (NaN if none); days with fewer "
           "steps than a full day are kept and counted in a warning. `aggregate = \"none\"`: the steps as "
           "stored, time in fractional days. Output coordinates: time (days since 1970-01-01), lat and lon "
           "in the files' order; the variable as float32 with its units in CF notation (m**3 m**-3 → "
           "m3 m-3); negative soil moisture left after masking is kept and counted in a warning. The "
           "Copernicus attribution is in the output's attributes.")
      .param(param_path("dir", std::nullopt, "folder holding the NetCDF-4 files"))
      .param(param_strings("files", std::vector<std::string>{"*.nc"},
                           "file names or patterns (`*`, `?`) in dir; every match is read"))
      .param(param_string("variable", "swvl1", "variable to read, over (time, latitude, longitude)"))
      .param(param_string("mask_variable", "lsm",
                          "land-sea mask in the same files, over (latitude, longitude) with optional leading "
                          "dimensions of length 1, or over the variable's dimensions; empty = no mask"))
      .param(param_float("mask_threshold", 0.5, "cells whose mask is below this become NaN").bounds(0, 1).in_units("1"))
      .param(param_string("aggregate", "daily_mean", "daily_mean: UTC daily means; none: the time steps as stored")
                 .one_of({"daily_mean", "none"}))
      .output("data", ArtifactKind::Dataset,
              "(time, lat, lon): the variable [its units, m3 m-3 for swvl1]; time in days since 1970-01-01")
      .run([](Context& ctx) {
        grid::Era5Options opt;
        opt.files = files::list_files(ctx.param<std::string>("dir"), ctx.param<std::vector<std::string>>("files"),
                                       /*recursive=*/false);
        opt.variable = ctx.param<std::string>("variable");
        opt.mask_variable = ctx.param<std::string>("mask_variable");
        opt.mask_threshold = ctx.param<double>("mask_threshold");
        opt.daily_mean = ctx.param<std::string>("aggregate") == "daily_mean";
        auto loaded = grid::read_era5(opt, progress_of(ctx));
        finish(ctx, loaded, opt.files.size());
      });

  plugin.node("io.smap")
      .summary("Reads SMAP L3 daily point lists onto a lat/lon grid (nearest cell, mean per cell and day)")
      .doc("Reads the NetCDF-4 point lists that `files` names in `dir` (variables latitude, longitude and "
           "`variable` along one dimension; see docs/data/era5_smap.md). Each point goes to the cell whose "
           "centre is nearest (a point halfway between two centres goes to the one with the larger "
           "coordinate; points beyond half a cell outside the grid are left out and counted in a warning; "
           "longitudes are wrapped by 360 degrees onto the grid). The points of one day in one cell are "
           "averaged (the AM and PM passes together), NaN where there is none; n_obs says how many. The day "
           "of a point comes from a `time` variable when the file has one (one value, or one per point; a missing "
           "time is an error only at a point with a value), else from the last YYYY-MM-DD or YYYYMMDD in the file "
           "name; neither is an error naming the file. "
           "The grid: the cells of input `like` (e.g. io.era5's output), or, without it, a regular grid of "
           "`resolution`-degree cells filling [lat_min, lat_max] x [lon_min, lon_max] (give one of the two). "
           "The time axis holds the days found, in order.")
      .optional_input("like", ArtifactKind::Dataset,
                      "a gridded Dataset whose lat and lon coordinates (cell centres) are the output grid")
      .output("data", ArtifactKind::Dataset,
              "(time, lat, lon): the soil moisture mean [m3 m-3] and n_obs; time in days since 1970-01-01")
      .param(param_path("dir", std::nullopt, "folder holding the SMAP point-list files"))
      .param(param_strings("files", std::vector<std::string>{"*.nc"},
                           "file names or patterns (`*`, `?`) in dir; every match is read"))
      .param(param_string("variable", "soil_moisture", "soil moisture variable of the point lists")
                 .one_of({"soil_moisture", "soil_moisture_dca"}))
      .param(param_float("resolution", 0.0, "cell size of the regular grid; 0 = use input 'like'")
                 .at_least(0)
                 .in_units("degree"))
      .param(param_float("lat_min", -90.0, "southern edge of the regular grid").bounds(-90, 90).in_units("degree_north"))
      .param(param_float("lat_max", 90.0, "northern edge of the regular grid").bounds(-90, 90).in_units("degree_north"))
      .param(param_float("lon_min", -180.0, "western edge of the regular grid").bounds(-180, 360).in_units("degree_east"))
      .param(param_float("lon_max", 180.0, "eastern edge of the regular grid").bounds(-180, 360).in_units("degree_east"))
      .run([](Context& ctx) {
        grid::SmapOptions opt;
        opt.files = files::list_files(ctx.param<std::string>("dir"), ctx.param<std::vector<std::string>>("files"),
                                       /*recursive=*/false);
        opt.variable = ctx.param<std::string>("variable");
        const double resolution = ctx.param<double>("resolution");
        if (ctx.has_input("like") && resolution > 0)
          throw NodeError("give either input 'like' or parameter 'resolution', not both");
        if (ctx.has_input("like")) {
          opt.grid = grid::grid_of(ctx.dataset("like"), "input 'like'");
        } else if (resolution > 0) {
          opt.grid = grid::regular_grid(resolution, ctx.param<double>("lat_min"), ctx.param<double>("lat_max"),
                                        ctx.param<double>("lon_min"), ctx.param<double>("lon_max"));
        } else {
          throw NodeError("no grid: connect input 'like' or set parameter 'resolution' (with lat_min, lat_max, "
                          "lon_min, lon_max)");
        }
        auto loaded = grid::read_smap(opt, progress_of(ctx));
        finish(ctx, loaded, opt.files.size());
      });

  plugin.node("io.write_netcdf")
      .summary("Writes a Dataset to a NetCDF-4-compatible HDF5 file that xarray and netCDF tools open")
      .doc("Writes every variable of the input with its dimensions as HDF5 dimension scales (coordinate "
           "variables where the Dataset has them), its attributes as text, `_FillValue` = NaN on float "
           "variables, and the time coordinate's CF units (days since 1970-01-01 when it has none). "
           "Variables larger than 1 MiB are chunked and compressed. The file appears atomically (a temp "
           "file in the same folder, renamed when complete); its folder must exist. The node has no output "
           "port: it runs on every run, also when nothing upstream changed.")
      .input("data", ArtifactKind::Dataset, "the Dataset to write")
      .param(param_path("path", std::nullopt,
                        "file to write (relative to the workflow file), e.g. results/era5_daily.nc; replaced "
                        "if it exists"))
      .run([](Context& ctx) {
        const std::string path = ctx.param<std::string>("path");
        const Dataset& ds = ctx.dataset("data");
        grid::write_netcdf(ds, path);
        ctx.info("wrote " + path + " (" + std::to_string(ds.variables().size()) + " variables)");
      });
  plugin.node("io.sites_to_grid")
      .summary("Puts (site, time) variables of a gridded site world (e.g. synth.world, synth.truth) on a (time, lat, lon) grid")
      .doc("Each site goes to the cell of its `row` and `col` in `statics` (synth.world's statics: row 0 in the north); "
           "the grid's lat and lon are the mean site coordinates of each row and column. Cells without a site are NaN "
           "(outside the land mask). Values become float32; attributes are kept. A site of `data` missing from "
           "`statics`, a site without whole row/col indices (a scattered-site world) or a row or column without any "
           "site is an error. The input is read whole: meant for regional grids.")
      .input("data", ArtifactKind::Dataset, "(site, time) variables")
      .input("statics", ArtifactKind::Dataset, "(site): row, col, lat, lon")
      .output("data", ArtifactKind::Dataset, "(time, lat, lon): the variables as float32")
      .param(param_strings("variables", std::vector<std::string>{}, "variables to grid; empty = every numeric (site, time) variable"))
      .run(sites_to_grid);
}
