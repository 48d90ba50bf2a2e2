"Stage 4 (CORES phase 2): the reference schedule, the loss, the split it trains on, resumable runs."
import math, signal, subprocess, sys, textwrap, time
import numpy as np, pytest, torch
from nlmn.augment import no_augment
from nlmn.core import load_torch, read_jsonl
from nlmn.models import create_model, load_weights
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.finetune import consistency_loss, finetune, finetune_config, finetune_lr, stratified_order, tsa_threshold
from nlmn.review import apply_decisions
from nlmn.simifeat import Detection


@pytest.mark.parametrize('preset,peak,warmup,epochs', [('paper-c10', 0.002, 2, 110), ('paper-c100', 0.004, 10, 140)])
def test_reference_schedule(preset, peak, warmup, epochs):
    cfg = finetune_config(preset)
    assert (cfg.batch_size, cfg.extra_epochs, cfg.nesterov, cfg.clip, cfg.weight_decay) == (320, 10, True, 5., 5e-4)
    assert math.isclose(finetune_lr(0, cfg), 0.0002) and math.isclose(finetune_lr(warmup, cfg), peak)
    mid = warmup + (epochs - warmup) / 2
    assert math.isclose(finetune_lr(mid, cfg), (peak + 0.0002) / 2)  # cosine half-way between peak and eta_min = lr
    assert math.isclose(finetune_lr(epochs, cfg), 0.0002)


def test_kl_is_weak_to_strong_with_the_weak_side_detached():
    weak = torch.randn(6, 4, requires_grad=True)
    strong = torch.randn(6, 4, requires_grad=True)
    loss = consistency_loss(weak, strong)
    p = weak.softmax(1)
    want = (p * (p.log() - strong.log_softmax(1))).sum(1).mean()
    assert torch.allclose(loss, want)
    loss.backward()
    assert weak.grad is None and strong.grad is not None


def test_switches_off_by_default_and_tsa_schedules():
    cfg = finetune_config('paper-c10')
    assert cfg.uda_threshold is None and cfg.uda_temperature is None and cfg.tsa is None
    for s in ('linear', 'log', 'exp'):
        ts = [tsa_threshold(t, s, 10) for t in np.linspace(0, 1, 11)]
        assert (all(a <= b for a, b in zip(ts, ts[1:]))
                and math.isclose(ts[0], 0.1 if s != 'exp' else 0.1 + 0.9 * math.exp(-5)) and ts[-1] > 0.99)


def test_stratified_batches_hold_every_class():
    labels = torch.arange(1000) % 10
    order = stratified_order(labels, torch.Generator().manual_seed(1))
    for batch in order.split(100): assert torch.bincount(labels[batch], minlength=10).tolist() == [10] * 10


def test_reviewed_split_trains_and_frozen_lr(tmp_path):
    train = inject_noise(synthetic_dataset(400, seed=0), 'symmetric', 0.3, seed=0)
    flagged = (train.noisy_labels != train.clean_labels).numpy()
    det = Detection(flagged, 1. - flagged, train.clean_labels.numpy())
    decisions = ({int(i): ('drop', None) for i in np.flatnonzero(flagged)[:10]}
                 | {int(i): ('accept', None) for i in np.flatnonzero(flagged)[10:40]})
    split = apply_decisions(det, decisions, train.noisy_labels)
    assert (split.dropped.sum() == 10
            and (split.labels[split.labeled] == train.clean_labels.numpy()[split.labeled]).all())
    cfg = finetune_config('cpu-tiny', epochs=3, extra_epochs=2)
    test = synthetic_dataset(100, seed=1)
    res = finetune(train, split, cfg, tmp_path, test=test, quiet=True)
    log = read_jsonl(tmp_path/'metrics.jsonl')
    assert len(log) == 5 and len({r['lr'] for r in log[2:]}) == 1  # epochs 3..5 at the frozen lr
    assert res['labeled'] == split.labeled.sum() and res['unlabeled'] == split.unlabeled.sum()
    accs = [r['test_acc'] for r in log]
    assert ((res['test_acc_last'], res['test_acc_best'], res['best_epoch'])
            == (accs[-1], max(accs), 1 + accs.index(max(accs))))
    best = load_weights(create_model('fastnet_tiny', 10), tmp_path/'best.pt').eval()  # the best epoch's weights
    with torch.no_grad(): pred = best(no_augment(*train.normalization)(test.images)).argmax(1)
    assert (pred == test.clean_labels).float().mean().item() == pytest.approx(res['test_acc_best'], abs=1 / len(test))


