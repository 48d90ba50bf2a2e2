"""Backbones and training recipes at equal CPU time, chosen on held-out training images (never the test set).

CE on the clean labels of the first `--ntrain` images of an npz, scored every epoch on the last `--n_val` images of the
same npz with their *noisy* labels (`--val_labels`, e.g. aggre). One trial per line of `TRIALS` (or the settings given
on the command line), one after the other; prints one JSON line per trial and a table.

    python benchmarks/bench_backbones.py --images ../shared/data/cifar10/train_0-19999.npz \
        --label_file ../shared/data/cifar-n/CIFAR-10_human.pt
"""
import argparse, json, tempfile, time
import nlmn  # before torch: OpenMP's wait policy
import torch
from nlmn.data import from_npz
from nlmn.pretrain import pretrain, pretrain_config

RECIPE = dict(lr_schedule='linear', nesterov=True, label_smoothing=0.2, tta=True, lr=0.1)  # fast-CIFAR settings
TRIALS = {  # name: PretrainConfig overrides (on the `cpu` preset, method 'ce', warm_up 0)
    'fastnet_tiny step 8': dict(arch='fastnet_tiny', epochs=8, lr_decay_epoch=6, lr=0.05),
    'whitenet_small step 8': dict(arch='whitenet_small', epochs=8, lr_decay_epoch=6, lr=0.05),
    'whitenet_small recipe 8': dict(arch='whitenet_small', epochs=8, **RECIPE),
    'fastnet_tiny recipe 8': dict(arch='fastnet_tiny', epochs=8, **RECIPE),
    'fastnet_tiny recipe 20': dict(arch='fastnet_tiny', epochs=20, **RECIPE),
}

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--images', required=True); ap.add_argument('--label_file', required=True)
    ap.add_argument('--val_labels', default='aggre'); ap.add_argument('--ntrain', type=int, default=10_000)
    ap.add_argument('--n_val', type=int, default=2_000); ap.add_argument('--trials', nargs='*', default=list(TRIALS))
    args = ap.parse_args()
    clean = from_npz(args.images, args.label_file, 'clean')
    noisy = from_npz(args.images, args.label_file, args.val_labels)
    n = len(clean)
    if args.ntrain + args.n_val > n: raise SystemExit(f"{args.images}: {n} images, fewer than --ntrain + --n_val")
    train, val = clean.subset(torch.arange(args.ntrain)), noisy.subset(torch.arange(n - args.n_val, n))
    val.clean_labels = val.noisy_labels.clone()  # `pretrain` scores its `test` against these: the noisy labels
    rows = []
    for name in args.trials:
        cfg = pretrain_config('cpu', method='ce', warm_up=0, **TRIALS[name])
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as d: last = pretrain(train, cfg, d, test=val, quiet=True, resume=False)
        rows.append(dict(trial=name, val_acc=round(100 * last['test_acc'], 2),
                         minutes=round((time.perf_counter() - t) / 60, 2)))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n| trial | val acc ({args.val_labels} labels, %) | minutes |\n|---|---|---|")
    for r in rows: print(f"| {r['trial']} | {r['val_acc']:.2f} | {r['minutes']:.2f} |")

if __name__ == '__main__': main()
