"""Training images/s of one loop: alone, after a UMAP call in the same process, and beside one busy process.

Each case runs in a fresh Python process, three ways: as plain torch starts (libgomp's default spin-wait: `torch`
imported before `nlmn`), as nlmn starts (`import nlmn` first sets GOMP_SPINCOUNT=1000: a short spin), and with
OMP_WAIT_POLICY=PASSIVE (threads sleep at once), the portable alternative.
The busy competitor is a pure-Python loop that keeps one core busy, as any other program on a laptop or CI would.

    python benchmarks/bench_threads.py [--steps 60] [--threads N] [--precision fp32 bf16]
"""
import argparse, os, subprocess, sys, textwrap

LOOP = textwrap.dedent("""
    import os, sys, time, warnings
    warnings.simplefilter('ignore')
    if sys.argv[1] == 'torch-default': import torch  # torch first: its libgomp starts with the default spin-wait
    import nlmn, torch
    import torch.nn.functional as F
    from nlmn.core import autocast
    from nlmn.models import FastNetTiny
    torch.set_num_threads(int(sys.argv[3]))
    if sys.argv[2] == 'after-umap':
        import numpy as np
        from nlmn.representations import umap_embed
        umap_embed(np.random.default_rng(0).normal(size=(2000, 64)).astype('float32'))
    torch.manual_seed(0)
    bf16, steps = sys.argv[5] == 'bf16', int(sys.argv[4])
    net = FastNetTiny(10)
    net = net.to(memory_format=torch.channels_last) if bf16 else net
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(10, (128,))
    x = x.contiguous(memory_format=torch.channels_last) if bf16 else x
    def step():  # the stages' training step: forward (bf16 autocast or fp32), backward, SGD
        with autocast(torch.device('cpu'), bf16): loss = F.cross_entropy(net(x).float(), y)
        opt.zero_grad(); loss.backward(); opt.step()
    for _ in range(3): step()
    t = time.perf_counter()
    for _ in range(steps): step()
    wait = os.environ.get('OMP_WAIT_POLICY') or (f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}"
                                                 if 'GOMP_SPINCOUNT' in os.environ else 'default')
    print(f"{128 * steps / (time.perf_counter() - t):.0f} {wait}")
""")


def measure(start:str, case:str, threads:int, steps:int, precision:str) -> tuple[float, str]:
    "images/s and the OpenMP wait setting of one fresh process."
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')}
    if start == 'passive': env['OMP_WAIT_POLICY'] = 'PASSIVE'
    busy = subprocess.Popen([sys.executable, '-c', 'while True: pass']) if case == 'busy' else None
    try:
        out = subprocess.run([sys.executable, '-c', LOOP, start, case, str(threads), str(steps), precision], env=env,
                             capture_output=True, text=True, timeout=1800)
    finally:
        if busy is not None: busy.kill(); busy.wait()
    if out.returncode: raise RuntimeError(out.stderr[-2000:])
    ips, policy = out.stdout.split()
    return float(ips), policy


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--steps', type=int, default=60, help='training steps of batch 128 per measurement')
    ap.add_argument('--precision', nargs='+', default=['fp32', 'bf16'],
                    help='fp32 and/or bf16 (autocast + channels-last)')
    ap.add_argument('--threads', type=int, default=os.cpu_count(), help='torch threads (default: all cores)')
    a = ap.parse_args()
    print(f"FastNetTiny training steps, batch 128, {a.steps} steps, {a.threads} torch threads, {os.cpu_count()} cores;"
          " images/s")
    print(f"| precision | start | OpenMP wait | alone | after UMAP | one busy process | slowdown when busy |\n"
          "|---|---|---|---|---|---|---|")
    for precision in a.precision:
        for start in ('torch-default', 'nlmn', 'passive'):
            res = {case: measure(start, case, a.threads, a.steps, precision)
                   for case in ('alone', 'after-umap', 'busy')}
            alone = res['alone'][0]
            print(f"| {precision} | {start} | {res['alone'][1]} | {alone:,.0f} | {res['after-umap'][0]:,.0f} | "
                  f"{res['busy'][0]:,.0f} | {alone / res['busy'][0]:.1f}× |", flush=True)


if __name__ == '__main__': main()
