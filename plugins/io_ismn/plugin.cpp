// Plugin "io_ismn": the io.ismn node, which reads ISMN "Header + values" station files. The reading and
// the daily means are in ismn.cpp; the format and the rules in docs/data/ismn.md.
#include "io_ismn/ismn.hpp"

#include <couplet/sdk.hpp>
#include <couplet/series.hpp>

#include <memory>

using namespace couplet;

COUPLET_PLUGIN("io_ismn", "0.1.0") {
  plugin.node("io.ismn")
      .summary("Reads ISMN Header + values (.stm) soil moisture files: daily surface soil moisture and site locations")
      .doc("Reads the files that `files` names under `dir` (sub-folders too when `recursive`; ISMN archives "
           "keep <network>/<station>/*.stm). Each file's first line is the header (CSE, network, station, "
           "latitude, longitude, elevation, depth_from, depth_to, sensor); the others are `yyyy/mm/dd hh:mm "
           "value ISMN_flag provider_flag` in UTC. Files whose sensor depth range does not lie inside "
           "[depth_from, depth_to] are skipped. A value is kept only when every comma-separated part of its "
           "ISMN flag is in `good_flags`; the others become missing and are counted in one warning. The daily "
           "value is the mean of the kept values of the UTC day, or NaN when it has fewer than `min_values` "
           "of them; several sensors of one station in the depth range are pooled (one warning). Site names "
           "are <network>_<station>. The time axis is continuous from `start` to `end` (empty: the first and "
           "last day with a kept value). Errors name the file and line (bad header, fewer than 4 columns, "
           "unparsable date, time or number, time stamps out of order).")
      .param(param_path("dir", std::nullopt, "folder holding the .stm files (or network/station sub-folders)"))
      .param(param_strings("files", std::vector<std::string>{"*_sm_*.stm"},
                           "file names or patterns (`*`, `?`) matched against file names under dir"))
      .param(param_bool("recursive", true, "also search the sub-folders of dir"))
      .param(param_float("depth_from", 0.0, "shallowest sensor top kept").bounds(0, 10).in_units("m"))
      .param(param_float("depth_to", 0.05, "deepest sensor bottom kept").bounds(0, 10).in_units("m"))
      .param(param_strings("good_flags", std::vector<std::string>{"G"},
                           "ISMN quality flags kept (G = good; the others, e.g. C01, D04, M, are screened out by default)"))
      .param(param_int("min_values", 1, "kept values a UTC day needs for its daily mean (ISMN data are hourly: "
                                        "e.g. 12 keeps only days at least half covered)")
                 .bounds(1, 1440))
      .param(param_date("start", "", "first day (YYYY-MM-DD); empty = the first day with a kept value"))
      .param(param_date("end", "", "last day (YYYY-MM-DD), included; empty = the last day with a kept value"))
      .output("ssm", ArtifactKind::Dataset,
              "(site, time): SSM [m3 m-3], daily; and per site lat, lon [degrees], elevation [m]")
      .output("sites", ArtifactKind::Dataset,
              "(site): lat, lon [degrees], elevation [m], network, station, depth_from, depth_to [m], sensors")
      .run([](Context& ctx) {
        ismn::LoadOptions opt;
        opt.dir = ctx.param<std::string>("dir");
        opt.files = ctx.param<std::vector<std::string>>("files");
        opt.recursive = ctx.param<bool>("recursive");
        opt.depth_from = ctx.param<double>("depth_from");
        opt.depth_to = ctx.param<double>("depth_to");
        opt.good_flags = ctx.param<std::vector<std::string>>("good_flags");
        opt.min_values = static_cast<std::size_t>(ctx.param<std::int64_t>("min_values"));
        const auto start = ctx.param<std::string>("start"), end = ctx.param<std::string>("end");
        if (!start.empty()) opt.start = static_cast<double>(series::date_param("start", start));
        if (!end.empty()) opt.end = static_cast<double>(series::date_param("end", end));

        auto loaded = ismn::load(opt, [&](std::size_t done, std::size_t total, const std::filesystem::path& file) {
          ctx.check_cancelled();
          ctx.progress(static_cast<double>(done), static_cast<double>(total), file.filename().string());
        });
        for (auto& n : loaded.notes) ctx.info(n);
        for (auto& w : loaded.warnings) ctx.warn(w);
        ctx.set_output("ssm", std::make_shared<Dataset>(std::move(loaded.ssm)));
        ctx.set_output("sites", std::make_shared<Dataset>(std::move(loaded.sites)));
      });
}
