"""The CUDA path of every stage on synthetic CIFAR-shaped data: images/s per stage and the projected pipeline time.

    python benchmarks/gpu_check.py                   # a GPU: paper-c10 and fast, fp32 / bf16+channels-last / compiled
    python benchmarks/gpu_check.py --device cpu      # CI-sized: the cpu preset's net, fp32, a few hundred images

Each configuration times, on `--n` synthetic images: stage 1's warm-up, per-sample loss pass and DivideMix step
(`benchmark_pretrain`), stage 2's feature pass, one SimiFeat k-NN vote round on `--knn_n` random features, and one
stage-4 epoch (CE + UDA consistency). The projection multiplies these rates by the preset's epochs and rounds for
`--N` training images and 10,000 test images; the fraction of samples each split labels is an assumption (printed),
since synthetic data say nothing about it. Finishes in a few minutes on one GPU.
"""
import argparse, math, time

import nlmn  # first: thread settings
import torch

from nlmn.core import get_device, native_bf16
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.augment import Batches
from nlmn.models import create_model
from nlmn.pretrain import PRETRAIN_PRESETS, benchmark_pretrain
from nlmn.finetune import FINETUNE_PRESETS, finetune_epoch, finetune_net, finetune_views
from nlmn.representations import extract_features
from nlmn.review import ReviewedSplit
from nlmn.simifeat import knn_soft_labels

LABELED, KEPT = 0.6, 0.8  # assumed: share labeled by a DivideMix split; share kept by stage 3 (CIFAR-10N-like noise)


def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()


def features_rate(arch:str, n:int, device, precision:str) -> float:
    "Images/s of stage 2's feature pass."
    ds = synthetic_dataset(n, seed=0)
    net = create_model(arch, 10, 3).to(device)
    extract_features(net, ds.images[:256], device=device, precision=precision)  # warm-up
    sync(device); t = time.perf_counter()
    extract_features(net, ds.images, device=device, precision=precision)
    sync(device); return n / (time.perf_counter() - t)


def knn_seconds(n:int, dim:int, device) -> float:
    "Seconds of one SimiFeat vote round (k-NN + soft labels) on n random features."
    f, y = torch.randn(n, dim), torch.randint(10, (n,))
    knn_soft_labels(f[:512], y[:512], num_classes=10, device=device)
    sync(device); t = time.perf_counter()
    knn_soft_labels(f, y, num_classes=10, device=device)
    sync(device); return time.perf_counter() - t


