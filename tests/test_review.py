"The review stage without a browser: widget state, the decisions file (atomic, checked, reopened), the training split."
from dataclasses import replace

import numpy as np, pytest, torch
import torch.nn.functional as F
from nlmn.core import RunDir, load_csv
from nlmn.data import NoisyDataset
from nlmn.representations import COLOURS
from nlmn.review import (DECISION_COLUMNS, ReviewBrowser, apply_decisions, load_decisions, merge_decisions,
                         review_summary, save_decisions)
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
    assert again.tiles[5].relabel.value == 7 and again.tiles[0].buttons['keep'].style.button_color == COLOURS['keep']
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
    given, suggested = det.vote_shares(ds.noisy_labels.numpy())
    lead = suggested.astype(np.float64) - given
    most = sorted(flagged, key=lambda i: (det.score[i], -lead[i], i))
    assert list(b.items) == most
    b.order.value = '-score'
    assert list(b.items) == most[::-1]
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


def tiny_dataset(labels, images=None, classes=('cat', 'dog', 'bird')):
    "A dataset of len(labels) blank 8×8 images (or `images`), with these noisy labels and no clean ones."
    n = len(labels)
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8) if images is None else images
    return NoisyDataset(images, torch.tensor(labels), list(classes), name='tiny')


def test_ties_on_the_score_go_by_the_votes_lead(tmp_path):
    "Most suspicious first: lowest score, then the largest lead of the suggested class over the label, then position."
    labels = [1, 1, 1, 1, 1, 1, 1, 1]
    score = np.array([0, 0, 0, 0, .2, .2, 1, 1])
    suggested = np.array([0, 0, 0, 1, 2, 0, 1, 1])
    votes = np.array([[.5, .3, .2], [.9, .1, 0], [.9, .1, 0], [.2, .7, .1],  # leads .2, .8, .8 and 0 (same label)
                      [0, .4, .6], [.6, .4, 0], [0, 1, 0], [0, 1, 0]])     # leads .2, .2
    det = Detection(score <= .5, score, suggested, dict(method='vote', rounds=5, k=10, threshold=.5), votes)
    b = ReviewBrowser(tiny_dataset(labels), det, tmp_path/'d.csv')
    assert np.allclose(b.margin, [.2, .8, .8, 0, .2, .2, 0, 0])
    assert b.items.tolist() == [1, 2, 0, 3, 4, 5]
    b.order.value = '-score'; assert b.items.tolist() == [5, 4, 3, 0, 2, 1]  # the exact reverse
    b.order.value = 'index'; assert b.items.tolist() == [0, 1, 2, 3, 4, 5]
    no_votes = ReviewBrowser(tiny_dataset(labels), replace(det, votes=None), tmp_path/'e.csv')
    assert no_votes.items.tolist() == [0, 1, 2, 3, 4, 5] and not no_votes.margin.any()  # ties by position
    assert 'then position' in no_votes.legend.value and 'largest lead' in b.legend.value


def count_writes(monkeypatch) -> list:
    "Record every decisions file `nlmn.review` writes."
    import nlmn.review
    writes, real = [], nlmn.review.save_csv
    monkeypatch.setattr('nlmn.review.save_csv', lambda path, *a, **k: (writes.append(path), real(path, *a, **k)))
    return writes


def test_page_actions_write_once_and_keep_the_other_browsers_decisions(detected, tmp_path, monkeypatch):
    ds, det = detected
    path = tmp_path/'d.csv'
    b1, b2 = ReviewBrowser(ds, det, path, rows=2, cols=3), ReviewBrowser(ds, det, path, rows=2, cols=3)
    page, elsewhere = [int(p) for p in b1.page_items], int(b1.items[7])
    b2.decide(page[0], 'drop'); b2.decide(elsewhere, 'relabel', label=3)  # b1 has not seen these
    b1.decide(page[1], 'keep')
    writes = count_writes(monkeypatch)
    b1.page_buttons['accept'].click()
    assert len(writes) == 1
    want = ({page[0]: ('drop', None), page[1]: ('keep', int(ds.noisy_labels[page[1]])), elsewhere: ('relabel', 3)}
            | {p: ('accept', int(det.suggested[p])) for p in page[2:]})
    assert load_decisions(path, ds) == want == b1.decisions  # b2's drop stays: decided pages are left alone
    borders = [t.box.layout.border.split()[-1] for t in b1.tiles[:3]]
    assert borders == [COLOURS[d] for d in ('drop', 'keep', 'accept')]
    b1.page_buttons['accept'].click()  # nothing left to decide: no write
    assert len(writes) == 1
    b1.page_buttons['undo'].click()
    assert len(writes) == 2 and load_decisions(path, ds) == {elsewhere: ('relabel', 3)} == b1.decisions
    b1.page_buttons['keep'].click()
    assert len(writes) == 3
    kept = {p: ('keep', int(ds.noisy_labels[p])) for p in page}
    assert load_decisions(path, ds) == {elsewhere: ('relabel', 3)} | kept
    b2.decide(page[2], 'drop')  # b2 wrote after b1: b1 picks it up with its next write
    b1.undo(page[0])
    assert b1.decisions[page[2]] == ('drop', None) and page[0] not in b1.decisions
    assert all(w == path for w in writes) and len(writes) == 5


