"""Stage 1 on real CIFAR-10N: DivideMix next to a CE baseline trained by the same code, same net and epochs.

    python benchmarks/pretrain_real.py --label_sets worst rand1 --preset cpu --out runs/bench-pretrain

Prints one table: test accuracy (last epoch; ensemble of both nets and net1 alone for DivideMix) and the precision
and recall of DivideMix's final clean split (net1's) against the true labels.
"""
import argparse, time
from dataclasses import replace
from pathlib import Path

from nlmn.core import read_jsonl
from nlmn.data import from_npz
from nlmn.pretrain import pretrain, pretrain_config

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--images', default='../shared/data/cifar10/train_0-19999.npz')
p.add_argument('--labels', default='../shared/data/cifar-n/CIFAR-10_human.pt')
p.add_argument('--test', default='../shared/data/cifar10/test_jpeg.npz')
p.add_argument('--label_sets', nargs='+', default=['worst', 'rand1'])
p.add_argument('--methods', nargs='+', default=['dividemix', 'ce'])
p.add_argument('--preset', default='cpu')
p.add_argument('--out', default='runs/bench-pretrain')
a = p.parse_args()

test = from_npz(a.test, labels_are_clean=True)
rows = []
for label_set in a.label_sets:
    train = from_npz(a.images, a.labels, label_set)
    for method in a.methods:
        cfg = pretrain_config(a.preset, method=method)
        t = time.perf_counter()
        last = pretrain(train, cfg, Path(a.out)/f'{label_set}-{method}', test, quiet=True)
        minutes = (time.perf_counter() - t) / 60
        log = read_jsonl(Path(a.out)/f'{label_set}-{method}'/'metrics.jsonl')
        best = max(r['test_acc'] for r in log)
        rows.append((label_set, f'{train.noise_rate:.2%}', method, f"{last['test_acc']:.2%}", f"{best:.2%}",
                     f"{last.get('test_acc_net1', last['test_acc']):.2%}",
                     f"{last['precision1']:.3f}" if 'precision1' in last else '-', f"{last['recall1']:.3f}" if 'recall1' in last else '-',
                     f"{minutes:.1f}"))
        print(' | '.join(rows[-1]), flush=True)

head = ('label set', 'noise', 'method', 'test acc (last)', 'test acc (best)', 'net1 (last)', 'split precision', 'split recall', 'minutes')
print('\n| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
for r in rows: print('| ' + ' | '.join(r) + ' |')
