"Atomic files, safe torch loading, random state."
import os, random
import numpy as np, pytest, torch
from nlmn.core import atomic_write, load_torch, rng_state, save_npz, save_torch, seed_everything, set_rng_state, RunDir


def test_failed_write_keeps_old_file(tmp_path):
    save_npz(tmp_path/'a.npz', x=np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path/'a.npz') as f:
            f.write(b'garbage'); raise RuntimeError('killed mid-write')
    assert np.load(tmp_path/'a.npz')['x'].tolist() == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ['a.npz']


def test_load_torch_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {tmp_path}/pwned',))
    torch.save({'w': Evil()}, tmp_path/'ckpt.pt')
    with pytest.raises(ValueError, match=r"ckpt\.pt: not a torch file of tensors and plain values"):
        load_torch(tmp_path/'ckpt.pt')
    assert not (tmp_path/'pwned').exists()


def test_rng_state_round_trip_through_file(tmp_path):
    g = seed_everything(7)
    save_torch(tmp_path/'rng.pt', rng_state(g))
    a = (random.random(), np.random.rand(), torch.rand(3), torch.randn(2, generator=g))
    set_rng_state(load_torch(tmp_path/'rng.pt'), g)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.randn(2, generator=g))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_run_dir_stages(tmp_path):
    run = RunDir(tmp_path/'run')
    assert not run.is_done('detect')
    run.mark_done('detect', flagged=12)
    assert RunDir(tmp_path/'run').summary('detect') == {'flagged': 12}