def test_too_few_labeled_samples_is_a_clear_error(tmp_path):
    train = synthetic_dataset(100, seed=0)
    det = Detection(np.ones(100, bool), np.zeros(100), train.clean_labels.numpy())
    with pytest.raises(ValueError, match=r"0 labeled samples is fewer than one batch of 64"):
        finetune(train, apply_decisions(det, {}, train.noisy_labels), finetune_config('cpu-tiny'), tmp_path, quiet=True)


def test_labeled_view_follows_the_switch():
    from nlmn.finetune import finetune_views
    assert finetune_config('paper-c10').labeled_augment == 'strong' and finetune_config('cpu').labeled_augment == 'weak'
    train = synthetic_dataset(200, seed=0)
    make = lambda view: finetune_views(train, finetune_config('cpu-tiny', labeled_augment=view))
    strong, weak = make('strong').labeled, make('weak').labeled
    assert strong.autoaugment and strong.cutout == 16
    assert not weak.autoaugment and weak.cutout == 0 and weak.crop == 4 and weak.flip
    with pytest.raises(ValueError, match="setting finetune.labeled_augment='autoaugment': expected one of strong, weak"):
        make('autoaugment')


def test_strong_view_policy_and_normalization_follow_the_config():
    from nlmn.finetune import finetune_views
    train = synthetic_dataset(200, seed=0)
    make = lambda **kw: finetune_views(train, finetune_config('cpu-tiny', **kw))
    ref = make(normalization='cifar10')
    assert (ref.strong.autoaugment == 'uda'
            and ref.strong.mean == ref.weak.mean == ref.plain.mean == (0.4914, 0.4822, 0.4465))
    own = make(autoaugment='torchvision')
    assert (own.strong.autoaugment == 'torchvision'
            and own.weak.mean == train.normalization[0] != (0.4914, 0.4822, 0.4465))
    with pytest.raises(ValueError, match="setting finetune.autoaugment='rand': expected one of uda, torchvision"):
        make(autoaugment='rand')


RUN = textwrap.dedent("""
    import sys
    import numpy as np
    from nlmn.data import inject_noise, synthetic_dataset
    from nlmn.finetune import finetune, finetune_config
    from nlmn.review import apply_decisions
    from nlmn.simifeat import Detection
    train = inject_noise(synthetic_dataset(400, seed=0), 'symmetric', 0.3, seed=0)
    flagged = (train.noisy_labels != train.clean_labels).numpy()
    split = apply_decisions(Detection(flagged, 1. - flagged, train.clean_labels.numpy()), {}, train.noisy_labels)
    finetune(train, split, finetune_config('cpu-tiny', epochs=4, extra_epochs=2), sys.argv[1], quiet=True)
""")


def test_finetune_killed_and_resumed_ends_with_the_same_weights(tmp_path):
    start = lambda out: subprocess.Popen([sys.executable, '-c', RUN, str(out)])
    assert start(tmp_path/'whole').wait(timeout=300) == 0
    proc, deadline = start(tmp_path/'killed'), time.time() + 300
    while len(read_jsonl(tmp_path/'killed'/'metrics.jsonl')) < 2:  # two epochs done, the third running
        assert proc.poll() is None and time.time() < deadline, 'the run ended before it could be killed'
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert not (tmp_path/'killed'/'final.pt').exists(), 'killed too late: fine-tuning had finished'
    assert start(tmp_path/'killed').wait(timeout=300) == 0  # the same command resumes
    whole, resumed = load_torch(tmp_path/'whole'/'final.pt'), load_torch(tmp_path/'killed'/'final.pt')
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert [r['epoch'] for r in read_jsonl(tmp_path/'killed'/'metrics.jsonl')] == list(range(1, 7))
