"Stage 1 (DivideMix): a killed run resumes to the same weights; splits that collapse; odd datasets."
import signal, subprocess, sys, textwrap, time
from dataclasses import replace

import numpy as np, pytest, torch
from nlmn.core import load_torch, read_jsonl
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.models import ResNet34, load_weights
from nlmn.pretrain import co_divide, gmm_clean_prob, pretrain, pretrain_config

RUN = textwrap.dedent("""
    import sys
    from nlmn.data import inject_noise, synthetic_dataset
    from nlmn.pretrain import pretrain, pretrain_config
    train = inject_noise(synthetic_dataset(400, seed=0), 'instance', 0.4, seed=0)
    pretrain(train, pretrain_config('cpu-tiny', warm_up=1, epochs=3), sys.argv[1], quiet=True)
""")


def _start(out):
    return subprocess.Popen([sys.executable, '-c', RUN, str(out)])


def test_sigkill_mid_run_resumes_to_identical_weights(tmp_path):
    assert _start(tmp_path/'whole').wait(timeout=300) == 0
    proc = _start(tmp_path/'killed')
    deadline = time.time() + 300
    while len(read_jsonl(tmp_path/'killed'/'metrics.jsonl')) < 2:  # epochs 0 and 1 done, epoch 2 (DivideMix) running
        assert proc.poll() is None and time.time() < deadline, 'the run ended before it could be killed'
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert not (tmp_path/'killed'/'net1.pt').exists(), 'killed too late: the run had finished'
    assert _start(tmp_path/'killed').wait(timeout=300) == 0  # the same command again resumes
    whole, resumed = load_torch(tmp_path/'whole'/'net1.pt'), load_torch(tmp_path/'killed'/'net1.pt')
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert read_jsonl(tmp_path/'whole'/'metrics.jsonl')[-1]['Lx1'] == read_jsonl(tmp_path/'killed'/'metrics.jsonl')[-1]['Lx1']


def test_collapsed_split_falls_back_and_is_recorded(tmp_path):
    train = inject_noise(synthetic_dataset(300, seed=1), 'symmetric', 0.3, seed=0)
    cfg = pretrain_config('cpu-tiny', warm_up=1, epochs=1, p_threshold=1.0)  # nothing is ever > 1: all "noisy"
    with pytest.warns(UserWarning, match="GMM split collapsed"):
        last = pretrain(train, cfg, tmp_path, quiet=True)
    assert last['split_fallback1'] and last['split_fallback2']
    assert cfg.batch_size <= last['labeled1'] <= len(train) - cfg.batch_size


def test_gmm_split_on_bimodal_losses():
    rng = np.random.default_rng(1)
    losses = np.concatenate([rng.gamma(2, 0.05, 700), rng.normal(3, 0.5, 300)])
    pred, fell_back = co_divide(gmm_clean_prob(losses), 0.5)
    assert not fell_back
    assert pred[:700].mean() > 0.97 and pred[700:].mean() < 0.03


@pytest.mark.parametrize('num_classes', [3, 100])
def test_imbalanced_and_many_classes(tmp_path, num_classes):
    ds = synthetic_dataset(600, num_classes, seed=2, balanced=False)
    keep = torch.cat([(ds.clean_labels == 0).nonzero().squeeze(1), (ds.clean_labels != 0).nonzero().squeeze(1)[::3]])
    train = inject_noise(ds.subset(keep), 'symmetric', 0.2, seed=0)  # class 0 is 3× over-represented
    last = pretrain(train, pretrain_config('cpu-tiny', warm_up=1, epochs=2), tmp_path, train, quiet=True)
    assert last['phase'] == 'dividemix' and 0 <= last['test_acc'] <= 1
    net = load_torch(tmp_path/'net1.pt')
    assert net['linear.weight'].shape[0] == num_classes


def test_saved_net_loads_into_a_fresh_model(tmp_path):
    train = inject_noise(synthetic_dataset(200, seed=3), 'symmetric', 0.2)
    pretrain(train, pretrain_config('cpu-tiny', method='ce', epochs=0, arch='resnet34', batch_size=16), tmp_path, quiet=True)
    net = load_weights(ResNet34(10), tmp_path/'net1.pt')
    assert net.features(train.images[:2].float()).shape == (2, 512)
