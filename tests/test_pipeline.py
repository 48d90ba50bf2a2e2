"""The whole pipeline: `nlmn run` killed mid-pretraining resumes to the end and loses nothing; finished stages never
rerun."""
import json, signal, subprocess, sys, time

from nlmn.core import load_json, read_jsonl
from nlmn.pipeline import STAGES

NLMN = [sys.executable, '-c', 'import sys; from nlmn.cli import main; sys.exit(main())']  # what the console script runs
RUN = ['run', '--n', '300', '--preset', 'cpu-tiny', '--overrides', 'pretrain.epochs=3', '--quiet']  # 2 warm-up epochs


def test_run_killed_mid_pretraining_resumes_to_the_end(tmp_path):
    out = tmp_path/'run'
    proc = subprocess.Popen(NLMN + RUN[:-2] + ['pretrain.epochs=6', '--quiet', '--out', str(out)])
    metrics, deadline = out/'pretrain'/'metrics.jsonl', time.time() + 300
    while len(read_jsonl(metrics)) < 2:  # two epochs done, the third running
        assert proc.poll() is None and time.time() < deadline, 'the run ended before it could be killed'
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL); proc.wait()
    assert not (out/'pretrain'/'done.json').exists(), 'killed too late: pretraining had finished'
    before = {p: p.read_bytes() for p in [out/'config.json', out/'data'/'done.json', out/'data'/'noise.json', out/'data'/'transition.png']}
    logged = read_jsonl(metrics)

    r = subprocess.run(NLMN + ['resume', str(out), '--quiet'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert all(p.read_bytes() == b for p, b in before.items()), 'a finished artifact changed'
    history = read_jsonl(metrics)
    assert [h['epoch'] for h in history] == list(range(6))  # every epoch once: none lost, none doubled
    assert history[:len(logged)] == logged  # the epochs before the kill were not redone
    assert all((out/s/'done.json').exists() for s in STAGES)
    assert 'stage 4: net1 fine-tuned' in (out/'report.md').read_text()
    assert load_json(out/'pretrain'/'done.json')['epochs'] == 6


def test_the_same_run_again_changes_nothing_and_other_settings_are_refused(tmp_path):
    out = tmp_path/'run'
    assert subprocess.run(NLMN + RUN + ['--out', str(out), '--until', 'pretrain']).returncode == 0
    done = (out/'pretrain'/'done.json').read_bytes()
    r = subprocess.run(NLMN + RUN + ['--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and 'pass --resume' in r.stderr  # an existing run is never continued by accident
    r = subprocess.run(NLMN + RUN[:-2] + ['pretrain.epochs=4', '--quiet', '--out', str(out), '--resume'],
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'pretrain.epochs: 3 → 4' in r.stderr
    assert (out/'pretrain'/'done.json').read_bytes() == done
    r = subprocess.run(NLMN + ['features', str(out), '--quiet'], capture_output=True, text=True)
    assert r.returncode == 0 and json.loads(r.stdout)['dim'] > 0
    r = subprocess.run(NLMN + ['finetune', str(out), '--quiet'], capture_output=True, text=True)
    assert r.returncode == 1 and "needs stage 'detect'" in r.stderr


def test_review_decisions_given_on_the_command_line_reach_fine_tuning(tmp_path):
    """`nlmn run --until detect`, a decisions CSV, then `nlmn run --decisions F --resume`: the fine-tuning split follows
    it."""
    import numpy as np
    from nlmn.pipeline import Pipeline
    from nlmn.review import save_decisions
    from nlmn.simifeat import Detection
    out = tmp_path/'run'
    r = subprocess.run(NLMN + RUN + ['--out', str(out), '--until', 'detect'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"Pipeline('{out}').review()" in r.stdout and f"nlmn resume {out}" in r.stdout  # the next step, spelled out
    det = Detection.load(out/'detect'/'detection.npz')
    ds = Pipeline(out).train  # the run's data, as its config.json describes it
    flagged, kept = np.flatnonzero(det.flagged), np.flatnonzero(~det.flagged)
    drop, relabel, keep = int(flagged[0]), int(flagged[1]), int(kept[0])
    new_label = (int(ds.noisy_labels[relabel]) + 1) % 10
    decisions = {drop: ('drop', None), relabel: ('relabel', new_label), keep: ('drop', None)}
    save_decisions(tmp_path/'decisions.csv', decisions, ds)
    r = subprocess.run(NLMN + RUN + ['--out', str(out), '--resume', '--decisions', str(tmp_path/'decisions.csv')],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # copied into the run
    assert (out/'review'/'decisions.csv').read_bytes() == (tmp_path/'decisions.csv').read_bytes()
    split = np.load(out/'finetune'/'split.npz')
    # dropped: out of training
    assert not split['labeled'][drop] and not split['unlabeled'][drop] and not split['labeled'][keep]
    assert split['labeled'][relabel] and split['labels'][relabel] == new_label
    others = np.setdiff1d(np.arange(300), [drop, relabel, keep])
    assert np.array_equal(split['unlabeled'][others], det.flagged[others])  # undecided samples follow the detector
    assert load_json(out/'finetune'/'done.json')['reviewed'] == 3


def test_baselines_and_a_validation_split_show_in_the_report(tmp_path):
    """`--baselines` trains CE on the noisy and the clean labels beside stage 1; `--val_fraction` holds images out and
    picks epochs on them."""
    out = tmp_path/'run'
    r = subprocess.run(NLMN + RUN + ['--out', str(out), '--baselines', '--val_fraction', '0.1'],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load_json(out/'data'/'done.json')['n'] == 270 and load_json(out/'data'/'done.json')['val_n'] == 30
    clean, noisy = load_json(out/'baseline_clean'/'done.json'), load_json(out/'baseline_ce'/'done.json')
    assert clean['epochs'] == noisy['epochs'] == 3
    ce_clean, ce_noisy = read_jsonl(out/'baseline_clean'/'metrics.jsonl'), read_jsonl(out/'baseline_ce'/'metrics.jsonl')
    assert ce_clean[-1]['warmup_loss1'] < ce_noisy[-1]['warmup_loss1']  # true labels are easier to fit than 40 % noise
    assert all(0 <= h['val_acc'] <= 1 for h in ce_clean)
    ft = load_json(out/'finetune'/'done.json')
    chosen = max(read_jsonl(out/'finetune'/'metrics.jsonl'), key=lambda h: (h['val_acc'], h['epoch']))
    assert (ft['val_selected_epoch'], ft['test_acc_val_selected']) == (chosen['epoch'], chosen['test_acc'])
    report = (out/'report.md').read_text()
    for row in ('| clean-label CE: the ceiling', '| CE baseline', '| stage 1: DivideMix, both nets',
                '| stage 4: net1 fine-tuned'):
        assert row in report, row
    assert 'epoch chosen on validation' in report and 'held out for validation' in report
