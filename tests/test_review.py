"The review stage without a browser: widget state, the decisions file (atomic, checked, reopened), the training split."
from dataclasses import replace

import numpy as np, pytest, torch
import torch.nn.functional as F
from nlmn.core import RunDir, load_csv
from nlmn.review import (DECISION_COLUMNS, ReviewBrowser, apply_decisions, load_decisions, review_summary,
                         save_decisions)
from nlmn.simifeat import Detection, SimiFeatConfig, fixed_feature_rounds, simifeat


@pytest.fixture
def detected(noisy_synthetic):
    "The shared noisy synthetic set and a SimiFeat vote on its average colours."
    ds = noisy_synthetic
    colours = F.avg_pool2d(ds.images.float(), 4).flatten(1)
    det = simifeat(fixed_feature_rounds(colours, seed=0), ds.noisy_labels, num_classes=ds.num_classes,
                   cfg=SimiFeatConfig(rounds=5), quiet=True)
    assert 16 < det.flagged.sum() < len(ds)  # more than one page to review
    return ds, det


def test_decisions_are_saved_at_once_and_reopened(detected, tmp_path):
    ds, det = detected
    b = ReviewBrowser(ds, det, RunDir(tmp_path/'run'), rows=2, cols=3)
    path = tmp_path/'run'/'review'/'decisions.csv'
    assert not path.exists() and len(b.tiles) == 6
    a, c = b.tiles[0].pos, b.tiles[5].pos
    b.tiles[0].buttons['keep'].click()
    assert load_csv(path)[0]['decision'] == 'keep'  # written by the click itself
    b.tiles[5].relabel.value = 7
    rows = load_csv(path)
    assert list(rows[0]) == list(DECISION_COLUMNS)
    kept = int(ds.noisy_labels[a])
    assert {int(r['index']): (r['decision'], r['label'], r['label_name']) for r in rows} == {
        a: ('keep', str(kept), ds.classes[kept]), c: ('relabel', '7', ds.classes[7])}
    again = ReviewBrowser(ds, det, path, rows=2, cols=3)
    assert again.decisions == {a: ('keep', int(ds.noisy_labels[a])), c: ('relabel', 7)}
    assert again.tiles[5].relabel.value == 7 and again.tiles[0].buttons['keep'].button_style == 'success'
    assert again.counter.value.startswith('reviewed <b>2</b>')


def test_changing_page_does_not_decide(detected, tmp_path):
    "A tile's relabel menu is reset when it shows another sample: that must not count as a decision."
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv', rows=1, cols=2)
    b.tiles[0].relabel.value = 1
    saved = (tmp_path/'d.csv').read_bytes()
    b.next.click(); b.prev.click(); b.next.click()
    assert b.tiles[0].relabel.value == -1 and (tmp_path/'d.csv').read_bytes() == saved
    b.prev.click()
    assert b.tiles[0].relabel.value == 1


def test_failed_write_changes_nothing(detected, tmp_path, monkeypatch):
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv')
    b.tiles[0].buttons['drop'].click()
    before = (tmp_path/'d.csv').read_bytes()
    def disk_full(*a, **k): raise OSError(28, 'No space left on device')
    monkeypatch.setattr('nlmn.review.save_csv', disk_full)
    with pytest.raises(OSError, match='No space left'): b.decide(b.tiles[1].pos, 'accept')
    assert (tmp_path/'d.csv').read_bytes() == before and list(b.decisions) == [b.tiles[0].pos]
    assert 'undecided' in b.tiles[1].caption.value


def test_decisions_of_another_dataset_are_refused(detected, tmp_path):
    ds, det = detected
    save_decisions(tmp_path/'d.csv', {0: ('drop', None)}, ds)
    shifted = replace(ds, indices=ds.indices + 1000)  # the same images under other original indices
    with pytest.raises(ValueError,
                       match=r"d\.csv, line 2, column 'original_index': expected 1000, the original index of sample 0"):
        ReviewBrowser(shifted, det, tmp_path/'d.csv')
    with pytest.raises(ValueError, match='the detection covers 300 samples, the dataset has 299'):
        ReviewBrowser(ds.subset(torch.arange(299)), det, tmp_path/'e.csv')


