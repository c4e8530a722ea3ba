#!/bin/sh
# couplet's clustering against scikit-learn, in one run, on the same standardised 56,112 x 10 feature
# matrix (a global-size synthetic world through cluster.features): the exact silhouette of one clustering,
# and the initialisation search (MiniBatch k-means + a silhouette per initialisation). From the repository
# root, after building:
#
#   cmake --build --preset release -j2
#   bench/cluster_vs_sklearn.sh [BUILD_DIR] [THREADS] [COUPLET_INITS] [SKLEARN_INITS]
#                                # defaults: build/release 2 2000 10
#
# Python is Debian's /usr/bin/python3 with python3-sklearn (1.2.1).
set -eu
build=${1:-build/release}
threads=${2:-2}
inits=${3:-2000}
py_inits=${4:-10}
python=${PYTHON:-/usr/bin/python3}
here=$(dirname "$0")
dir=$(mktemp -d /tmp/cluster_vs_sklearn.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "# machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/framework/couplet" run -q "$here/cluster_features56k.toml" --runs-dir "$dir/runs" -t "$threads" >/dev/null
features="$dir/runs/features56k/latest/report/features.features.csv"
echo "## couplet"
"$build/bench/bench_cluster" --features "$features" --out "$dir" --threads "$threads" --inits "$inits"
echo "## scikit-learn"
OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads "$python" "$here/cluster_sklearn.py" "$features" "$dir" --inits "$py_inits"
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
