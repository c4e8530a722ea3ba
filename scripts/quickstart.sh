#!/usr/bin/env bash
# The README's first command: install what is missing, build (release), run the quickstart workflow
# on the bundled USCRN stations, and print the metrics table.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release
run_dir=$(build/release/framework/couplet run workflows/quickstart.toml "$@" | tail -n 1)
echo
echo "Run directory: $run_dir"
cat "$run_dir/report/README.md"