def test_filters_and_order(detected, tmp_path):
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv')
    flagged = np.nonzero(det.flagged)[0]
    assert list(b.items) == sorted(flagged, key=lambda i: (det.score[i], i))
    b.order.value = '-score'
    assert list(b.items) == sorted(flagged, key=lambda i: (-det.score[i], i))
    b.decide(int(flagged[0]), 'accept'); b.decide(int(flagged[1]), 'drop')
    b.state_filter.value = 'accept'; assert list(b.items) == [flagged[0]]
    b.state_filter.value = 'undecided'; assert set(b.items) == set(flagged[2:])
    b.state_filter.value = 'any'; b.scope.value = 'all'
    noisy, sugg = ds.noisy_labels.numpy(), det.suggested
    b.noisy_filter.value = 2; b.suggested_filter.value = 5
    assert set(b.items) == set(np.nonzero((noisy == 2) & (sugg == 5))[0])


def test_without_clean_labels_nothing_is_revealed(detected, tmp_path):
    ds, det = detected
    b = ReviewBrowser(replace(ds, clean_labels=None), det, tmp_path/'d.csv')
    assert b.show_truth.disabled
    b.show_truth.value = True  # even if forced
    assert b.summary.value == '' and all('clean:' not in t.caption.value for t in b.tiles)
    with pytest.raises(ValueError, match='clean labels'): review_summary({}, replace(ds, clean_labels=None), det)


def test_apply_decisions_follows_the_rules():
    rng = np.random.default_rng(0)
    n, K = 200, 5
    noisy = rng.integers(0, K, n)
    det = Detection(rng.random(n) < 0.3, rng.random(n), rng.integers(0, K, n))
    decided = rng.choice(n, 80, replace=False)
    kinds = ['keep', 'accept', 'relabel', 'drop']
    def pick(kind, i):  # the label recorded with a decision of `kind` on sample `i`
        return None if kind == 'drop' else int(det.suggested[i]) if kind == 'accept' else int(rng.integers(0, K))
    decisions = {int(i): (kinds[k], pick(kinds[k], i)) for k, i in zip(rng.integers(0, 4, 80), decided)}
    split = apply_decisions(det, decisions, torch.as_tensor(noisy))
    for i in range(n):
        d, label = decisions.get(i, (None, None))
        want = {None: ((False, True, -1) if det.flagged[i] else (True, False, noisy[i])),
                'keep': (True, False, noisy[i]), 'accept': (True, False, det.suggested[i]),
                'relabel': (True, False, label), 'drop': (False, False, -1)}[d]
        assert (split.labeled[i], split.unlabeled[i], split.labels[i]) == want, (i, d)
    assert not (split.labeled & split.unlabeled).any()
    assert split.dropped.sum() == sum(d == 'drop' for d, _ in decisions.values())


def test_review_summary_counts(detected, tmp_path):
    ds, det = detected
    noisy, clean = ds.noisy_labels.numpy(), ds.clean_labels.numpy()
    flagged = np.nonzero(det.flagged)[0]
    dec = {int(flagged[0]): ('keep', int(noisy[flagged[0]])), int(flagged[1]): ('relabel', int(clean[flagged[1]])),
           int(flagged[2]): ('accept', int(det.suggested[flagged[2]])), int(flagged[3]): ('drop', None)}
    save_decisions(tmp_path/'d.csv', dec, ds)
    rows = {r['group']: r for r in review_summary(tmp_path/'d.csv', ds, det)}
    i = flagged
    assert rows['keep']['training label right'] == int(noisy[i[0]] == clean[i[0]])
    assert rows['relabel'] == {'group': 'relabel', 'samples': 1, 'noisy label wrong': int(noisy[i[1]] != clean[i[1]]),
                               'training label right': 1}
    assert rows['accept']['training label right'] == int(det.suggested[i[2]] == clean[i[2]])
    assert rows['drop']['noisy label wrong'] == int(noisy[i[3]] != clean[i[3]])
    assert rows['undecided, flagged (unlabeled)']['samples'] == len(flagged) - 4
    split = apply_decisions(det, dec, noisy)
    right = int((split.labels == clean)[split.labeled].sum())
    assert rows['all labeled (trained with CE)']['training label right'] == right


