"""How hard the demo's synthetic task must be for label noise to hurt: CE on the clean vs the noisy labels, per
difficulty.

    python benchmarks/bench_demo_difficulty.py 0 0.5 0.8 1
"""
import json, sys, tempfile, time
import nlmn  # before torch: OpenMP's wait policy
from nlmn.data import DataSpec, load_data
from nlmn.pretrain import pretrain, pretrain_config

def main(difficulties:list[float], n:int=3000):
    for d in difficulties:
        train, _, test = load_data(DataSpec(n=n, noise='instance', noise_rate=0.4, difficulty=d, val_fraction=0.1))
        res = dict(difficulty=d)
        for name, ds in (('clean', train.with_labels(train.clean_labels)), ('noisy', train)):
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:  # the demo's stage-1 net and epochs, plain CE
                last = pretrain(ds, pretrain_config('cpu', method='ce', epochs=10, lr_decay_epoch=7), out, test=test,
                                quiet=True, resume=False)
            res |= {f'{name}_test_acc': round(100 * last['test_acc'], 2),
                    f'{name}_seconds': round(time.perf_counter() - t)}
        print(json.dumps(res), flush=True)

if __name__ == '__main__': main([float(a) for a in sys.argv[1:]] or [0., 0.5, 0.8, 1.])
