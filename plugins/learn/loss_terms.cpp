#include "learn/loss_terms.hpp"

#include <couplet/sdk.hpp>

#include <cstdio>
#include <stdexcept>

namespace couplet::learn {
namespace {

std::string attr(const Model& m, const std::string& key) {
  auto it = m.attrs.find(key);
  if (it == m.attrs.end()) throw NodeError("loss term '" + m.type + "' has no attribute '" + key + "'");
  return it->second;
}
double number(const Model& m, const std::string& key) { return std::stod(attr(m, key)); }
std::string text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// finite(x) as a mask, and x with NaN replaced by 0 (so that masked-out entries carry no NaN gradient).
torch::Tensor known(const torch::Tensor& x) { return torch::isfinite(x); }
torch::Tensor zeroed(const torch::Tensor& x) { return torch::nan_to_num(x, 0.0, 0.0, 0.0); }

/// Mean over the batch of `values` where `mask` (entries outside count as 0).
torch::Tensor batch_mean(const torch::Tensor& values, const torch::Tensor& mask) {
  return torch::where(mask, values, torch::zeros_like(values)).sum() / static_cast<double>(std::max<std::int64_t>(1, values.numel()));
}

}  // namespace

DirectionLoss::DirectionLoss(const Model& m)
    : infiltration_(attr(m, "infiltration")), evaporation_(attr(m, "soil_evaporation")),
      transpiration_(attr(m, "transpiration")), if_zero_(number(m, "if_zero")) {}

torch::Tensor DirectionLoss::evaluate(const LossBatch& b) const {
  const auto& inf = b.variable(infiltration_);
  const auto et = b.variable(evaporation_) + b.variable(transpiration_);
  const auto mask = known(inf) & known(et) & known(b.previous) & (inf <= if_zero_) & (et > 0);
  const auto rise = torch::relu(b.predicted - zeroed(b.previous));
  return batch_mean(rise.pow(2), mask) / (b.target_scale * b.target_scale);
}

BoundsLoss::BoundsLoss(const Model& m)
    : residual_(number(m, "residual")), porosity_(number(m, "porosity")), residual_var_(attr(m, "residual_variable")),
      porosity_var_(attr(m, "porosity_variable")) {}

std::vector<std::string> BoundsLoss::variables() const {
  std::vector<std::string> v;
  if (!residual_var_.empty()) v.push_back(residual_var_);
  if (!porosity_var_.empty()) v.push_back(porosity_var_);
  return v;
}

torch::Tensor BoundsLoss::evaluate(const LossBatch& b) const {
  auto bound = [&](const std::string& var, double constant) {
    auto c = torch::full_like(b.predicted, constant);
    if (var.empty()) return c;
    const auto& v = b.variable(var);
    return torch::where(known(v), v, c);
  };
  const auto lo = bound(residual_var_, residual_), hi = bound(porosity_var_, porosity_);
  const auto out = torch::relu(lo - b.predicted).pow(2) + torch::relu(b.predicted - hi).pow(2);
  return batch_mean(out, torch::ones_like(out, torch::kBool)) / (b.target_scale * b.target_scale);
}

StorageLoss::StorageLoss(const Model& m)
    : inflow_(attr(m, "infiltration")), evaporation_(attr(m, "soil_evaporation")), transpiration_(attr(m, "transpiration")),
      drainage_(attr(m, "drainage")), depth_(number(m, "depth")) {}

torch::Tensor StorageLoss::evaluate(const LossBatch& b) const {
  const auto budget = b.variable(inflow_) - b.variable(evaporation_) - b.variable(transpiration_) - b.variable(drainage_);
  const auto mask = known(budget) & known(b.previous);
  const auto change = (b.predicted - zeroed(b.previous)) * depth_;
  const auto miss = (change - zeroed(budget)).pow(2);
  const double s = b.target_scale * depth_;
  return batch_mean(miss, mask) / (s * s);
}

void register_loss_terms(Registry& plugin) {
  const std::string common =
      " The term is a LossTerm artifact: connect `term` to a trainer's `physics_loss_1` … `physics_loss_4`; the "
      "trainer adds beta × term to its loss and reads the term's variables from its `physics` input (else "
      "`features`) on the predicted day. The target's values are in physical units and the term is divided by "
      "the target's training standard deviation (squared), so beta is unit-free. With beta = 0 the trainer "
      "only records the term's value per epoch (its `history`), without gradient: the training is exactly as "
      "without it. See docs/models/learn.md, \"Physics loss terms\".";
  auto beta = [] {
    return param_float("beta", 1.0, "weight of the term in the trainer's loss (0: recorded only)").at_least(0);
  };
  auto flux = [](const char* name, const char* def, const char* what) {
    return param_string(name, def, std::string("variable holding ") + what + " [mm d-1]");
  };

  plugin.node("learn.loss_direction")
      .summary("LossTerm (a): penalises a predicted soil-moisture rise on days without infiltration but with ET")
      .doc("On the days where infiltration is at most `if_zero` and transpiration + soil evaporation is positive, "
           "the predicted target should not rise above the previous day's (the water balance can only lose "
           "water): L = mean over the batch of [IF <= if_zero and EV + ES > 0] · relu(pred(t) − SSM(t−1))² / "
           "σ². This is the per-day form of the violation-day diagnostic (eval.water_balance); it does not ask "
           "for the diagnostic's 10-day dry spell, which a single sample cannot see." + common)
      .output("term", ArtifactKind::Model, "the LossTerm (type learn.loss_direction)")
      .param(beta())
      .param(flux("infiltration", "IF", "the infiltration"))
      .param(flux("transpiration", "EV", "the transpiration"))
      .param(flux("soil_evaporation", "ES", "the soil evaporation"))
      .param(param_float("if_zero", 1e-6, "infiltration at or below this counts as none (float round-off)")
                 .at_least(0)
                 .in_units("mm d-1"))
      .run([](Context& ctx) {
        auto m = std::make_shared<Model>();
        m->type = "learn.loss_direction";
        m->attrs["beta"] = text(ctx.param<double>("beta"));
        for (const char* k : {"infiltration", "transpiration", "soil_evaporation"}) m->attrs[k] = ctx.param<std::string>(k);
        m->attrs["if_zero"] = text(ctx.param<double>("if_zero"));
        ctx.set_output("term", m);
      });

  plugin.node("learn.loss_bounds")
      .summary("LossTerm (b): penalises a prediction below the residual water content or above the porosity")
      .doc("L = mean over the batch of (relu(residual − pred)² + relu(pred − porosity)²) / σ². The bounds are "
           "the constants `residual` and `porosity`, or per site and day the variables `residual_variable` and "
           "`porosity_variable` when named (where those are NaN the constants apply)." + common)
      .output("term", ArtifactKind::Model, "the LossTerm (type learn.loss_bounds)")
      .param(beta())
      .param(param_float("residual", 0.01, "lower bound of the target").in_units("m3 m-3"))
      .param(param_float("porosity", 0.55, "upper bound of the target").in_units("m3 m-3"))
      .param(param_string("residual_variable", "", "variable holding a per-site/day lower bound; empty = constant"))
      .param(param_string("porosity_variable", "", "variable holding a per-site/day upper bound; empty = constant"))
      .run([](Context& ctx) {
        const double lo = ctx.param<double>("residual"), hi = ctx.param<double>("porosity");
        if (!(lo < hi))
          throw NodeError("parameter 'residual' (" + text(lo) + ") must be below 'porosity' (" + text(hi) + ")");
        auto m = std::make_shared<Model>();
        m->type = "learn.loss_bounds";
        m->attrs["beta"] = text(ctx.param<double>("beta"));
        m->attrs["residual"] = text(lo);
        m->attrs["porosity"] = text(hi);
        m->attrs["residual_variable"] = ctx.param<std::string>("residual_variable");
        m->attrs["porosity_variable"] = ctx.param<std::string>("porosity_variable");
        ctx.set_output("term", m);
      });

  plugin.node("learn.loss_storage")
      .summary("LossTerm (c): asks the predicted storage change to match the PB fluxes IF − EV − ES − DR")
      .doc("L = mean over the batch of ((pred(t) − SSM(t−1)) · depth − (IF − EV − ES − DR))² / (σ · depth)², "
           "over the samples where all are known. `depth` converts the volumetric change into a storage "
           "change: the default, 1500 mm, is the whole TEM column whose budget the fluxes close (the surface "
           "layer then follows the column's mean change); a shallower depth asks the surface to move more "
           "per mm of flux." + common)
      .output("term", ArtifactKind::Model, "the LossTerm (type learn.loss_storage)")
      .param(beta())
      .param(flux("infiltration", "IF", "the infiltration"))
      .param(flux("transpiration", "EV", "the transpiration"))
      .param(flux("soil_evaporation", "ES", "the soil evaporation"))
      .param(flux("drainage", "DR", "the drainage"))
      .param(param_float("depth", 1500, "soil depth whose storage the fluxes change").bounds(1, 1e5).in_units("mm"))
      .run([](Context& ctx) {
        auto m = std::make_shared<Model>();
        m->type = "learn.loss_storage";
        m->attrs["beta"] = text(ctx.param<double>("beta"));
        for (const char* k : {"infiltration", "transpiration", "soil_evaporation", "drainage"})
          m->attrs[k] = ctx.param<std::string>(k);
        m->attrs["depth"] = text(ctx.param<double>("depth"));
        ctx.set_output("term", m);
      });

  plugin.model_type(loss_term_type<DirectionLoss>("learn.loss_direction"));
  plugin.model_type(loss_term_type<BoundsLoss>("learn.loss_bounds"));
  plugin.model_type(loss_term_type<StorageLoss>("learn.loss_storage"));
}

}  // namespace couplet::learn