def test_two_browsers_on_one_file_keep_both_decisions(detected, tmp_path):
    "Each browser re-reads the file under the lock before it writes: no decision of the other one is lost."
    ds, det = detected
    path = tmp_path/'d.csv'
    b1, b2 = ReviewBrowser(ds, det, path), ReviewBrowser(ds, det, path)  # opened before either decides
    i, j = b1.tiles[0].pos, b1.tiles[1].pos
    b1.decide(i, 'keep'); b2.decide(j, 'drop')
    want = {i: ('keep', int(ds.noisy_labels[i])), j: ('drop', None)}
    assert load_decisions(path, ds) == want
    assert b2.decisions == want  # b2 picked up b1's decision when it wrote its own
    assert 'decision: <b>keep</b>' in b2.tiles[0].caption.value and b2.counter.value.startswith('reviewed <b>2</b>')
    assert ReviewBrowser(ds, det, path).decisions == want
    b1.decide(j, 'accept')  # the same sample again: the last write wins
    assert load_decisions(path, ds) == {i: want[i], j: ('accept', int(det.suggested[j]))} == b1.decisions
    assert (tmp_path/'d.csv.lock').exists() and not list(tmp_path.glob('.d.csv.*.tmp'))


def test_undo_removes_only_its_own_position(detected, tmp_path):
    ds, det = detected
    path = tmp_path/'d.csv'
    b1, b2 = ReviewBrowser(ds, det, path), ReviewBrowser(ds, det, path)
    i, j = b1.tiles[0].pos, b1.tiles[1].pos
    b1.decide(i, 'accept'); b2.decide(j, 'relabel', label=7)
    b1.undo(i)  # b1 never saw j before this
    assert load_decisions(path, ds) == {j: ('relabel', 7)} == b1.decisions
    assert b1.tiles[1].relabel.value == 7 and '<i>undecided</i>' in b1.tiles[0].caption.value
    b2.undo(i)  # undoing an undecided sample changes nothing else
    assert load_decisions(path, ds) == {j: ('relabel', 7)} == b2.decisions


DECIDER = '''
import sys, time
from pathlib import Path
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.review import ReviewBrowser
from nlmn.simifeat import Detection
folder, first = Path(sys.argv[1]), int(sys.argv[2])
ds = inject_noise(synthetic_dataset(300, seed=0), 'instance', 0.3, seed=0)
b = ReviewBrowser(ds, Detection.load(folder/'detection.npz'), folder/'decisions.csv', rows=1, cols=1)
(folder/f'ready{first}').touch()
while not (folder/'go').exists(): time.sleep(0.001)
for pos in range(first, 100, 2): b.decide(pos, 'drop' if pos % 4 < 2 else 'keep')
'''


def test_two_processes_deciding_at_once_lose_nothing(detected, tmp_path):
    "Two kernels on one run, each deciding 50 samples as fast as it can: all 100 decisions end up in the file."
    import subprocess, sys, time
    ds, det = detected
    det.save(tmp_path/'detection.npz')
    procs = [subprocess.Popen([sys.executable, '-c', DECIDER, str(tmp_path), str(first)]) for first in (0, 1)]
    try:
        deadline = time.time() + 120
        while not all((tmp_path/f'ready{k}').exists() for k in (0, 1)):
            assert all(p.poll() is None for p in procs) and time.time() < deadline, \
                'a deciding process died or hung before it started'
            time.sleep(0.01)
        (tmp_path/'go').touch()  # both start at the same moment
        assert [p.wait(120) for p in procs] == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None: p.kill(); p.wait()
    want = {pos: ('drop', None) if pos % 4 < 2 else ('keep', int(ds.noisy_labels[pos])) for pos in range(100)}
    assert load_decisions(tmp_path/'decisions.csv', ds) == want
