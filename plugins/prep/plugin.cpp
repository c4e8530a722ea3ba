// Plugin "prep": preprocessing nodes for (site, time) Datasets. The arithmetic is in prep.cpp; the rules
// are documented in docs/preprocessing.md.
#include "prep/prep.hpp"
#include <couplet/series.hpp>

#include <couplet/sdk.hpp>

#include <unordered_map>

#include <algorithm>
#include <cmath>
#include <memory>

using namespace couplet;

namespace {

std::string count_text(std::size_t n, const char* what) { return std::to_string(n) + " " + what; }

}  // namespace

COUPLET_PLUGIN("prep", "0.1.0") {
  plugin.node("prep.qc")
      .summary("Quality control: physical ranges, soil moisture spikes and a saturation bound; flagged values become NaN")
      .doc("Per variable, values outside an inclusive physical range become NaN. Default ranges: SSM [0, 0.6] "
           "m3 m-3, Pr [0, 500] mm d-1, Tair [-60, 60] degC, SWD [0, 500] W m-2, Vp [0, 80] hPa; a default "
           "for a variable the dataset lacks is skipped. Then, on `spike_variable` (SSM): values above "
           "`theta_max` (when >= 0) become NaN, and one-day spikes are removed: a value that differs from "
           "BOTH neighbouring days by more than `spike_threshold` in the same direction (up and back down, or "
           "down and back up). A rain-driven rise that persists into the next day is not a spike. Science.md "
           "names no spike rule; this is couplet's (see docs/preprocessing.md). Tests run in that order, "
           "each on what the previous left. The `flags` table has one row per (site, variable, reason) "
           "tested, zeros included.")
      .input("data", ArtifactKind::Dataset, "series over (site, time)")
      .output("cleaned", ArtifactKind::Dataset, "the input with flagged values set to NaN (dtype and attributes kept)")
      .output("flags", ArtifactKind::Table,
              "site, variable, reason (below_range, above_range, above_theta_max, spike), flagged, checked")
      .param(param_strings("ranges", std::vector<std::string>{},
                           "range overrides or additions as \"VARIABLE:LOW:HIGH\", e.g. [\"SSM:0:0.5\"]; the "
                           "variable must be in the dataset"))
      .param(param_string("spike_variable", "SSM", "variable tested for spikes and theta_max; empty = neither test"))
      .param(param_float("spike_threshold", 0.1, "jump up and back (or down and back) within one day that "
                                                 "counts as a spike, in the variable's units")
                 .at_least(0).in_units("m3 m-3"))
      .param(param_float("theta_max", -1.0, "plausible upper bound of spike_variable (e.g. the site's saturated "
                                            "water content); negative = off")
                 .in_units("m3 m-3"))
      .run([](Context& ctx) {
        prep::QcOptions opt;
        const auto overrides = prep::parse_ranges(ctx.param<std::vector<std::string>>("ranges"));
        for (const auto& r : overrides) opt.explicit_range_variables.push_back(r.variable);
        opt.ranges = prep::merge_ranges(prep::default_ranges(), overrides);
        opt.spike_variable = ctx.param<std::string>("spike_variable");
        opt.spike_threshold = ctx.param<double>("spike_threshold");
        const double theta_max = ctx.param<double>("theta_max");
        opt.theta_max = theta_max >= 0 ? theta_max : prep::kNaN;
        if (opt.spike_variable.empty() && theta_max >= 0)
          throw NodeError("parameter 'theta_max' is set but 'spike_variable' is empty: name the soil moisture variable");
        auto res = prep::quality_control(ctx.dataset("data"), opt);
        ctx.info(count_text(res.flagged, "values flagged"));
        ctx.set_output("cleaned", std::make_shared<Dataset>(std::move(res.cleaned)));
        ctx.set_output("flags", std::make_shared<Table>(std::move(res.flags)));
      });

  plugin.node("prep.site_filter")
      .summary("Drops sites with too many missing days or too long a gap (Xi & Zhuang 2026)")
      .doc("The rule of science.md §B (Data): a site is excluded when its `variable` series has more than "
           "`max_missing_days` missing days or a run of more than `max_gap_days` consecutive missing days "
           "(missing = NaN; runs at the start or end of the period count). Needs a daily, contiguous time "
           "axis. The kept Dataset holds every variable of the input for the kept sites, in input order. "
           "All sites excluded is an error.")
      .input("data", ArtifactKind::Dataset, "series over (site, time), daily")
      .output("kept", ArtifactKind::Dataset, "the input restricted to the kept sites")
      .output("report", ArtifactKind::Table, "site, kept (1/0), missing_days, longest_gap, reason")
      .param(param_string("variable", "SSM", "the target variable whose gaps decide"))
      .param(param_int("max_missing_days", 182, "more missing days than this excludes a site").at_least(0).in_units("days"))
      .param(param_int("max_gap_days", 30, "a run of missing days longer than this excludes a site").at_least(0).in_units("days"))
      .run([](Context& ctx) {
        prep::SiteFilterOptions opt;
        opt.variable = ctx.param<std::string>("variable");
        opt.max_missing_days = ctx.param<std::int64_t>("max_missing_days");
        opt.max_gap_days = ctx.param<std::int64_t>("max_gap_days");
        auto res = prep::site_filter(ctx.dataset("data"), opt);
        const std::size_t total = res.report.rows();
        ctx.info("kept " + std::to_string(res.n_kept) + " of " + std::to_string(total) + " sites");
        ctx.set_output("kept", std::make_shared<Dataset>(std::move(res.kept)));
        ctx.set_output("report", std::make_shared<Table>(std::move(res.report)));
      });

  plugin.node("prep.select_sites")
      .summary("Restricts a Dataset to the sites of another (e.g. the forcing to the sites prep.site_filter kept)")
      .doc("The `data` Dataset restricted to the sites of `like`, in `like`'s order; variables without a site "
           "dimension are copied whole. Every site of `like` must be in `data` (an error names the missing ones).")
      .input("data", ArtifactKind::Dataset, "a Dataset with a site dimension")
      .input("like", ArtifactKind::Dataset, "a Dataset whose `site` coordinate lists the sites to keep")
      .output("selected", ArtifactKind::Dataset, "`data` at the sites of `like`")
      .run([](Context& ctx) {
        const auto& data = ctx.dataset("data");
        const auto have = series::site_names(data);
        const auto want = series::site_names(ctx.dataset("like"));
        std::unordered_map<std::string, std::size_t> row;
        for (std::size_t i = 0; i < have.size(); ++i) row.emplace(have[i], i);
        std::vector<std::size_t> rows;
        std::vector<std::string> missing;
        for (auto& w : want) {
          auto it = row.find(w);
          if (it == row.end()) missing.push_back(w);
          else rows.push_back(it->second);
        }
        if (!missing.empty())
          throw NodeError("input 'data' lacks " + std::to_string(missing.size()) + " site(s) of input 'like': " +
                          missing.front() + (missing.size() > 1 ? ", ..." : ""));
        ctx.info("selected " + std::to_string(rows.size()) + " of " + std::to_string(have.size()) + " sites");
        ctx.set_output("selected", std::make_shared<Dataset>(prep::select_sites(data, rows)));
      });

  plugin.node("prep.gap_fill")
      .summary("Linear interpolation of gaps of at most max_gap days")
      .doc("Per site and variable, each run of missing days of length <= `max_gap` between two values is "
           "filled linearly between them. Longer runs stay NaN. Runs at the start or end of a series (no "
           "value on one side) stay NaN with ends = \"leave\" and take the nearest value with ends = "
           "\"nearest\" (still only up to max_gap). Needs a daily, contiguous time axis.")
      .input("data", ArtifactKind::Dataset, "series over (site, time), daily")
      .output("filled", ArtifactKind::Dataset, "the input with short gaps filled")
      .output("report", ArtifactKind::Table, "site, variable, filled, still_missing")
      .param(param_strings("variables", std::vector<std::string>{}, "variables to fill; empty = every (site, time) variable"))
      .param(param_int("max_gap", 30, "longest run of missing days filled").at_least(1).in_units("days"))
      .param(param_string("ends", "leave", "runs touching the start or end: leave them NaN, or copy the nearest value")
                 .one_of({"leave", "nearest"}))
      .run([](Context& ctx) {
        const auto& in = ctx.dataset("data");
        const auto vars = prep::select_variables(in, ctx.param<std::vector<std::string>>("variables"), "variables");
        auto res = prep::gap_fill(in, vars, static_cast<std::size_t>(ctx.param<std::int64_t>("max_gap")),
                                  ctx.param<std::string>("ends") == "nearest");
        ctx.set_output("filled", std::make_shared<Dataset>(std::move(res.filled)));
        ctx.set_output("report", std::make_shared<Table>(std::move(res.report)));
      });

  plugin.node("prep.daily")
      .summary("Aggregates regular sub-daily (site, time) series to daily means or sums")
      .doc("A value stamped t (days since 1970-01-01, fractional) belongs to day floor(t): stamps are the "
           "start of their interval. The time step is the smallest difference of the time axis; a day must "
           "hold at least `min_fraction` of its 1/step expected values, otherwise it is NaN. Variables in "
           "`sum_variables` are summed: the mean of the valid values times the expected count (missing steps "
           "are assumed at the day's mean rate), so per-step amounts (e.g. mm per hour) become per-day "
           "amounts; every other variable is averaged. Units attributes are kept and a CF `cell_methods` "
           "attribute is added. (site) variables are copied. The output time axis covers every day from the "
           "first to the last, in whole days.")
      .input("data", ArtifactKind::Dataset, "sub-daily series over (site, time), regular steps")
      .output("daily", ArtifactKind::Dataset, "daily series over (site, time)")
      .param(param_strings("sum_variables", std::vector<std::string>{"Pr"}, "variables summed over the day; the others are averaged"))
      .param(param_float("min_fraction", 0.75, "fraction of a day's expected values that must be valid").bounds(0, 1))
      .run([](Context& ctx) {
        prep::DailyOptions opt;
        opt.sum_variables = ctx.param<std::vector<std::string>>("sum_variables");
        opt.min_fraction = ctx.param<double>("min_fraction");
        const auto& in = ctx.dataset("data");
        // Only the sum variables the input has: Pr is a default and may be absent.
        std::vector<std::string> present;
        const auto vars = prep::site_time_variables(in);
        for (const auto& v : opt.sum_variables)
          if (std::find(vars.begin(), vars.end(), v) != vars.end()) present.push_back(v);
          else if (v != "Pr" || opt.sum_variables.size() != 1)
            throw NodeError("parameter 'sum_variables': the dataset has no (site, time) variable '" + v + "'");
        opt.sum_variables = present;
        ctx.set_output("daily", std::make_shared<Dataset>(prep::daily(in, opt)));
      });

  plugin.node("prep.normalize")
      .summary("Fits z-score statistics on the training rows of a split and normalises the data")
      .doc("Mean and population standard deviation of each variable over the (site, day) values that are "
           "finite and fall in a `train` period of fold `fold` of the `split` table (columns fold, "
           "fold_name, site, role, start, end; start/end in days since 1970-01-01, inclusive, NaN = "
           "unbounded). Validation and test rows never enter the statistics. Without a split, every value "
           "is used, with a warning. Pooled: one row per variable; per_site: one per (variable, site), and "
           "every site then needs training values. std = 0 (or fewer than 2 values) is an error naming the "
           "variable. Outputs the statistics (for a trainer to carry in its Model) and z = (x − mean)/std "
           "for every site, units \"1\" (the old units in `units_before_normalization`).")
      .input("data", ArtifactKind::Dataset, "series over (site, time)")
      .optional_input("split", ArtifactKind::Table, "train/validation/test periods per fold and site")
      .output("normalized", ArtifactKind::Dataset, "the input with the chosen variables as z-scores")
      .output("stats", ArtifactKind::Table, "variable, [site], mean, std, n")
      .param(param_strings("variables", std::vector<std::string>{}, "variables to normalise; empty = every (site, time) variable"))
      .param(param_int("fold", 0, "fold of the split whose train rows are used").at_least(0))
      .param(param_bool("per_site", false, "statistics per site instead of pooled over sites"))
      .run([](Context& ctx) {
        const auto& in = ctx.dataset("data");
        const auto vars = prep::select_variables(in, ctx.param<std::vector<std::string>>("variables"), "variables");
        std::unique_ptr<prep::TrainingPeriods> train;
        if (ctx.has_input("split"))
          train = std::make_unique<prep::TrainingPeriods>(prep::training_periods(ctx.table("split"), ctx.param<std::int64_t>("fold")));
        else
          ctx.warn("no split connected: statistics are fitted on all data, test periods included");
        const auto stats = prep::fit_normalization(in, vars, train.get(), ctx.param<bool>("per_site"));
        ctx.set_output("normalized", std::make_shared<Dataset>(prep::apply_normalization(in, stats, false)));
        ctx.set_output("stats", std::make_shared<Table>(stats.to_table()));
      });

  plugin.node("prep.apply_normalization")
      .summary("Applies (or inverts) z-score statistics fitted by prep.normalize")
      .doc("z = (x − mean)/std for every (site, time) variable named in the statistics (others are copied); "
           "with inverse = true, x = z·std + mean (e.g. to bring normalised predictions back to physical "
           "units; the units attribute is restored when it was recorded). Per-site statistics must cover "
           "every site of the data.")
      .input("data", ArtifactKind::Dataset, "series over (site, time)")
      .input("stats", ArtifactKind::Table, "variable, [site], mean, std[, n] from prep.normalize")
      .output("result", ArtifactKind::Dataset, "normalised (or de-normalised) series")
      .param(param_bool("inverse", false, "undo the normalisation instead of applying it"))
      .run([](Context& ctx) {
        const auto stats = prep::NormStats::from_table(ctx.table("stats"));
        ctx.set_output("result", std::make_shared<Dataset>(
                                     prep::apply_normalization(ctx.dataset("data"), stats, ctx.param<bool>("inverse"))));
      });

  plugin.node("prep.kalman_smooth")
      .summary("1-D Kalman filter (random walk) for smoothing labels such as SSM")
      .doc("science.md §B (Training): \"1-D Kalman filter on the SSM labels\". Per site: state x_t = x_{t-1} "
           "+ w, w ~ N(0, q); observation y_t = x_t + v, v ~ N(0, r). Starts at the first value with "
           "variance r. A missing day is a prediction-only step (the variance grows by q). The paper says "
           "filter, so the default is the causal forward filter (each day uses only the past); method = "
           "\"rts\" adds the Rauch–Tung–Striebel backward pass. Missing days stay NaN unless fill_gaps. "
           "Needs a daily, contiguous time axis.")
      .input("data", ArtifactKind::Dataset, "series over (site, time), daily")
      .output("smoothed", ArtifactKind::Dataset, "the input with the chosen variables smoothed")
      .param(param_strings("variables", std::vector<std::string>{"SSM"}, "variables smoothed"))
      .param(param_float("process_variance", 1e-3, "q: variance of the day-to-day change of the state").bounds(1e-12, 1e6).in_units("(variable units)2 d-1"))
      .param(param_float("observation_variance", 4e-4, "r: variance of the observation error").bounds(1e-12, 1e6).in_units("(variable units)2"))
      .param(param_string("method", "filter", "forward filter (the paper) or RTS smoother").one_of({"filter", "rts"}))
      .param(param_bool("fill_gaps", false, "output the state estimate on missing days instead of NaN"))
      .run([](Context& ctx) {
        const auto& in = ctx.dataset("data");
        const auto vars = prep::select_variables(in, ctx.param<std::vector<std::string>>("variables"), "variables");
        prep::KalmanOptions opt;
        opt.process_variance = ctx.param<double>("process_variance");
        opt.observation_variance = ctx.param<double>("observation_variance");
        opt.smoother = ctx.param<std::string>("method") == "rts";
        opt.fill_gaps = ctx.param<bool>("fill_gaps");
        ctx.set_output("smoothed", std::make_shared<Dataset>(prep::kalman_smooth(in, vars, opt)));
      });

  plugin.node("prep.augment")
      .version("2")
      .summary("Co-located site augmentation: perturbed copies of each site's forcing, or the paper's shared "
               "grid-cell forcing for co-located sites")
      .doc("science.md §B (Augmentation): \"Several sites in one grid cell share forcings: the one nearest the "
           "cell centre keeps them; the others get perturbed copies\" — multiplicative Gaussian noise on Pr, "
           "additive on the others scaled by the site mean, non-negativity kept except for Tair. Noise: "
           "multiplicative variables x(1 + sigma·e), the others x + sigma·|mean of x over the perturbed series' "
           "source site|·e, e ~ N(0, 1) drawn per day; values below 0 become 0 except for `may_be_negative`; "
           "NaN stays NaN.\n\n"
           "mode = \"colocated\" (the paper): sites are grouped into cells of `cell_size` degrees (default 0.5, "
           "the paper's global grid) counted from (`grid_origin_lat`, `grid_origin_lon`), using the (site) "
           "variables `lat` and `lon` of the `sites` input when connected (matched by site name), else of "
           "`data`. In a cell with two or more sites, the site nearest the cell centre "
           "(great-circle; ties: the earlier site) keeps its forcing unchanged and every other site's forcing "
           "variables are REPLACED by a perturbed copy of the kept site's forcing (additive noise scaled by "
           "the kept site's mean, the series being perturbed). `targets` (SSM, SSM10) are never touched; sites "
           "alone in their cell are unchanged. Same sites, same order. Each perturbed site draws from the "
           "stream derive_seed(node seed, site).\n\n"
           "mode = \"copies\": for each site and k = 1..n_copies a site `<site>~aug<k>` is added (every "
           "(site, time) variable perturbed unless `variables` says otherwise, targets included); (site) "
           "variables (lat, lon, ...) are copied to the new sites; stream derive_seed(node seed, new site "
           "name).\n\n"
           "A portable Box–Muller generator is used, so results are the same for any thread count and platform.")
      .input("data", ArtifactKind::Dataset, "forcing (and, for colocated, targets) over (site, time); colocated needs (site) lat and lon here or in `sites`")
      .optional_input("sites", ArtifactKind::Dataset,
                      "mode = colocated: (site) lat and lon of every data site, matched by name (e.g. io.uscrn.sites); "
                      "absent = the data's own lat and lon")
      .output("augmented", ArtifactKind::Dataset,
              "colocated: the input sites with the co-located sites' forcing replaced; copies: the input sites (if "
              "keep_original) and their copies")
      .output("cells", ArtifactKind::Table,
              "one row per output site: site, cell, role, source_site, distance_km. colocated: role kept, perturbed "
              "or alone; copies: role original or copy, cell empty, distance_km NaN")
      .param(param_string("mode", "copies", "copies: n_copies perturbed copies of every site, added as new sites; "
                                            "colocated: the paper's shared forcing of sites in one grid cell")
                 .one_of({"copies", "colocated"}))
      .param(param_int("n_copies", 1, "perturbed copies per site (mode = copies)").bounds(1, 1000))
      .param(param_float("sigma", 0.1, "noise standard deviation, relative to the value (multiplicative) or "
                                       "the source site's mean (additive)").bounds(0, 10).in_units("1"))
      .param(param_strings("variables", std::vector<std::string>{},
                           "variables perturbed; empty = every (site, time) variable (colocated: except the targets)"))
      .param(param_strings("targets", std::vector<std::string>{"SSM", "SSM10"},
                           "mode = colocated: variables never touched (names the dataset lacks are skipped)"))
      .param(param_strings("multiplicative", std::vector<std::string>{"Pr"}, "variables with multiplicative noise"))
      .param(param_strings("may_be_negative", std::vector<std::string>{"Tair"}, "variables not clamped at 0"))
      .param(param_bool("keep_original", true, "keep the unperturbed input sites in the output (mode = copies)"))
      .param(param_float("cell_size", 0.5, "mode = colocated: grid cell size (0.5 degrees: the paper's global grid)")
                 .bounds(1e-6, 180).in_units("degree"))
      .param(param_float("grid_origin_lat", -90, "mode = colocated: latitude of the grid's south edge")
                 .bounds(-90, 90).in_units("degree_north"))
      .param(param_float("grid_origin_lon", -180, "mode = colocated: longitude of the grid's west edge")
                 .bounds(-360, 360).in_units("degree_east"))
      .run([](Context& ctx) {
        const auto& in = ctx.dataset("data");
        const auto vars = prep::site_time_variables(in);
        for (const char* param : {"multiplicative", "may_be_negative"})
          for (const auto& v : ctx.param<std::vector<std::string>>(param))
            if (std::find(vars.begin(), vars.end(), v) == vars.end())
              ctx.warn(std::string("parameter '") + param + "' names '" + v + "', which the dataset does not have: ignored");
        if (ctx.param<std::string>("mode") == "colocated") {
          prep::ColocatedOptions opt;
          opt.sigma = ctx.param<double>("sigma");
          opt.variables = ctx.param<std::vector<std::string>>("variables");
          opt.targets = ctx.param<std::vector<std::string>>("targets");
          opt.multiplicative = ctx.param<std::vector<std::string>>("multiplicative");
          opt.may_be_negative = ctx.param<std::vector<std::string>>("may_be_negative");
          opt.cell_size = ctx.param<double>("cell_size");
          opt.origin_lat = ctx.param<double>("grid_origin_lat");
          opt.origin_lon = ctx.param<double>("grid_origin_lon");
          opt.seed = ctx.seed();
          opt.threads = ctx.threads();
          if (ctx.has_input("sites")) opt.coordinates = &ctx.dataset("sites");
          auto res = prep::augment_colocated(in, opt);
          if (res.n_perturbed == 0)
            ctx.warn("no grid cell of " + std::to_string(opt.cell_size) + " degrees holds two or more sites: the "
                     "forcing is unchanged");
          ctx.set_output("augmented", std::make_shared<Dataset>(std::move(res.augmented)));
          ctx.set_output("cells", std::make_shared<Table>(std::move(res.cells)));
          return;
        }
        prep::AugmentOptions opt;
        opt.n_copies = static_cast<std::size_t>(ctx.param<std::int64_t>("n_copies"));
        opt.sigma = ctx.param<double>("sigma");
        opt.variables = ctx.param<std::vector<std::string>>("variables");
        opt.multiplicative = ctx.param<std::vector<std::string>>("multiplicative");
        opt.may_be_negative = ctx.param<std::vector<std::string>>("may_be_negative");
        opt.keep_original = ctx.param<bool>("keep_original");
        opt.seed = ctx.seed();
        opt.threads = ctx.threads();
        auto out = std::make_shared<Dataset>(prep::augment(in, opt));
        const auto& in_sites = series::site_names(in);
        std::vector<std::string> site, cell, role, source;
        std::vector<double> distance;
        const auto row = [&](const std::string& s, const char* r, const std::string& src) {
          site.push_back(s); cell.emplace_back(); role.emplace_back(r); source.push_back(src);
          distance.push_back(std::nan(""));
        };
        if (opt.keep_original)
          for (const auto& s : in_sites) row(s, "original", s);
        for (const auto& s : in_sites)
          for (std::size_t k = 1; k <= opt.n_copies; ++k) row(s + "~aug" + std::to_string(k), "copy", s);
        auto cells = std::make_shared<Table>();
        cells->add_column("site", site, "", "output site");
        cells->add_column("cell", cell, "", "empty: mode = copies uses no grid");
        cells->add_column("role", role, "", "original (unperturbed input site) or copy");
        cells->add_column("source_site", source, "", "input site the row's forcing comes from");
        cells->add_column("distance_km", distance, "km", "NaN: mode = copies uses no grid");
        ctx.set_output("augmented", out);
        ctx.set_output("cells", cells);
      });

  plugin.node("prep.static_features")
      .summary("Per-site multi-year means (and standard deviations) as (site) features")
      .doc("For each chosen variable, `<var>_mean` (and `<var>_std`, population, with std = true) over each "
           "site's finite values of the whole period, as a (site) Dataset, e.g. the multi-year means of the "
           "five dynamic drivers that science.md §B's clustering uses. (site) variables of the input are "
           "copied. A site without any value gets NaN, with a warning.")
      .input("data", ArtifactKind::Dataset, "series over (site, time)")
      .output("statics", ArtifactKind::Dataset, "(site): <var>_mean[, <var>_std]")
      .param(param_strings("variables", std::vector<std::string>{}, "variables summarised; empty = every (site, time) variable"))
      .param(param_bool("std", false, "also output the standard deviation"))
      .run([](Context& ctx) {
        const auto& in = ctx.dataset("data");
        const auto vars = prep::select_variables(in, ctx.param<std::vector<std::string>>("variables"), "variables");
        std::vector<std::string> empty;
        auto out = prep::static_features(in, vars, ctx.param<bool>("std"), &empty);
        if (!empty.empty()) {
          std::string list;
          for (std::size_t i = 0; i < empty.size() && i < 10; ++i) list += (i ? ", " : "") + empty[i];
          ctx.warn(std::to_string(empty.size()) + " site/variable pairs have no value, their features are NaN: " + list +
                   (empty.size() > 10 ? ", ..." : ""));
        }
        ctx.set_output("statics", std::make_shared<Dataset>(std::move(out)));
      });
}
