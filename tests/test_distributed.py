"""Several processes on the CPU (torchrun, gloo): the helpers of `nlmn.core` in two real processes; a DDP run of
`cpu-tiny` against a one-process run; a killed DDP run resumed to the end."""
import os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from nlmn.core import all_ranks, gather_rows, load_json, load_torch, on_main, read_jsonl, shard
from nlmn.pipeline import STAGES

NLMN = [sys.executable, '-c', 'import sys; from nlmn.cli import main; sys.exit(main())']  # what the console script runs
RUN = ['run', '--n', '400', '--difficulty', '0', '--preset', 'cpu-tiny', '--quiet']  # 5 pretrain epochs, 2 warm-up
TWO = os.environ | dict(OMP_NUM_THREADS='1')  # two processes on two cores: one thread each


def _helpers_in(rank:int, world:int, init:str, results):
    torch.distributed.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    x = torch.arange(11.)[:, None] * torch.tensor([1., -1.])  # 11 rows: the last process's slice is padded
    batch = torch.arange(7)
    def fails(): raise ValueError('bad input, found on rank 0')
    try: on_main(fails); error = None
    except ValueError as e: error = str(e)
    results.put(dict(rank=rank, gathered=gather_rows(lambda xs: xs * 2, x), share=shard(batch),
                     shares=all_ranks(shard(batch).tolist()), main=on_main(lambda: f'rank {rank}'), error=error))
    torch.distributed.destroy_process_group()

def test_helpers_shard_gather_and_broadcast_across_two_processes(tmp_path):
    ctx = torch.multiprocessing.get_context('spawn')
    results, init = ctx.Queue(), f'file://{tmp_path}/rendezvous'
    procs = [ctx.Process(target=_helpers_in, args=(r, 2, init, results)) for r in range(2)]
    for p in procs: p.start()
    got = sorted((results.get(timeout=120) for _ in procs), key=lambda d: d['rank'])
    for p in procs: p.join(30)
    x = torch.arange(11.)[:, None] * torch.tensor([1., -1.])
    for g in got:
        assert torch.equal(g['gathered'], x * 2)  # every row once, in order, on every process
        assert g['main'] == 'rank 0'  # rank 0's result, broadcast
        assert g['error'] == 'bad input, found on rank 0'  # and rank 0's error, raised everywhere
        assert g['shares'] == [[0, 2, 4, 6], [1, 3, 5]]  # the global batch split without overlap or loss
    assert got[1]['share'].tolist() == [1, 3, 5]


# One-process runs of RUN with seeds 0, 1, 2 (measured 2026-12-04): stage-1 test accuracy 48.2 / 53.4 / 53.2 %, stage 4
# 55.8 / 66.5 / 56.9 %, stage 3 flagged 174 / 170 / 160 of 400; an uninterrupted 2-process run: 51.6 %, 53.2 %, 166.
# The bounds are about 1.5× the widest seed gap (10.7 points, 14 samples): a DDP run that learns nothing (10 % is
# chance) or splits wrongly fails them, seed noise does not. Stage 1's GMM split sizes vary too much between seeds at
# 5 epochs (104 / 282 / 259 labeled) to compare.
ACC_BOUND, FLAGGED_BOUND = 0.15, 0.06

def _summaries(out) -> dict:
    return {s: load_json(out/s/'done.json') for s in STAGES}

@pytest.fixture(scope='module')
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp('one')/'run'
    r = subprocess.run(NLMN + RUN + ['--out', str(out)], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return out

def _kill_workers(out, timeout:float=30):
    "SIGKILL every process whose command line names the run directory `out`, and wait until they are gone."
    def running():
        pids = []
        for d in Path('/proc').iterdir():
            try:
                if d.name.isdigit() and str(out) in (d/'cmdline').read_bytes().decode(errors='replace'): pids.append(int(d.name))
            except OSError: pass  # ended meanwhile
        return pids
    deadline = time.time() + timeout
    while pids := running():
        for pid in pids:
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        assert time.time() < deadline, f'workers {pids} outlived SIGKILL'
        time.sleep(0.1)

@pytest.fixture(scope='module')
def ddp_resumed(tmp_path_factory):
    "A 2-process run killed (SIGKILL, launcher and workers) after two pretraining epochs, then resumed on 2 processes."
    out = tmp_path_factory.mktemp('ddp')/'run'
    proc = subprocess.Popen(NLMN + RUN + ['--out', str(out), '--nproc', '2'], env=TWO, start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    metrics, deadline = out/'pretrain'/'metrics.jsonl', time.time() + 600
    while len(read_jsonl(metrics)) < 2:
        assert proc.poll() is None, f'the run ended before it could be killed: {proc.stderr.read()[-3000:]}'
        assert time.time() < deadline, 'no two epochs in 10 minutes'
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    _kill_workers(out)  # torchrun starts each worker in a session of its own: the group kill misses them
    assert not (out/'pretrain'/'done.json').exists(), 'killed too late: pretraining had finished'
    logged = read_jsonl(metrics)
    r = subprocess.run(NLMN + ['resume', str(out), '--quiet', '--nproc', '2'], env=TWO, capture_output=True, text=True,
                       timeout=900)
    return out, logged, r

def test_a_killed_ddp_run_resumes_to_the_end(ddp_resumed):
    out, logged, r = ddp_resumed
    assert r.returncode == 0, r.stderr[-3000:]
    history = read_jsonl(out/'pretrain'/'metrics.jsonl')
    assert [h['epoch'] for h in history] == list(range(5))  # every epoch once: none lost, none doubled
    assert history[:len(logged)] == logged  # the epochs before the kill were not redone
    assert all((out/s/'done.json').exists() for s in STAGES)
    assert len(load_torch(out/'pretrain'/'checkpoint.pt')['rng_ranks']) == 2  # each process's random state
    assert 'stage 4 fine-tuned' in r.stdout and r.stdout.count('stage 4 fine-tuned') == 1  # rank 0 alone prints
    assert not list(out.rglob('.*.tmp'))

def test_ddp_run_matches_one_process(one_process, ddp_resumed):
    "The same data and split sizes; accuracies and the flagged count within the spread of one-process seeds."
    one, ddp = _summaries(one_process), _summaries(ddp_resumed[0])
    for key in ('n', 'val_n', 'test_n', 'num_classes', 'noise_rate'): assert one['data'][key] == ddp['data'][key]
    for s in (one, ddp): assert s['finetune']['labeled'] + s['finetune']['unlabeled'] == s['data']['n']
    assert abs(one['pretrain']['test_acc_last'] - ddp['pretrain']['test_acc_last']) <= ACC_BOUND
    assert abs(one['finetune']['test_acc_last'] - ddp['finetune']['test_acc_last']) <= ACC_BOUND
    assert abs(one['detect']['flagged'] - ddp['detect']['flagged']) <= FLAGGED_BOUND * one['data']['n']