def finetune_rate(preset:str, n:int, device, precision:str, compile:bool) -> float:
    "Training images/s of one stage-4 epoch (kept: CE; removed: weak + strong views), after a warm-up epoch."
    from dataclasses import replace
    cfg = replace(FINETUNE_PRESETS[preset], precision=precision, compile=compile)
    ds = inject_noise(synthetic_dataset(n, seed=0), 'symmetric', 0.4)
    bf16 = precision == 'bf16'
    x = ds.images.to(device)
    kept = torch.rand(n, generator=torch.Generator().manual_seed(0)) < KEPT
    split = ReviewedSplit(kept.numpy(), torch.where(kept, ds.noisy_labels, -1).numpy(), (~kept).numpy())
    views = finetune_views(ds, cfg)
    net = finetune_net(cfg, views.plain(x[:5000]), num_classes=10, bf16=bf16)
    fwd = torch.compile(net) if compile else net
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9)
    labeled, removed = torch.from_numpy(split.labeled.nonzero()[0]), torch.from_numpy(split.unlabeled.nonzero()[0]).to(device)
    gen = torch.Generator().manual_seed(0)
    batch = min(cfg.batch_size, len(labeled) // 2)
    cfg = replace(cfg, batch_size=batch, batch_unsup=min(cfg.batch_unsup, len(removed)))
    unl = Batches(len(removed), cfg.batch_unsup, shuffle=True, drop_last=True, device=device, gen=gen)
    epoch = lambda e: finetune_epoch(fwd, opt, x, torch.from_numpy(split.labels).to(device), labeled=labeled,
                                     unlabeled=removed, unl_batches=unl, views=views, cfg=cfg, epoch=e, gen=gen,
                                     bf16=bf16)
    epoch(1)  # warm-up (and compilation)
    return epoch(2)['train_images_per_s']


def project(preset:str, r:dict, N:int, test_n:int=10_000) -> dict:
    "Minutes per stage of the `preset` pipeline on N training images at the measured rates."
    pre, ft = PRETRAIN_PRESETS[preset], FINETUNE_PRESETS[preset]
    dm_epochs = pre.epochs - pre.warm_up
    evals = test_n / r['eval']  # each epoch scores the test set (both nets)
    stage1 = (pre.warm_up * (2 * N / r['warmup'] + 2 * evals)
              + dm_epochs * 2 * (N / r['eval'] + 2 * LABELED * N / r['dividemix'] + evals))
    kept, removed = KEPT * N, (1 - KEPT) * N
    steps = kept // ft.batch_size
    stage4 = (ft.epochs + ft.extra_epochs) * (steps * (ft.batch_size + 2 * ft.batch_unsup) / r['finetune']
                                              + test_n / r['eval'])
    knn = r['knn_s'] * (N / r['knn_n']) ** 2  # the exact k-NN grows as N²
    rounds = 21
    stage3 = rounds * (N / r['features'] + knn) + 3 * rounds * knn  # the rounds, then three other rules on them
    final = rounds * (N / r['features'] + knn)
    m = dict(pretrain=stage1 / 60, features=N / r['features'] / 60, detect=stage3 / 60, finetune=stage4 / 60,
             final_detect=final / 60)
    return m | dict(total=sum(m.values()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default=None, help='cuda (default when there is one) or cpu')
    ap.add_argument('--presets', nargs='+', default=None, help='default: paper-c10 fast (GPU), cpu (CPU)')
    ap.add_argument('--n', type=int, default=None, help='images per timing (default 4096 on a GPU, 256 on a CPU)')
    ap.add_argument('--knn_n', type=int, default=None, help='features in the k-NN timing (default 50,000 / 2,000)')
    ap.add_argument('--N', type=int, default=50_000, help='training images of the projection')
    a = ap.parse_args()
    device = get_device(a.device)
    gpu = device.type == 'cuda'
    presets, n = a.presets or (['paper-c10', 'fast'] if gpu else ['cpu']), a.n or (4096 if gpu else 256)
    knn_n = a.knn_n or (50_000 if gpu else 2000)
    # (precision, compile): fp32 plain; bf16 autocast with channels-last tensors; and that compiled (CUDA only)
    configs = [('fp32', False)] + ([('bf16', False), ('bf16', True)] if native_bf16(device) else [])
    if gpu: print(torch.cuda.get_device_name(), f'torch {torch.__version__}')
    print(f"device {device}, {n} images per timing, k-NN on {knn_n:,} features; projection for N = {a.N:,} training "
          f"images (assumed: {LABELED:.0%} labeled per DivideMix split, {KEPT:.0%} kept by stage 3)\n")
    print('| preset | arch | precision | compile | warm-up | loss pass | DivideMix | features | finetune | k-NN round s '
          '| projected min: pretrain / features / detect / finetune / final / total | check s |')
    print('|---' * 12 + '|')
    for preset in presets:
        arch = PRETRAIN_PRESETS[preset].arch
        dim = create_model(arch, 10, 3).linear.in_features
        knn_s = knn_seconds(knn_n, dim, device)
        for precision, compile in configs:
            t0 = time.perf_counter()
            r = benchmark_pretrain(arch, n, device=str(device), compile=compile, precision=precision)
            r |= dict(features=features_rate(arch, n, device, precision), knn_s=knn_s, knn_n=knn_n,
                      finetune=finetune_rate(preset, n, device, precision, compile))
            m = project(preset, r, a.N)
            mins = ' / '.join(f'{m[k]:.1f}' for k in ('pretrain', 'features', 'detect', 'finetune', 'final_detect', 'total'))
            print(f"| {preset} | {arch} | {precision} | {'on' if compile else 'off'} | {r['warmup']:,.0f} | "
                  f"{r['eval']:,.0f} | {r['dividemix']:,.0f} | {r['features']:,.0f} | {r['finetune']:,.0f} | "
                  f"{knn_s:.2f} | {mins} | {time.perf_counter() - t0:.0f} |", flush=True)
    print('\nimages/s per stage; k-NN: one exact vote round; projected minutes at these rates (k-NN scaled as N²)')


if __name__ == '__main__': main()
