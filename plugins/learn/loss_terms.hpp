// The physics loss terms of the learn plugin (science.md A, method 8): LossTerm implementations and the
// nodes that make their artifacts. Each term is a Model artifact "learn.loss_<what>" whose attrs hold
// beta and the term's settings, so that it is cached and reproducible like any other artifact.
#pragma once

#include <couplet/node.hpp>
#include <couplet/torch_bridge.hpp>

namespace couplet::learn {

/// (a) Water-balance direction: penalises a predicted rise over the previous day's target on days with
/// (near-)zero infiltration and positive transpiration or soil evaporation:
/// mean over the batch of [IF <= if_zero and EV + ES > 0] * relu(pred - prev)^2 / scale^2.
class DirectionLoss final : public LossTerm {
 public:
  explicit DirectionLoss(const Model& m);
  std::vector<std::string> variables() const override { return {infiltration_, transpiration_, evaporation_}; }
  torch::Tensor evaluate(const LossBatch& b) const override;

 private:
  std::string infiltration_, evaporation_, transpiration_;
  double if_zero_ = 0;
};

/// (b) Physical bounds: penalises a prediction below the residual or above the porosity:
/// mean over the batch of (relu(residual - pred)^2 + relu(pred - porosity)^2) / scale^2. The bounds are
/// constants or, when named, day-t variables (NaN there: the constant applies).
class BoundsLoss final : public LossTerm {
 public:
  explicit BoundsLoss(const Model& m);
  std::vector<std::string> variables() const override;
  torch::Tensor evaluate(const LossBatch& b) const override;

 private:
  double residual_ = 0, porosity_ = 1;
  std::string residual_var_, porosity_var_;
};

/// (c) Storage-change consistency with the PB fluxes: (pred - prev) * depth against IF - EV - ES - DR:
/// mean over the batch of ((pred - prev) * depth - (IF - EV - ES - DR))^2 / (scale * depth)^2, over the
/// samples where all of them are known.
class StorageLoss final : public LossTerm {
 public:
  explicit StorageLoss(const Model& m);
  std::vector<std::string> variables() const override { return {inflow_, transpiration_, evaporation_, drainage_}; }
  torch::Tensor evaluate(const LossBatch& b) const override;

 private:
  std::string inflow_, evaporation_, transpiration_, drainage_;
  double depth_ = 1;
};

/// Registers the nodes learn.loss_direction, learn.loss_bounds, learn.loss_storage and their LossTerm types.
void register_loss_terms(Registry& plugin);

}  // namespace couplet::learn
