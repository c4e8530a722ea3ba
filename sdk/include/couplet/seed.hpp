// couplet SDK — deriving seeds. The executor gives each node a seed derived from the workflow seed and
// the node id; a node that needs independent streams (per site, fold, cluster) derives them the same
// way from its own seed, so results depend on names, not on thread counts or processing order.
#pragma once

#include <cstdint>
#include <string>

namespace couplet {

/// A child seed from a parent seed and a name: FNV-1a over the name, mixed with the parent by
/// splitmix64 — cheap, stable across platforms and runs, well spread.
inline std::uint64_t derive_seed(std::uint64_t parent, const std::string& name) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  std::uint64_t z = parent + 0x9E3779B97F4A7C15ULL * (h | 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace couplet
