"""Stage 3 on real CIFAR-10N: SimiFeat vote and rank on the features of the stage-1 net1, next to other detectors.

    python benchmarks/detect_real.py --label_sets aggre rand1 worst --pretrained runs/bench-pretrain --out runs/bench-detect

Needs the stage-1 runs of benchmarks/pretrain_real.py (`{pretrained}/{label_set}-dividemix/net1.pt` and `split.npz`).
Features: 21 rounds of crop + flip + ±15° rotation (the report's stage 3), cached per round. Prints one markdown
table per label set (precision, recall, F1 against the true labels; positive = corrupted) and saves the detections.
"""
import argparse, json, time
from pathlib import Path

import numpy as np, torch
from nlmn.augment import simifeat_augment
from nlmn.data import from_npz
from nlmn.models import create_model, load_weights
from nlmn.representations import FeatureRounds, extract_features
from nlmn.simifeat import (SimiFeatConfig, cleanlab_detector, compare_detectors, detection_metrics, disagreement_detector,
                           format_table, gmm_detector, simifeat)

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument('--images', default='../shared/data/cifar10/train_0-19999.npz')
p.add_argument('--labels', default='../shared/data/cifar-n/CIFAR-10_human.pt')
p.add_argument('--label_sets', nargs='+', default=['aggre', 'rand1', 'worst'])
p.add_argument('--pretrained', default='runs/bench-pretrain')
p.add_argument('--arch', default='fastnet_tiny')
p.add_argument('--rounds', type=int, default=21)
p.add_argument('--out', default='runs/bench-detect')
a = p.parse_args()

for label_set in a.label_sets:
    ds = from_npz(a.images, a.labels, label_set)
    pre, out = Path(a.pretrained)/f'{label_set}-dividemix', Path(a.out)/label_set
    net = load_weights(create_model(a.arch, 10), pre/'net1.pt')
    mean, std = ds.normalization
    rounds = FeatureRounds(net, ds.images, simifeat_augment(mean, std, rotate=15.), seed=0, cache=out/'features')
    noisy, clean = ds.noisy_labels.numpy(), ds.clean_labels.numpy()
    flags, seconds = {}, {}
    for name, cfg in {'SimiFeat-V (majority)': SimiFeatConfig('vote', rounds=a.rounds, threshold=0.5),
                      'SimiFeat-V (report, ≤0.8)': SimiFeatConfig('vote', rounds=a.rounds, threshold=0.8),
                      'SimiFeat-R (majority)': SimiFeatConfig('rank', rounds=a.rounds, threshold=0.5)}.items():
        t = time.perf_counter()
        det = simifeat(rounds, ds.noisy_labels, 10, cfg, quiet=True)
        seconds[name] = time.perf_counter() - t
        det.save(out/f"detection_{cfg.method}_{cfg.threshold}.npz")
        flags[name] = det.flagged
        m = detection_metrics(det.flagged, noisy, clean, det.suggested, 10)
        print(f"{label_set} {name}: F1 {m['f1']:.4f} P {m['precision']:.4f} R {m['recall']:.4f} suggested-label accuracy on flags {m.get('suggested_acc', float('nan')):.3f} ({seconds[name]:.0f} s)", flush=True)
    _, logits = extract_features(net, ds.images, logits=True)
    probs = logits.softmax(1).numpy()
    flags['DivideMix GMM (p ≤ 0.5)'] = gmm_detector(np.load(pre/'split.npz')['prob1'])
    flags['net1 prediction ≠ label'] = disagreement_detector(logits, noisy)
    flags['cleanlab (net1 in-sample probs)'] = cleanlab_detector(probs, noisy)
    rows = compare_detectors(flags, noisy, clean, combine=False)
    v, g = flags['SimiFeat-V (majority)'], flags['DivideMix GMM (p ≤ 0.5)']
    rows += compare_detectors({'SimiFeat-V ∧ GMM': v & g, 'SimiFeat-V ∨ GMM': v | g}, noisy, clean, combine=False)
    print(f"\n### {label_set} (noise {ds.noise_rate:.2%}, {len(ds):,} images)\n\n{format_table(rows)}\n", flush=True)
    (out/'table.json').write_text(json.dumps(dict(rows=rows, seconds=seconds), indent=1))
