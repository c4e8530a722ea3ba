#!/usr/bin/python3
"""The Python half of bench/learn_vs_pytorch.sh: the paper's LSTM in PyTorch, written the way a
researcher writes it, on the data bench_learn wrote (same samples, same rollout inputs, couplet's
trained weights for the rollout so that its predictions can be checked against couplet's).

    /usr/bin/python3 bench/learn_pytorch.py DIR [--threads 1,2]

Training: a loop over shuffled mini-batches (no DataLoader), Adam, MSE. Rollout "the way the paper
describes": for each site, for each day, build the k-day window [lagged SSM, drivers, statics], re-feed
the last prediction, call the model on that one window (batch 1). Also timed: a sites-batched variant
(one call per day on the windows of all sites, which is what couplet does). Prints JSON lines, writes
DIR/python.json and, when DIR/couplet.json exists, a table of the ratios.
"""
import argparse
import ctypes
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn


class LSTMNet(nn.Module):
    """One LSTM layer (batch_first), dropout, linear head on the last hidden state — couplet's NetImpl
    for kind = lstm (module names as there, so the state_dict keys match couplet's parameter names)."""

    def __init__(self, n_features, hidden, dropout):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(self.drop(h[-1])).squeeze(1)


def set_threads(n, blas):
    """torch.set_num_threads(n); with blas = "match" also OpenBLAS's own pool, as couplet's set_threads
    does (torch.set_num_threads does not touch it: OpenBLAS otherwise runs as many threads as cores)."""
    torch.set_num_threads(n)
    if blas == "match":
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(n)  # the copy torch loaded (same soname)


def train(model, X, y, epochs, batch, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    n = X.shape[0]
    loss_sum = 0.0
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n)
        loss_sum = 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
    return loss_sum / n


