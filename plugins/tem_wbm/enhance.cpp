#include "tem_wbm/enhance.hpp"

#include "tem_wbm/kernels.hpp"

#include <couplet/context.hpp>

#include <cmath>
#include <sstream>

namespace couplet::tem_wbm {

void EtEnhancer::evaluate(const double* x, double* out) const {
  et_slot_physics(x, params, options, out);
  double a = w[0], b = w[1 + kEnhanceT.size()];
  for (std::size_t k = 0; k < kEnhanceT.size(); ++k) {
    const auto i = static_cast<std::size_t>(kEnhanceT[k]);
    a += w[1 + k] * (x[i] - mean[i]) / sd[i];
  }
  for (std::size_t k = 0; k < kEnhanceE.size(); ++k) {
    const auto i = static_cast<std::size_t>(kEnhanceE[k]);
    b += w[2 + kEnhanceT.size() + k] * (x[i] - mean[i]) / sd[i];
  }
  out[0] *= std::exp(a);
  out[1] *= std::exp(b);
}

namespace {
// The options et_slot_physics reads, by name, for the Model's config.
struct OptField {
  const char* name;
  double Options::*member;
};
constexpr OptField kOptFields[] = {{"D_open", &Options::D_open}, {"D_close", &Options::D_close},
                                   {"T_open", &Options::T_open}, {"T_close", &Options::T_close},
                                   {"Q50", &Options::Q50},       {"f_par", &Options::f_par},
                                   {"g_bl", &Options::g_bl},     {"g_cut", &Options::g_cut},
                                   {"alpha_pt", &Options::alpha_pt}};
}  // namespace

Model to_model(const EtEnhancer& e) {
  Model m;
  m.type = kEnhancerType;
  std::ostringstream c;
  c.precision(17);
  c << "g_max = " << e.params.g_max << "\ne_r = " << e.params.e_r << "\n";
  for (const auto& f : kOptFields) c << f.name << " = " << e.options.*f.member << "\n";
  c << "et_method = " << (e.options.et_method == EtMethod::PM ? "PM" : "PT") << "\n"
    << "soil_evap = " << (e.options.soil_evap == SoilEvap::PM ? "PM" : "PT") << "\n";
  m.config = c.str();
  m.arrays["feature_mean"] = Variable("feature_mean", {"feature"}, {EtSlot::kFeatures}, std::vector<double>(e.mean.begin(), e.mean.end()));
  m.arrays["feature_sd"] = Variable("feature_sd", {"feature"}, {EtSlot::kFeatures}, std::vector<double>(e.sd.begin(), e.sd.end()));
  m.arrays["w"] = Variable("w", {"coefficient"}, {kEnhanceCoefficients}, e.w,
                           {{"layout", "bias_T, Tair, VPD, SW_d, LAI, beta_T, bias_ES, Tair, A_g, rel_theta1"}});
  return m;
}

EtEnhancer enhancer_from_model(const Model& m) {
  if (m.type != kEnhancerType) throw NodeError("model type '" + m.type + "' is not " + kEnhancerType);
  EtEnhancer e;
  std::stringstream in(m.config);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find(" = ");
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = line.substr(eq + 3);
    auto number = [&](const std::string& text) {
      try {
        return std::stod(text);
      } catch (const std::exception&) {
        throw NodeError(std::string(kEnhancerType) + " model config: '" + k + "' is not a number: '" + text + "'");
      }
    };
    bool known = true;
    if (k == "g_max") e.params.g_max = number(v);
    else if (k == "e_r") e.params.e_r = number(v);
    else if (k == "et_method") e.options.et_method = v == "PM" ? EtMethod::PM : EtMethod::PT;
    else if (k == "soil_evap") e.options.soil_evap = v == "PM" ? SoilEvap::PM : SoilEvap::PT;
    else {
      known = false;
      for (const auto& f : kOptFields)
        if (k == f.name) e.options.*f.member = number(v), known = true;
    }
    if (!known) throw NodeError(std::string(kEnhancerType) + " model config: unknown key '" + k + "'");
  }
  const auto mean = m.array("feature_mean").as_double(), sd = m.array("feature_sd").as_double();
  e.w = m.array("w").as_double();
  if (mean.size() != EtSlot::kFeatures || sd.size() != EtSlot::kFeatures || e.w.size() != kEnhanceCoefficients)
    throw NodeError(std::string(kEnhancerType) + " model: arrays of the wrong size");
  for (std::size_t j = 0; j < EtSlot::kFeatures; ++j)
    if (!std::isfinite(mean[j]) || !(sd[j] > 0) || !std::isfinite(sd[j]))
      throw NodeError(std::string(kEnhancerType) + " model: feature " + std::to_string(j) + " has mean " + std::to_string(mean[j]) +
                      " and sd " + std::to_string(sd[j]) + " (a positive finite sd is needed)");
  for (double w : e.w)
    if (!std::isfinite(w)) throw NodeError(std::string(kEnhancerType) + " model: a coefficient is not finite");
  std::copy(mean.begin(), mean.end(), e.mean.begin());
  std::copy(sd.begin(), sd.end(), e.sd.begin());
  return e;
}

}  // namespace couplet::tem_wbm
