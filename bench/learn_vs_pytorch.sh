#!/bin/sh
# couplet's LibTorch learning code against PyTorch in Python, in one run: the paper's LSTM trained on
# the bundled USCRN data (samples/s) and the 5-year windowed rollout of all 54 stations, on 1 and 2
# threads; prints a table with the ratios. From the repository root, after building bench_learn:
#
#   cmake --build --preset release -j1 --target bench_learn
#   bench/learn_vs_pytorch.sh [BUILD_DIR] [THREADS]      # defaults: build/release 1,2
#
# Python is Debian's /usr/bin/python3 with python3-torch (1.13.1), the same LibTorch the C++ links.
set -eu
build=${1:-build/release}
threads=${2:-1,2}
python=${PYTHON:-/usr/bin/python3}
dir=$(mktemp -d /tmp/learn_vs_pytorch.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/bench_learn" --threads "$threads" --out "$dir"
"$python" "$(dirname "$0")/learn_pytorch.py" "$dir" --threads "$threads"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
