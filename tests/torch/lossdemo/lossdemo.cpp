// A physics loss term from outside the learn plugin: the example of docs/plugin-authors.md ("Adding a
// physics loss term"), built and used by a test (tests/unit/test_learn_workflow.cpp) so that it stays true.
// learn.lstm / learn.fcnn / learn.pgdl / learn.cv take its artifact on a physics_loss_<i> port unchanged.
#include <couplet/torch_bridge.hpp>
#include <couplet/sdk.hpp>

#include <cstdio>

using namespace couplet;

namespace {

/// Penalises day-to-day jumps of the prediction larger than `max_step` (in the target's units).
class StepLoss final : public LossTerm {
 public:
  explicit StepLoss(const Model& m) : max_step_(std::stod(m.attrs.at("max_step"))) {}
  torch::Tensor evaluate(const LossBatch& b) const override {
    const auto known = torch::isfinite(b.previous);  // NaN = no previous day: mask it out
    const auto excess = torch::relu((b.predicted - torch::nan_to_num(b.previous)).abs() - max_step_);
    const auto sq = torch::where(known, excess.pow(2), torch::zeros_like(excess));
    return sq.mean() / (b.target_scale * b.target_scale);  // unit-free, so beta is too
  }

 private:
  double max_step_;
};

std::string text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

COUPLET_PLUGIN("lossdemo", "0.1.0") {
  plugin.node("lossdemo.step")
      .summary("LossTerm: penalises day-to-day jumps of the prediction larger than max_step")
      .output("term", ArtifactKind::Model, "the LossTerm (type lossdemo.step)")
      .param(param_float("beta", 1.0, "weight of the term in the trainer's loss").at_least(0))
      .param(param_float("max_step", 0.05, "largest day-to-day change not penalised").at_least(0).in_units("m3 m-3"))
      .run([](Context& ctx) {
        auto m = std::make_shared<Model>();
        m->type = "lossdemo.step";
        m->attrs["beta"] = text(ctx.param<double>("beta"));  // the trainer reads beta from here
        m->attrs["max_step"] = text(ctx.param<double>("max_step"));
        ctx.set_output("term", m);
      });
  plugin.model_type(loss_term_type<StepLoss>("lossdemo.step"));
}
