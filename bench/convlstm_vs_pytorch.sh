#!/bin/sh
# ConvLSTM training throughput: couplet (learn::grid::train_grid, LibTorch 1.13 C++) against the same
# network and loop in PyTorch (Debian's python3-torch 1.13.1), same threads, in one run; the two sides
# alternate for ROUNDS rounds (this 2-core VM's throughput moves by ±20 % from run to run) and the table
# gives each side's median and the ratio of medians. From the repository root, after building bench_convlstm:
#
#   cmake --build --preset release -j1 --target bench_convlstm
#   bench/convlstm_vs_pytorch.sh [BUILD_DIR] [THREADS] [SIZE] [ROUNDS]    # defaults: build/release 1,2 32 3
set -eu
build=${1:-build/release}
threads=${2:-1,2}
size=${3:-32}
rounds=${4:-3}
python=${PYTHON:-/usr/bin/python3}
out=$(mktemp /tmp/convlstm_vs_pytorch.XXXXXX)
trap 'rm -f "$out"' EXIT
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); grid ${size} x ${size}, 7 days x 3 channels, hidden 16, batch 16, ${rounds} rounds"
r=1
while [ "$r" -le "$rounds" ]; do
  "$build/bench/bench_convlstm" --threads "$threads" --size "$size" | tee -a "$out"
  "$python" "$(dirname "$0")/convlstm_pytorch.py" --threads "$threads" --size "$size" | tee -a "$out"
  r=$((r + 1))
done
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "| threads | couplet samples/s (median) | PyTorch samples/s (median) | couplet / PyTorch |"
echo "|---|---|---|---|"
for t in $(echo "$threads" | tr ',' ' '); do
  c=$(grep "^couplet threads=$t " "$out" | sed 's/.*samples_per_s=//' | median)
  p=$(grep "^pytorch threads=$t " "$out" | sed 's/.*samples_per_s=//' | median)
  echo "| $t | $c | $p | $(awk -v c="$c" -v p="$p" 'BEGIN { printf "%.2f", c / p }') |"
done
