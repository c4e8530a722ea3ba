// couplet SDK — zero-copy Eigen views of Dataset variables (optional; include where Eigen is used).
#pragma once

#include <couplet/artifact.hpp>

#include <Eigen/Core>

#include <stdexcept>

namespace couplet {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A read-only row-major matrix view of a 2-D variable (e.g. site × time: one row per site).
template <class T>
Eigen::Map<const RowMatrix<T>> eigen_matrix(const Variable& v) {
  if (v.shape().size() != 2)
    throw std::invalid_argument("variable '" + v.name() + "' has " + std::to_string(v.shape().size()) +
                                " dimensions; a matrix view needs 2");
  const auto& data = v.values<T>();
  return {data.data(), static_cast<Eigen::Index>(v.shape()[0]), static_cast<Eigen::Index>(v.shape()[1])};
}

/// A read-only vector view of any variable's values (flattened, row-major).
template <class T>
Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>> eigen_vector(const Variable& v) {
  const auto& data = v.values<T>();
  return {data.data(), static_cast<Eigen::Index>(data.size())};
}

}  // namespace couplet
