#!/usr/bin/env python3
"""The ConvLSTM of couplet's learn.convlstm in PyTorch (Debian's python3-torch 1.13.1), trained the same
way: 3 channels, 7 input days, one ConvLSTM cell (gates from one 3x3 convolution over [x, h], 16 hidden
channels, zero padding), a 1x1 convolution to 3 lead maps, Adam 1e-3, NaN-masked MSE, shuffled batches of
16 whole-grid samples, one untimed warm-up epoch; LibTorch and OpenBLAS threads both set to the
thread count. Prints the same line format as bench_convlstm."""
import argparse
import ctypes
import time

import numpy as np
import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    def __init__(self, cin, hidden, k):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 4 * hidden, k, padding=k // 2)

    def forward(self, x, h, c):
        i, f, g, o = self.gates(torch.cat([x, h], 1)).chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class Net(nn.Module):
    def __init__(self, cin=3, hidden=16, k=3, leads=3):
        super().__init__()
        self.encoder = nn.ModuleList([ConvLSTMCell(cin, hidden, k)])
        self.head = nn.Conv2d(hidden, leads, 1)

    def forward(self, x):  # x [B, L, C, H, W]
        B, L, C, H, W = x.shape
        h = x.new_zeros(B, self.encoder[0].hidden, H, W)
        c = torch.zeros_like(h)
        for t in range(L):
            h, c = self.encoder[0](x[:, t], h, c)
        return self.head(h)


def masked_mse(pred, y):
    mask = torch.isfinite(y)
    diff = torch.where(mask, pred - torch.nan_to_num(y), torch.zeros_like(pred))
    return (diff * diff).sum() / mask.sum().clamp_min(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--days", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    H = W = a.size
    L, leads = 7, [3, 5, 7]
    rng = np.random.default_rng(1)
    grids = torch.from_numpy(rng.standard_normal((a.days, 3, H, W), dtype=np.float32))
    issue = np.arange(L - 1, a.days - max(leads))
    x_all = torch.stack([grids[t - L + 1:t + 1] for t in issue])          # [N, L, C, H, W]
    y_all = torch.stack([grids[[t + l for l in leads], 1] for t in issue])  # [N, 3, H, W]
    n = len(issue)
    for item in a.threads.split(","):
        threads = int(item)
        torch.set_num_threads(threads)
        # OpenBLAS keeps its own pool (as many threads as cores) unless told: match couplet's set_threads,
        # which sets both (TOOLCHAIN.md gotcha 2), so that both sides use the same threads.
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(threads)
        torch.manual_seed(7)
        net = Net()
        params = sum(p.numel() for p in net.parameters())
        adam = torch.optim.Adam(net.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(3)
        secs = 0.0
        for epoch in range(a.epochs + 1):
            t0 = time.perf_counter()
            order = torch.randperm(n, generator=g)
            net.train()
            for b in range(0, n, 16):
                idx = order[b:b + 16]
                x, y = x_all[idx], y_all[idx]
                adam.zero_grad()
                loss = masked_mse(net(x), y)
                loss.backward()
                adam.step()
            if epoch > 0:
                secs += time.perf_counter() - t0
        done = n * a.epochs
        print(f"pytorch threads={threads} params={params} samples={done} seconds={secs:.3f} "
              f"samples_per_s={done / secs:.2f}", flush=True)


if __name__ == "__main__":
    main()
