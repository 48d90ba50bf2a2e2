"""SimiFeat speed on this machine: one k-NN vote round and 21 rounds over random features, time and peak memory.

    python benchmarks/bench_simifeat.py --n 50000 20000 --dim 512 --rounds 21

Each size runs in its own process so that its peak resident memory (ru_maxrss) is its own; "extra memory" is the
peak during detection minus the resident size once the features exist.
"""
import argparse, json, resource, subprocess, sys, time

CHILD = r'''
import json, resource, sys, time, torch
from nlmn.simifeat import knn_soft_labels, simifeat, vote_rule, SimiFeatConfig
n, dim, rounds = map(int, sys.argv[1:4])
g = torch.Generator().manual_seed(0)
feats, labels = torch.randn(n, dim, generator=g), torch.randint(0, 10, (n,), generator=g)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
flagged = vote_rule(knn_soft_labels(feats, labels, num_classes=10, device='cpu'), labels)
one = time.perf_counter() - t
peak1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
det = simifeat(lambda r: feats, labels, num_classes=10, cfg=SimiFeatConfig(rounds=rounds), device='cpu', quiet=True)
many = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(n=n, dim=dim, one_round_s=one, rounds=rounds, all_rounds_s=many, extra_mb=(peak - base) / 1024,
                      extra_mb_one_round=(peak1 - base) / 1024, threads=torch.get_num_threads())))
'''

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--n', type=int, nargs='+', default=[50000, 20000])
p.add_argument('--dim', type=int, default=512)
p.add_argument('--rounds', type=int, default=21)
a = p.parse_args()
print('| N | D | one round (s) | rounds | all rounds (s) | per round (s) | extra peak memory (MB) | threads |')
print('|---|---|---|---|---|---|---|---|')
for n in a.n:
    child = subprocess.run([sys.executable, '-c', CHILD, str(n), str(a.dim), str(a.rounds)], capture_output=True,
                           text=True, check=True)
    r = json.loads(child.stdout)
    print(f"| {r['n']:,} | {r['dim']} | {r['one_round_s']:.1f} | {r['rounds']} | {r['all_rounds_s']:.1f} "
          f"| {r['all_rounds_s'] / r['rounds']:.1f} | {r['extra_mb']:.0f} | {r['threads']} |", flush=True)
