// couplet framework — content hashes for cache keys, and seed derivation.
#pragma once

#include <couplet/seed.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace couplet::framework {

/// Incremental SHA-1 (Boost.UUID's implementation); hex digest. Used for cache keys, not security.
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher& add(const std::string& field);  ///< length-prefixed, so fields cannot run into each other
  std::string hex();

 private:
  struct Impl;
  Impl* impl_;
};

/// A node's seed is derive_seed(workflow seed, node id): the SDK's derivation, which nodes use too.
using couplet::derive_seed;

/// Identity of what a path names, for cache keys: sizes and modification times of the file, or of
/// every file below a directory (sorted). A missing path gives "missing".
std::string path_fingerprint(const std::filesystem::path& p);

}  // namespace couplet::framework
