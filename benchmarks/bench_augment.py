"Throughput of the augmentation pipelines of `nlmn.augment` on random CIFAR-sized uint8 batches"
import argparse
from nlmn.augment import (AUTOAUGMENT_POLICIES, augment_throughput, no_augment, weak_augment, simifeat_augment,
                          strong_augment)
import torch  # after nlmn, which sets OMP_WAIT_POLICY before torch loads OpenMP

PIPELINES = {
    "normalize only": no_augment(),
    "crop+flip": weak_augment(),
    "crop+flip+rotate15 (nearest)": simifeat_augment(),
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=8192, help="images timed per measurement")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, {args.n} images of 3×32×32")
    print(f"{'pipeline':<30} {'batch':>6} {'images/s':>10}")
    for name, aug in PIPELINES.items():
        for bs in args.batch_sizes:
            rate = augment_throughput(aug, n=args.n, batch_size=bs, device=args.device)
            print(f"{name:<30} {bs:>6} {rate:>10,.0f}")
    print(f"\nstrong view (AutoAugment+crop+flip+Cutout16), images/s by AutoAugment policy")
    print(f"{'batch':>6} " + " ".join(f"{p:>12}" for p in AUTOAUGMENT_POLICIES))
    for bs in args.batch_sizes:
        rates = [augment_throughput(strong_augment(policy=p), n=args.n, batch_size=bs, device=args.device)
                 for p in AUTOAUGMENT_POLICIES]
        print(f"{bs:>6} " + " ".join(f"{r:>12,.0f}" for r in rates))
