"""Stage 4 on real CIFAR-10N: fine-tune the stage-1 net1 on the stage-3 split, then detect on the fine-tuned model.

    python benchmarks/finetune_real.py --label_sets worst rand1 --preset cpu

Needs benchmarks/pretrain_real.py (net1) and benchmarks/detect_real.py (the report's pre-finetuning detection:
SimiFeat-vote, flagged if judged clean in ≤ 80% of rounds). Prints test accuracy (last and best epoch) next to the
net1 it started from, and SimiFeat-vote (majority, 21 rounds, no rotation) F1 on the fine-tuned model's features.
"""
import argparse, time
from pathlib import Path

from nlmn.core import read_jsonl
from nlmn.data import from_npz
from nlmn.finetune import detect_with, finetune, finetune_config
from nlmn.review import apply_decisions
from nlmn.simifeat import Detection, detection_metrics

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--images', default='../shared/data/cifar10/train_0-19999.npz')
p.add_argument('--labels', default='../shared/data/cifar-n/CIFAR-10_human.pt')
p.add_argument('--test', default='../shared/data/cifar10/test_jpeg.npz')
p.add_argument('--label_sets', nargs='+', default=['worst', 'rand1'])
p.add_argument('--pretrained', default='runs/bench-pretrain')
p.add_argument('--detections', default='runs/bench-detect')
p.add_argument('--preset', default='cpu')
p.add_argument('--out', default='runs/bench-finetune')
a = p.parse_args()

test = from_npz(a.test, labels_are_clean=True)
rows = []
for label_set in a.label_sets:
    ds = from_npz(a.images, a.labels, label_set)
    pre = Path(a.pretrained)/f'{label_set}-dividemix'
    net1_acc = read_jsonl(pre/'metrics.jsonl')[-1]['test_acc_net1']
    det = Detection.load(Path(a.detections)/label_set/'detection_vote_0.8.npz')
    split = apply_decisions(det, {}, ds.noisy_labels)  # no review: the detector's split
    cfg = finetune_config(a.preset)
    t = time.perf_counter()
    res = finetune(ds, split, cfg, Path(a.out)/label_set, init=pre/'net1.pt', test=test, quiet=True)
    minutes = (time.perf_counter() - t) / 60
    final = detect_with(Path(a.out)/label_set/'final.pt', ds, cfg.arch, rounds=21, cache=Path(a.out)/label_set/'features', quiet=True)
    final.save(Path(a.out)/label_set/'detection_final.npz')
    m = detection_metrics(final.flagged, ds.noisy_labels.numpy(), ds.clean_labels.numpy())
    rows.append((label_set, f'{ds.noise_rate:.2%}', f"{int(split.labeled.sum()):,} / {int(split.unlabeled.sum()):,}", f'{net1_acc:.2%}',
                 f"{res['test_acc_last']:.2%}", f"{res['test_acc_best']:.2%} (epoch {res['best_epoch']})", f"{m['f1']:.4f}", f"{m['precision']:.4f}", f"{m['recall']:.4f}",
                 f"{res['train_images_per_s']:.0f}", f'{minutes:.1f}'))
    print(' | '.join(rows[-1]), flush=True)

head = ('label set', 'noise', 'kept / removed', 'net1 test acc (start)', 'fine-tuned (last epoch)', 'fine-tuned (best epoch)', 'final detection F1', 'precision', 'recall', 'train images/s', 'minutes')
print('\n| ' + ' | '.join(head) + ' |\n|' + '---|' * len(head))
for r in rows: print('| ' + ' | '.join(r) + ' |')