def rollout_per_site(model, x, lag0, k):
    """For each site, for each day: the k-day window with the re-fed predictions, one model call."""
    S, T, _ = x.shape
    pred = np.full((S, T), np.nan, dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for s in range(S):
            lag = np.zeros(T, dtype=np.float32)  # the target as the model sees it
            lag[:k] = lag0[s]
            for t in range(k, T):
                window = np.empty((k, x.shape[2] + 1), dtype=np.float32)
                window[:, 0] = lag[t - k:t]          # target(d-1) for d = t-k+1 .. t
                window[:, 1:] = x[s, t - k + 1:t + 1]  # drivers(d), statics
                p = model(torch.from_numpy(window).unsqueeze(0)).item()
                lag[t] = p
                pred[s, t] = p
    return pred


def rollout_batched(model, x, lag0, k):
    """The same rollout with the sites batched: one model call per day on all sites' windows."""
    S, T, _ = x.shape
    xt = torch.from_numpy(x)
    lag = torch.zeros(S, T)
    lag[:, :k] = torch.from_numpy(lag0)
    pred = torch.full((S, T), float("nan"))
    model.eval()
    with torch.no_grad():
        for t in range(k, T):
            window = torch.cat([lag[:, t - k:t].unsqueeze(2), xt[:, t - k + 1:t + 1]], dim=2)
            p = model(window)
            lag[:, t] = p
            pred[:, t] = p
    return pred.numpy()


def table(couplet, python):
    rows = []
    head = ("threads", "couplet train samples/s", "python train samples/s", "ratio (target >= 1.5)",
            "couplet windowed rollout s", "python per-site rollout s", "ratio (target >= 10)",
            "python sites-batched rollout s", "ratio", "couplet stateful rollout s")
    by_threads = {r["threads"]: r for r in python["runs"]}
    for c in couplet["runs"]:
        p = by_threads.get(c["threads"])
        if p is None:
            continue
        rows.append((str(c["threads"]),
                     "%.0f" % c["train_samples_per_s"], "%.0f" % p["train_samples_per_s"],
                     "%.2f" % (c["train_samples_per_s"] / p["train_samples_per_s"]),
                     "%.3f" % c["rollout_windowed_s"], "%.2f" % p["rollout_per_site_s"],
                     "%.1f" % (p["rollout_per_site_s"] / c["rollout_windowed_s"]),
                     "%.3f" % p["rollout_batched_s"],
                     "%.2f" % (p["rollout_batched_s"] / c["rollout_windowed_s"]),
                     "%.3f" % c["rollout_stateful_s"]))
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--blas-threads", choices=["match", "default"], default="match",
                    help="match: OpenBLAS gets the same thread count as torch (as in couplet); "
                         "default: leave OpenBLAS at its own default (one thread per core)")
    args = ap.parse_args()
    d = args.dir
    meta = json.load(open(os.path.join(d, "meta.json")))
    N, k, F, H = meta["samples"], meta["seq_len"], meta["features"], meta["hidden"]
    S, T = meta["sites"], meta["days"]
    X = torch.from_numpy(np.fromfile(os.path.join(d, "train_seq.f32"), dtype=np.float32).reshape(N, k, F))
    y = torch.from_numpy(np.fromfile(os.path.join(d, "train_y.f32"), dtype=np.float32))
    x = np.fromfile(os.path.join(d, "rollout_x.f32"), dtype=np.float32).reshape(S, T, F - 1)
    lag0 = np.fromfile(os.path.join(d, "rollout_lag0.f32"), dtype=np.float32).reshape(S, k)
    ref = np.fromfile(os.path.join(d, "couplet_windowed.f32"), dtype=np.float32).reshape(S, T)

    trained = LSTMNet(F, H, meta["dropout"])
    state = {}
    for name in meta["params"]:
        shape = trained.state_dict()[name].shape
        state[name] = torch.from_numpy(np.fromfile(os.path.join(d, "param_%s.f32" % name), dtype=np.float32)
                                       .reshape(shape))
    trained.load_state_dict(state)
    n_params = sum(p.numel() for p in trained.parameters())
    print(json.dumps({"side": "python", "torch": torch.__version__, "model": "lstm", "features": F, "seq_len": k,
                      "hidden": H, "batch": meta["batch"], "parameters": n_params, "samples": N,
                      "epochs": meta["epochs"], "sites": S, "days": T}), flush=True)
    if n_params != meta["parameters"]:
        sys.exit("parameter count differs from couplet's (%d vs %d)" % (n_params, meta["parameters"]))

    runs = []
    for n_threads in [int(t) for t in args.threads.split(",")]:
        set_threads(n_threads, args.blas_threads)
        torch.manual_seed(42)
        model = LSTMNet(F, H, meta["dropout"])
        t0 = time.perf_counter()
        loss = train(model, X, y, meta["epochs"], meta["batch"], meta["lr"])
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p1 = rollout_per_site(trained, x, lag0, k)
        per_site_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        p2 = rollout_batched(trained, x, lag0, k)
        batched_s = time.perf_counter() - t0
        r = {"threads": n_threads, "blas_threads": args.blas_threads, "train_samples_per_s": meta["epochs"] * N / train_s, "train_s": train_s,
             "final_loss": loss, "rollout_per_site_s": per_site_s, "rollout_batched_s": batched_s,
             "max_abs_diff_per_site_vs_couplet": float(np.nanmax(np.abs(p1[:, k:] - ref[:, k:]))),
             "max_abs_diff_batched_vs_couplet": float(np.nanmax(np.abs(p2[:, k:] - ref[:, k:])))}
        print(json.dumps(dict(side="python", **r)), flush=True)
        runs.append(r)
    python = {"torch": torch.__version__, "parameters": n_params, "runs": runs}
    json.dump(python, open(os.path.join(d, "python.json"), "w"))
    cj = os.path.join(d, "couplet.json")
    if os.path.exists(cj):
        print()
        print(table(json.load(open(cj)), python))


if __name__ == "__main__":
    main()
