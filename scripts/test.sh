#!/usr/bin/env bash
# The README's second command (and what CI runs): install what is missing, build, run every test.
# Usage: scripts/test.sh [preset]   preset: release (default), debug, asan
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"

scripts/deps.sh --test
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset" -j "$(nproc)"
