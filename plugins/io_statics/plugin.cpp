// Plugin "io_statics": the io.statics_csv node, which assembles per-site statics (elevation, texture, land
// type, location, LAI) from an optional CSV, a station reader's site variables and documented defaults.
// The reading and the precedence rules are in statics.cpp.
#include "io_statics/statics.hpp"

#include <couplet/sdk.hpp>

#include <memory>

using namespace couplet;

COUPLET_PLUGIN("io_statics", "0.1.0") {
  plugin.node("io.statics_csv")
      .summary("Per-site statics (elevation, sand, silt, clay, land, lat, lon, LAI) from an optional CSV, the "
               "station reader's site variables and documented defaults")
      .doc("For every site of the `sites` input (e.g. io.uscrn.sites or io.ismn.sites) each variable comes from "
           "the CSV if it has a value there, else from the `sites` input's variable of the same name (lat, lon, "
           "elevation from the station files), else from a documented default: elevation 0 m, sand 0.4, silt "
           "0.4, clay 0.2 (loam; the defaults of tem_wbm.simulate), land 0 (upland), LAI 2 m2 m-2 (as "
           "workflows/pb_uscrn.toml); lat and lon have no default and stay NaN. ONE warning lists every default "
           "used and the sites it was used at; CSV sites that are not in the data are ignored with a warning. "
           "The CSV: header `site,` then any of elevation, sand, silt, clay, land, lat, lon, LAI (fractions 0-1, "
           "not percentages; land 0 or 1); an empty cell = no value; '#' lines are comments. Errors name the file, "
           "line and column: an unknown or repeated column, a wrong field count, a non-number, a value out of "
           "range, a repeated site, sand + silt + clay not 1 (± 0.02) - also after the fill. Each variable's "
           "attribute source_per_site records where each site's value came from (c CSV, s sites input, d default).")
      .input("sites", ArtifactKind::Dataset, "(site): the sites; optional lat, lon, elevation (or any statics variable)")
      .output("statics", ArtifactKind::Dataset,
              "(site): elevation [m], sand, silt, clay [0-1], land (0 upland, 1 wetland), lat, lon [degrees], "
              "LAI [m2 m-2]; fits tem_wbm.simulate's statics input")
      .param(param_path("csv", "", "statics CSV (header site,<variables>); empty = none: the sites input and the defaults"))
      .run([](Context& ctx) {
        const auto path = ctx.param<std::string>("csv");
        std::unique_ptr<statics::Csv> csv;
        if (!path.empty()) csv = std::make_unique<statics::Csv>(statics::read_csv(path));
        auto built = statics::build(ctx.dataset("sites"), csv.get());
        for (auto& w : built.warnings) ctx.warn(w);
        ctx.set_output("statics", std::make_shared<Dataset>(std::move(built.statics)));
      });
}
