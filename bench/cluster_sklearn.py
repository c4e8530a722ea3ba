"""scikit-learn's half of bench/cluster_vs_sklearn.sh, on the same standardised feature matrix.

Measures, with the threads given (OMP/OpenBLAS):
  1. silhouette_score (exact) of couplet's clustering `labels_one.i32`, and the value couplet got;
  2. per initialisation: MiniBatchKMeans(n_clusters=k, n_init=1, batch_size=1024) + silhouette_score with
     sample_size=5000 (what a Python search over initialisations does), over --inits initialisations;
  3. the sampled silhouette's error against couplet's exact silhouette on couplet's candidate labelings
     (accuracy.csv + labels_<r>.i32), to compare with the error of couplet's screening score.
Prints key = value lines.
"""
import argparse
import csv
import os
import sys
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("features")
    ap.add_argument("dir")
    ap.add_argument("--inits", type=int, default=10)
    ap.add_argument("--k", type=int, default=11)
    a = ap.parse_args()
    import sklearn
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    with open(a.features) as f:
        r = csv.reader(f)
        header = next(r)
        use = [j for j, h in enumerate(header) if h not in ("site", "lat", "lon")]
        X = np.array([[float(row[j]) for j in use] for row in r])
    X = StandardScaler().fit_transform(X)
    print(f"sklearn = {sklearn.__version__}\npoints = {X.shape[0]}\nfeatures = {X.shape[1]}")

    labels = np.fromfile(os.path.join(a.dir, "labels_one.i32"), dtype=np.int32)
    t = time.perf_counter()
    s = silhouette_score(X, labels)
    print(f"exact_silhouette = {s:.12f}\nexact_silhouette_s = {time.perf_counter() - t:.3f}")

    t = time.perf_counter()
    steps = 0
    best = -1.0
    for seed in range(a.inits):
        m = MiniBatchKMeans(n_clusters=a.k, n_init=1, batch_size=1024, random_state=seed).fit(X)
        steps += m.n_steps_
        best = max(best, silhouette_score(X, m.labels_, sample_size=5000, random_state=seed))
    el = time.perf_counter() - t
    print(f"search_inits = {a.inits}\nsearch_s = {el:.3f}\nsearch_ms_per_init = {1000 * el / a.inits:.1f}\n"
          f"minibatch_mean_steps = {steps / a.inits:.1f}\npaper_100000_inits_h = {el / a.inits * 1e5 / 3600:.2f}")

    from scipy.stats import spearmanr
    errs, exact, sampled_all, centre = [], [], [], []
    with open(os.path.join(a.dir, "accuracy.csv")) as f:
        for row in csv.DictReader(f):
            lab = np.fromfile(os.path.join(a.dir, f"labels_{row['candidate']}.i32"), dtype=np.int32)
            sampled = silhouette_score(X, lab, sample_size=5000, random_state=int(row["candidate"]))
            errs.append(abs(sampled - float(row["exact"])))
            exact.append(float(row["exact"]))
            centre.append(float(row["centre"]))
            sampled_all.append(sampled)
    if errs:
        best = int(np.argmax(exact))
        rank_by = lambda v: int(np.sum(np.array(v) > v[best])) + 1  # 1 = ranked first
        print(f"sampled5000_vs_exact_mean_abs = {np.mean(errs):.5f}\nsampled5000_vs_exact_max_abs = {np.max(errs):.5f}\n"
              f"sampled5000_vs_exact_spearman = {spearmanr(sampled_all, exact).correlation:.3f}\n"
              f"best_exact_candidate_rank_by_sampled5000 = {rank_by(sampled_all)}\n"
              f"best_exact_candidate_rank_by_centre = {rank_by(centre)}\n"
              f"exact_spread_over_candidates = {np.max(exact) - np.min(exact):.5f}")


if __name__ == "__main__":
    sys.exit(main())
