"Stage 1 (DivideMix): a killed run resumes to the same weights; splits that collapse; odd datasets."
import signal, subprocess, sys, textwrap, time
from dataclasses import replace

import numpy as np, pytest, torch
from nlmn.core import load_torch, read_jsonl
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.augment import no_augment
from nlmn.models import ResNet34, create_model, load_weights
from nlmn.pretrain import co_divide, gmm_clean_prob, pretrain, pretrain_config

RUN = textwrap.dedent("""
    import sys
    from nlmn.data import inject_noise, synthetic_dataset
    from nlmn.pretrain import pretrain, pretrain_config
    train = inject_noise(synthetic_dataset(400, seed=0), 'instance', 0.4, seed=0)
    pretrain(train, pretrain_config('cpu-tiny', warm_up=1, epochs=4), sys.argv[1], quiet=True)
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
    cfg = pretrain_config('cpu-tiny', warm_up=1, epochs=2, p_threshold=1.0)  # nothing is ever > 1: all "noisy"
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
    test = synthetic_dataset(300, num_classes, seed=5)
    test.norm = train.normalization
    last = pretrain(train, pretrain_config('cpu-tiny', warm_up=1, epochs=3, precision='fp32'), tmp_path, test=test,
                    quiet=True)
    assert last['phase'] == 'dividemix' and last['labeled1'] + last['labeled2'] > 0
    nets = [load_weights(create_model('fastnet_tiny', num_classes), tmp_path/f'net{k}.pt').eval()
            for k in (1, 2)]
    assert nets[0].linear.out_features == num_classes
    x = no_augment(*train.normalization)(test.images)
    with torch.no_grad(): logits = [n(x) for n in nets]
    # the logged test accuracy is the ensemble's (summed logits) and net1's on the given test set
    assert last['test_acc'] == pytest.approx(
        ((logits[0] + logits[1]).argmax(1) == test.clean_labels).float().mean().item(), abs=1 / 300)
    assert last['test_acc_net1'] == pytest.approx(
        (logits[0].argmax(1) == test.clean_labels).float().mean().item(), abs=1 / 300)


def test_each_net_trains_on_the_other_nets_split(tmp_path, monkeypatch):
    "Co-divide: net1 learns from net2's GMM split and clean probabilities, net2 from net1's."
    import nlmn.pretrain as pt
    calls, original = [], pt.dividemix_epoch
    def spy(net, other, *args, split, epoch, desc, **kwargs):
        calls.append((int(desc[-1]) - 1, epoch, split[0].copy(), split[1].copy()))  # desc: 'dividemix net1'/'net2'
        return original(net, other, *args, split=split, epoch=epoch, desc=desc, **kwargs)
    monkeypatch.setattr(pt, 'dividemix_epoch', spy)
    train = inject_noise(synthetic_dataset(400, seed=0), 'instance', 0.4, seed=0)
    pretrain(train, pretrain_config('cpu-tiny', warm_up=1, epochs=3), tmp_path, quiet=True)
    split = np.load(tmp_path/'split.npz')  # the last epoch's two splits
    assert not np.array_equal(split['labeled1'], split['labeled2'])  # else a swap could not show
    last = {k: (labeled, w) for k, epoch, labeled, w in calls if epoch == 2}
    assert np.array_equal(last[0][0], split['labeled2']) and np.array_equal(last[0][1], split['prob2'])
    assert np.array_equal(last[1][0], split['labeled1']) and np.array_equal(last[1][1], split['prob1'])


def test_saved_net_loads_into_a_fresh_model(tmp_path):
    train = inject_noise(synthetic_dataset(200, seed=3), 'symmetric', 0.2)
    pretrain(train, pretrain_config('cpu-tiny', method='ce', epochs=1, arch='resnet34', batch_size=16), tmp_path,
             quiet=True)
    net = load_weights(ResNet34(10), tmp_path/'net1.pt')
    assert net.features(train.images[:2].float()).shape == (2, 512)
