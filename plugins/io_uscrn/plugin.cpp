// Plugin "io_uscrn": the io.uscrn node, which reads bundled NOAA USCRN station data. The reading and
// derivations are in uscrn.cpp.
#include <couplet/series.hpp>
#include "io_uscrn/uscrn.hpp"

#include <couplet/sdk.hpp>

#include <memory>

using namespace couplet;

COUPLET_PLUGIN("io_uscrn", "0.1.0") {
  plugin.node("io.uscrn")
      .summary("Reads NOAA USCRN daily01 station files: forcing, surface soil moisture and site locations")
      .doc("Reads `<dir>/stations.csv` and `<dir>/daily01/<year>/CRND0103-<year>-<station>.txt` (see "
           "data/uscrn/README.md) onto a continuous daily time axis from `start` to `end`; days without a "
           "line in the files are NaN. Missing-value codes become NaN. Derived: Tair = T_DAILY_AVG "
           "(T_DAILY_MEAN where missing); Vp = RH/100 · 6.108 exp(17.27 T/(T + 237.3)) hPa (Tetens); "
           "SWD = SOLARAD / 0.0864 W m-2. Soil moisture outside [0, 0.6] m3 m-3 is screened to NaN and "
           "counted in one warning per run. Variables are float32, laid out (site, time).")
      .param(param_path("dir", std::nullopt, "folder holding stations.csv and daily01/, e.g. data/uscrn"))
      .param(param_strings("stations", std::vector<std::string>{},
                           "station names as in the file names, e.g. AL_Gadsden_19_N; empty = every "
                           "station of stations.csv with a file in the period"))
      .param(param_date("start", "2016-01-01", "first day (YYYY-MM-DD)"))
      .param(param_date("end", "2020-12-31", "last day (YYYY-MM-DD), included"))
      .output("forcing", ArtifactKind::Dataset,
              "(site, time): Pr [mm d-1], SWD [W m-2], Tair [degC], Vp [hPa], Tsoil (5 cm) [degC]")
      .output("ssm", ArtifactKind::Dataset, "(site, time): SSM (5 cm) and SSM10 (10 cm) [m3 m-3]")
      .output("sites", ArtifactKind::Dataset, "(site): lat, lon [degrees] and wban")
      .run([](Context& ctx) {
        uscrn::LoadOptions opt;
        opt.dir = ctx.param<std::string>("dir");
        opt.stations = ctx.param<std::vector<std::string>>("stations");
        opt.start = series::date_param("start", ctx.param<std::string>("start"));
        opt.end = series::date_param("end", ctx.param<std::string>("end"));

        auto loaded = uscrn::load(opt, [&](std::size_t done, std::size_t total, const std::string& station) {
          ctx.check_cancelled();
          ctx.progress(static_cast<double>(done), static_cast<double>(total), station);
        });
        for (auto& w : loaded.warnings) ctx.warn(w);
        const double n = static_cast<double>(loaded.sites.dim("site"));
        ctx.progress(n, n, "done");
        ctx.set_output("forcing", std::make_shared<Dataset>(std::move(loaded.forcing)));
        ctx.set_output("ssm", std::make_shared<Dataset>(std::move(loaded.ssm)));
        ctx.set_output("sites", std::make_shared<Dataset>(std::move(loaded.sites)));
      });
}