def test_merge_decisions_checks_before_it_writes(detected, tmp_path):
    ds, det = detected
    path = tmp_path/'d.csv'
    merge_decisions(path, ds, changes={1: ('drop', None), 2: ('keep', int(ds.noisy_labels[2]))})
    with pytest.raises(IndexError, match='position 300 is not in'):
        merge_decisions(path, ds, changes={1: None, 300: None})
    assert load_decisions(path, ds) == {1: ('drop', None), 2: ('keep', int(ds.noisy_labels[2]))}
    after = merge_decisions(path, ds, changes={1: ('accept', 4), 3: ('accept', 4)}, overwrite=False)
    assert after[1][:2] == ('drop', None) and after[3][:2] == ('accept', 4)


def test_shortcut_box(detected, tmp_path):
    "Each character typed into the box acts, and the box is cleared; the keys act on the highlighted tile."
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv', rows=2, cols=3)
    assert 'nlmn-keys' in b.keys._dom_classes and b.keys.continuous_update and 'undo' in b.key_help.value
    pos = [t.pos for t in b.tiles]
    selected = lambda: [k for k, t in enumerate(b.tiles) if 'nlmn-selected' in t.box._dom_classes]
    assert b.selected == 0 and selected() == [0]
    b.keys.value = '3'
    assert b.keys.value == '' and b.selected == 2 and selected() == [2]
    assert b.tiles[2].box.layout.border.startswith('4px') and b.tiles[0].box.layout.border.startswith('2px')
    b.keys.value = 'a'
    assert b.decisions == {pos[2]: ('accept', int(det.suggested[pos[2]]))} and b.selected == 3  # and on to the next
    b.keys.value = 'k'
    b.keys.value = 'kd'  # the page sent 'kd' before the clearing reached it: 'k' has acted already
    assert b.decisions[pos[3]][0] == 'keep' and b.decisions[pos[4]] == ('drop', None) and b.selected == 5
    b.keys.value = 'd'; b.keys.value = 'u'  # the last tile: the keys stay on it
    assert b.selected == 5 and pos[5] not in b.decisions
    b.keys.value = '9z'  # no tile 9 on this page, no key z
    assert b.selected == 5 and len(b.decisions) == 3 and b.keys.value == ''
    b.keys.value = 'n'
    assert b.page == 1 and b.selected == 0 and b.page_label.value.startswith('page 2 of')
    b.keys.value = 'pA'
    assert b.page == 0 and b.decisions[pos[3]][0] == 'keep'  # decided ones stay
    assert {p: d for p, (d, _) in b.decisions.items()} == {p: 'keep' if p == pos[3] else 'drop' if p == pos[4]
                                                          else 'accept' for p in pos}
    b.keys.value = 'U'; assert b.decisions == {}
    b.keys.value = 'K'; assert b.decisions == {p: ('keep', int(ds.noisy_labels[p])) for p in pos}
    b.keys.value = 'U' + 'n' * (b.pages + 2)  # past the last page: it stays there
    assert b.page == b.pages - 1 and b.decisions == {}


def test_jump_to_a_page(detected, tmp_path):
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv', rows=1, cols=2)
    assert 'nlmn-jump' in b.jump_box._dom_classes and b.pages > 3
    b.jump.value = 3
    assert b.page == 2 and b.tiles[0].pos == b.items[4]
    b.jump.value = 0; assert b.page == 0 and b.jump.value == 1  # clamped, and the box shows where it went
    b.next.click(); assert b.jump.value == 2
    b.jump.value = 10**6; assert b.page == b.pages - 1 == b.jump.value - 1
    b.go(0); b.go_button.click(); assert b.page == 0


def test_thumbnails_keep_their_shape(tmp_path):
    "A 20×40 image: upscaled by a whole factor to fit `size` on its long side, never stretched nor forced to a square."
    import io
    from PIL import Image
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 20, 40), dtype=torch.uint8, generator=g)
    ds = tiny_dataset([0, 1, 2], images)
    det = Detection(np.ones(3, bool), np.zeros(3), np.array([1, 2, 0]))
    for size, factor in ((192, 4), (100, 2), (10, 1), (400, 10)):
        b = ReviewBrowser(ds, det, tmp_path/'d.csv', size=size)
        png = Image.open(io.BytesIO(b.tiles[0].image.value))
        assert b.thumb_scale == factor and png.size == (40 * factor, 20 * factor)
        shown = np.asarray(png)[::factor, ::factor]  # nearest neighbour: every factor-th pixel is the image
        assert (shown == images[b.tiles[0].pos].permute(1, 2, 0).numpy()).all()
        image = b.tiles[0].image
        assert (image.width, image.height, image.layout.width, image.layout.height) == ('', '', None, None)
        assert int(b.tiles[0].box.layout.width.removesuffix('px')) >= 40 * factor
    b = ReviewBrowser(ds, det, tmp_path/'d.csv')  # the default: 192 px on the long side
    assert b.size == 192 and Image.open(io.BytesIO(b.tiles[0].image.value)).size == (160, 80)


