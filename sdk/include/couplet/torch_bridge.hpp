// couplet SDK — LibTorch bridge for learning plugins (optional: only they include it).
//
// Dataset variables become tensors without copying (the tensor keeps the artifact alive), and the
// plugin's thread hook sets LibTorch's intra-op threads to what the executor chose.
#pragma once

#include <couplet/artifact.hpp>
#include <couplet/node.hpp>

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <memory>
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

}  // namespace couplet
