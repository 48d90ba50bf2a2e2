"""k-NN at scale: the exact chunked k-NN against the FAISS backend (IVF-Flat) of `nlmn.simifeat.knn`.

    python benchmarks/bench_knn.py --n 200000 --dim 512

Features: unit vectors from 10 classes × `--modes` sub-clusters each, with Gaussian spread (what penultimate-layer
features of a trained net look like, roughly), and noisy labels with 20 % pair flips. Prints seconds, recall@k of
the exact neighbours, and how often SimiFeat's vote rule flags the same samples with either k-NN.
"""
import argparse, time

import nlmn  # first: thread settings
import torch
import torch.nn.functional as F

from nlmn.simifeat import knn, soft_labels, vote_rule


def features(n:int, dim:int, modes:int, spread:float, seed:int=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.arange(n) % 10
    mode = torch.randint(modes, (n,), generator=g)
    centres = F.normalize(torch.randn(10, dim, generator=g), dim=1)
    offsets = 0.6 * F.normalize(torch.randn(10, modes, dim, generator=g), dim=2)
    f = centres[clean] + offsets[clean, mode] + spread * torch.randn(n, dim, generator=g) / dim ** 0.5
    flip = torch.rand(n, generator=g) < 0.2
    return f, torch.where(flip, (clean + 1) % 10, clean)


def recall(exact:torch.Tensor, approx:torch.Tensor) -> float:
    "Mean share of each sample's exact k neighbours that the approximate list holds."
    hit = (approx[:, :, None] == exact[:, None, :]).any(1).float()
    return hit.mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--n', type=int, default=200_000); ap.add_argument('--dim', type=int, default=512)
    ap.add_argument('--k', type=int, default=10); ap.add_argument('--modes', type=int, default=20)
    ap.add_argument('--spread', type=float, default=1.0)
    ap.add_argument('--nprobe', type=int, nargs='+', default=[8, 32, 128])
    a = ap.parse_args()
    f, y = features(a.n, a.dim, a.modes, a.spread)
    print(f"N = {a.n:,} × {a.dim}, k = {a.k}, {torch.get_num_threads()} threads")
    t = time.perf_counter(); s, i = knn(f, k=a.k, device='cpu'); exact_s = time.perf_counter() - t
    flags = vote_rule(soft_labels(s, i, y, num_classes=10), y)
    print(f"| k-NN | seconds | recall of the {a.k - 1} exact neighbours | vote flags as exact |\n|---|---|---|---|")
    print(f"| exact (chunked) | {exact_s:.1f} | 1.0000 | 100.00 % |")
    for nprobe in a.nprobe:
        t = time.perf_counter(); s2, i2 = knn(f, k=a.k, backend='faiss', nprobe=nprobe); sec = time.perf_counter() - t
        same = (vote_rule(soft_labels(s2, i2, y, num_classes=10), y) == flags).float().mean().item()
        print(f"| faiss IVF-Flat, nprobe {nprobe} | {sec:.1f} | {recall(i[:, 1:], i2[:, 1:]):.4f} | {100 * same:.2f} % |")


if __name__ == '__main__': main()
