// couplet SDK — LibTorch bridge for learning plugins (optional: only they include it).
//
// Dataset variables become tensors without copying (the tensor keeps the artifact alive), and the
// plugin's thread hook sets LibTorch's intra-op threads to what the executor chose.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/context.hpp>
#include <couplet/node.hpp>

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace couplet {

/// A read-only tensor over a variable's storage (float32 → kFloat, float64 → kDouble), shaped like the
/// variable. `owner` (the artifact holding the variable) is kept alive for as long as the tensor
/// lives. The tensor must not be written to: artifacts are immutable. Strings are refused.
inline torch::Tensor as_tensor(const Variable& v, std::shared_ptr<const Artifact> owner) {
  std::vector<int64_t> shape(v.shape().begin(), v.shape().end());
  auto keep = [owner](void*) mutable { owner.reset(); };
  switch (v.dtype()) {
    case DType::Float32:
      return torch::from_blob(const_cast<float*>(v.values<float>().data()), shape, keep, torch::kFloat);
    case DType::Float64:
      return torch::from_blob(const_cast<double*>(v.values<double>().data()), shape, keep, torch::kDouble);
    case DType::String: break;
  }
  throw std::invalid_argument("variable '" + v.name() + "' holds strings; it has no tensor view");
}

/// Copies a tensor (any float dtype, any device, any layout) into a new float32 Variable.
inline Variable to_variable(const torch::Tensor& t, std::string name, std::vector<std::string> dims,
                            Attributes attrs = {}) {
  auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
  std::vector<std::size_t> shape(c.sizes().begin(), c.sizes().end());
  std::vector<float> values(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return Variable(std::move(name), std::move(dims), std::move(shape), std::move(values), std::move(attrs));
}

/// Registers the thread hook a LibTorch plugin needs: call once in COUPLET_PLUGIN's body.
inline void use_executor_threads(Registry& plugin) {
  plugin.on_threads([](int n) { at::set_num_threads(n); });
}

// --- physics loss terms --------------------------------------------------------------------------
//
// A trainer minimises L = L_d + alpha R(w) + sum_i beta_i L_phy,i. Each L_phy,i is a LossTerm: a Model
// artifact (type, attrs, arrays: plain data, cached like any artifact) whose plugin registers a factory
// that turns it into an object computing the term on a mini-batch. The trainer only knows this interface,
// so a plugin adds a term without touching the trainer (docs/plugin-authors.md, "Adding a loss term").

/// What a loss term sees of one mini-batch of B samples. Every tensor is float32 of shape [B] in the
/// target's physical units (e.g. m3 m-3 for SSM). NaN marks a missing value: a term must mask it (a NaN
/// in the returned loss poisons the whole step).
struct LossBatch {
  torch::Tensor predicted;  ///< the model's prediction of the target on day t (carries the gradient)
  torch::Tensor previous;   ///< the target on day t-1 as the model was fed it (observed, short gaps filled)
  torch::Tensor observed;   ///< the label: the observed target on day t
  double target_scale = 1;  ///< the target's standard deviation over the training days: divide by it
                            ///< (squared for squared differences) to make a term unit-free
  std::map<std::string, torch::Tensor> variables;  ///< day-t values of the variables() the term asked for

  /// variables.at(name) with an error that names the variable.
  const torch::Tensor& variable(const std::string& name) const {
    auto it = variables.find(name);
    if (it == variables.end())
      throw std::out_of_range("loss term: the batch has no variable '" + name + "' (list it in variables())");
    return it->second;
  }
};

/// One physics constraint L_phy(batch). The trainer multiplies it by the artifact's `beta` attribute.
class LossTerm {
 public:
  virtual ~LossTerm() = default;
  /// Variables the term reads on day t, looked up by name in the trainer's `physics` input (else its
  /// `features`); the trainer reports a missing one naming the term and the variable.
  virtual std::vector<std::string> variables() const { return {}; }
  /// A scalar (0-dimensional) tensor, differentiable with respect to batch.predicted.
  virtual torch::Tensor evaluate(const LossBatch& batch) const = 0;
};

/// The LossTerm of a Model artifact, from the plugin that registered its type (NodeError if none does).
inline std::shared_ptr<LossTerm> loss_term(const Context& ctx, const Model& m) {
  return std::static_pointer_cast<LossTerm>(ctx.loss_term_object(m));
}

/// The ModelFactory that registers T (constructible from `const Model&`) as the LossTerm of `type`:
/// `plugin.model_type(loss_term_type<MyTerm>("myplugin.loss_x"));`
template <class T>
ModelFactory loss_term_type(std::string type) {
  ModelFactory f;
  f.type = std::move(type);
  f.loss_term = [](const Model& m) -> std::shared_ptr<void> {
    return std::static_pointer_cast<void>(std::static_pointer_cast<LossTerm>(std::make_shared<T>(m)));
  };
  return f;
}

}  // namespace couplet