def test_captions_say_why(tmp_path):
    "SimiFeat: the clean rounds and the votes; other detectors: their score; the legend says what these mean."
    from nlmn.simifeat import disagreement_detector, gmm_detector
    labels = [1, 1, 2]
    votes = np.array([[.72, .10, .18], [.1, .8, .1], [.3, .3, .4]], np.float32)
    vote = dict(method='vote', rounds=5, k=10, threshold=.5)
    det = Detection(np.array([1, 0, 1], bool), np.array([0, .8, .4]), np.array([0, 1, 2]), vote, votes)
    b = ReviewBrowser(tiny_dataset(labels), det, tmp_path/'d.csv', rows=1, cols=3)
    cap = [t.caption.value for t in b.tiles]  # in order: 0 (score 0), 2 (score .4), then 1
    assert [t.pos for t in b.tiles] == [0, 2, None] and b.whole_rounds
    assert 'clean in 0 of 5 rounds · ' in cap[0] and 'flagged' in cap[0]
    assert 'votes: 72% cat (suggested) · 10% dog (its label)' in cap[0]
    assert 'clean in 2 of 5 rounds' in cap[1] and 'votes: 40% bird (its label, suggested)' in cap[1]
    assert 'key 1' in cap[0] and 'nlmn-legend' in b.legend._dom_classes
    legend = b.legend.value
    assert 'SimiFeat (vote rule, k = 10)' in legend and '5 rounds' in legend and 'subsets' not in legend
    assert all(COLOURS[d] in legend for d in ('undecided', 'keep', 'accept', 'relabel', 'drop'))
    b.scope.value = 'all'
    assert 'clean in 4 of 5 rounds · not flagged' in b.tiles[2].caption.value  # sample 1, least suspicious

    subsets = ReviewBrowser(tiny_dataset(labels), replace(det, score=np.array([0, .75, .4])), tmp_path/'e.csv')
    assert not subsets.whole_rounds and 'subsets' in subsets.legend.value
    assert 'clean in none of its rounds' in subsets.tiles[0].caption.value
    assert 'clean in 40% of its rounds' in subsets.tiles[1].caption.value

    gmm = gmm_detector(np.array([.12, .9, .3]), np.array(labels))
    g = ReviewBrowser(tiny_dataset(labels), gmm, tmp_path/'f.csv')
    assert 'score 0.12 (lower = more suspicious) · ' in g.tiles[0].caption.value
    assert 'votes' not in g.tiles[0].caption.value and "DivideMix's clean probability" in g.legend.value
    assert g.items.tolist() == [0, 2]

    model = disagreement_detector(torch.tensor(votes), np.array(labels))
    m = ReviewBrowser(tiny_dataset(labels), model, tmp_path/'g.csv')
    assert m.items.tolist() == [0] and 'score 0.10 (lower' in m.tiles[0].caption.value
    assert 'predicted: 72% cat (suggested) · 10% dog (its label)' in m.tiles[0].caption.value
    assert 'probability of the given label' in m.legend.value

    bare = ReviewBrowser(tiny_dataset(labels), Detection(det.flagged, det.score, det.suggested), tmp_path/'h.csv')
    assert 'score 0.00 (lower = more suspicious)' in bare.tiles[0].caption.value and 'how clean' in bare.legend.value
    with pytest.raises(ValueError, match=r"votes have shape \(3, 2\), expected \(3, 3\)"):
        ReviewBrowser(tiny_dataset(labels), replace(det, votes=votes[:, :2]), tmp_path/'i.csv')


def test_one_colour_language(detected, tmp_path):
    "Every colour the widget draws comes from `COLOURS`: decisions, revealed labels, the legend."
    import inspect, re
    import nlmn.review
    source = '\n'.join(l for l in inspect.getsource(nlmn.review).splitlines() if not l.startswith('# %%'))  # cell ids
    assert re.findall(r"#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", source) == []
    ds, det = detected
    b = ReviewBrowser(ds, det, tmp_path/'d.csv', rows=1, cols=4)
    for tile, d in zip(b.tiles, ('keep', 'accept', 'drop')): b.decide(tile.pos, d)
    b.decide(b.tiles[3].pos, 'relabel', label=2)
    borders = [t.box.layout.border.split()[-1] for t in b.tiles]
    assert borders == [COLOURS[d] for d in ('keep', 'accept', 'drop', 'relabel')]
    assert b.tiles[2].buttons['drop'].style.button_color == COLOURS['drop']
    assert b.tiles[2].buttons['keep'].style.button_color is None
    b.show_truth.value = True
    for t in b.tiles:
        right = ds.clean_labels[t.pos] == ds.noisy_labels[t.pos]
        assert f"color:{COLOURS['label_right' if right else 'label_wrong']}'>clean: " in t.caption.value
    shown = ' '.join(t.caption.value for t in b.tiles) + b.legend.value
    assert set(re.findall(r'#[0-9a-fA-F]{6}', shown)) <= set(COLOURS.values())


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
