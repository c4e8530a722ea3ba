// The ET enhancer (Shen & Zhang method 4, the "enhancer" form of model replacement): the ET slot's physics
// multiplied by learned log-linear factors of the slot's own features, exp(w · z), fitted to observed SSM
// *through the model* (every candidate runs the water balance over the training sites; differential
// evolution minimises the SSM RMSE). Pure code; the node tem_wbm.enhance_et and the Model type
// tem_wbm.et_enhancer are registered in plugin.cpp.
#pragma once

#include "tem_wbm/model.hpp"

#include <couplet/artifact.hpp>

#include <array>
#include <string>
#include <vector>

namespace couplet::tem_wbm {

/// Features (indices into the ET slot's 12) that scale each demand. Transpiration: Tair, VPD, SW_d, LAI,
/// β_T; soil evaporation: Tair, A_g, θ₁/θ_fc,₁. One bias each: 10 coefficients.
inline constexpr std::array<int, 5> kEnhanceT{0, 1, 2, 3, 8};
inline constexpr std::array<int, 3> kEnhanceE{0, 5, 9};
inline constexpr std::size_t kEnhanceCoefficients = 1 + kEnhanceT.size() + 1 + kEnhanceE.size();

struct EtEnhancer {
  Params params;    ///< g_max, e_r used by the wrapped physics
  Options options;  ///< the ET options of the wrapped physics
  std::array<double, EtSlot::kFeatures> mean{}, sd{};  ///< feature standardisation
  std::vector<double> w = std::vector<double>(kEnhanceCoefficients, 0.0);  ///< [bT, wT..., bE, wE...]
  void evaluate(const double* x, double* out) const;
};

/// The ET slot calling an enhancer.
struct EnhancedEtSlot : EtSlot {
  explicit EnhancedEtSlot(const EtEnhancer& e) : enhancer(e) {}
  void evaluate(const double* x, double* out) const override { enhancer.evaluate(x, out); }
  EtEnhancer enhancer;
};

inline constexpr const char* kEnhancerType = "tem_wbm.et_enhancer";
Model to_model(const EtEnhancer& e);
EtEnhancer enhancer_from_model(const Model& m);

}  // namespace couplet::tem_wbm
