"Stage 4 (CORES phase 2): the reference schedule, the loss, the split it trains on, resumable runs."
import math
import numpy as np, pytest, torch
from nlmn.core import read_jsonl
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
    assert cfg.uda_confidence is None and cfg.uda_temperature is None and cfg.tsa is None
    for s in ('linear', 'log', 'exp'):
        ts = [tsa_threshold(t, s, 10) for t in np.linspace(0, 1, 11)]
        assert all(a <= b for a, b in zip(ts, ts[1:])) and math.isclose(ts[0], 0.1 if s != 'exp' else 0.1 + 0.9 * math.exp(-5)) and ts[-1] > 0.99


def test_stratified_batches_hold_every_class():
    labels = torch.arange(1000) % 10
    order = stratified_order(labels, torch.Generator().manual_seed(1))
    for batch in order.split(100): assert torch.bincount(labels[batch], minlength=10).tolist() == [10] * 10


def test_reviewed_split_trains_and_frozen_lr(tmp_path):
    train = inject_noise(synthetic_dataset(400, seed=0), 'symmetric', 0.3, seed=0)
    flagged = (train.noisy_labels != train.clean_labels).numpy()
    det = Detection(flagged, 1. - flagged, train.clean_labels.numpy())
    decisions = {int(i): ('drop', None) for i in np.flatnonzero(flagged)[:10]} | {int(i): ('accept', None) for i in np.flatnonzero(flagged)[10:40]}
    split = apply_decisions(det, decisions, train.noisy_labels)
    assert split.dropped.sum() == 10 and (split.labels[split.labeled] == train.clean_labels.numpy()[split.labeled]).all()
    cfg = finetune_config('cpu-tiny', epochs=3, extra_epochs=2)
    res = finetune(train, split, cfg, tmp_path, test=synthetic_dataset(100, seed=1), quiet=True)
    log = read_jsonl(tmp_path/'metrics.jsonl')
    assert len(log) == 5 and len({r['lr'] for r in log[2:]}) == 1  # epochs 3..5 at the frozen lr
    assert res['labeled'] == split.labeled.sum() and res['unlabeled'] == split.unlabeled.sum()
    assert res['test_acc_best'] >= res['test_acc_last']


def test_too_few_labeled_samples_is_a_clear_error(tmp_path):
    train = synthetic_dataset(100, seed=0)
    det = Detection(np.ones(100, bool), np.zeros(100), train.clean_labels.numpy())
    with pytest.raises(ValueError, match=r"0 labeled samples is fewer than one batch of 64"):
        finetune(train, apply_decisions(det, {}, train.noisy_labels), finetune_config('cpu-tiny'), tmp_path, quiet=True)


def test_labeled_view_follows_the_switch():
    from nlmn.finetune import _Finetuner
    assert finetune_config('paper-c10').labeled_augment == 'strong' and finetune_config('cpu').labeled_augment == 'weak'
    train = synthetic_dataset(200, seed=0)
    split = apply_decisions(Detection(np.zeros(200, bool), np.ones(200), train.clean_labels.numpy()), {}, train.noisy_labels)
    make = lambda view: _Finetuner(train, split, finetune_config('cpu-tiny', labeled_augment=view), torch.device('cpu'), None, None)
    strong, weak = make('strong').labeled_view, make('weak').labeled_view
    assert strong.autoaugment and strong.cutout == 16
    assert not weak.autoaugment and weak.cutout == 0 and weak.crop == 4 and weak.flip
    with pytest.raises(ValueError, match="labeled_augment 'autoaugment': expected 'strong' or 'weak'"): make('autoaugment')
