"Stage 2 beyond the notebook: cached features, UMAP (seeded, subsampled, cached), the figures and the explorer widget."
import inspect, re
from dataclasses import replace

import numpy as np, pytest, torch
import nlmn.representations
from nlmn.augment import no_augment
from nlmn.core import save_npz
from nlmn.models import create_model, load_weights
from nlmn.pretrain import pretrain, pretrain_config
from nlmn.representations import (COLOURS, EmbeddingExplorer, cached_features, detection_groups, image_grid_html,
                                  load_features, plot_representations, save_features, umap_embed)
from nlmn.simifeat import Detection


def test_trained_features_group_classes_and_are_cached(noisy_synthetic, tmp_path):
    "Features of a briefly trained net put images of one (clean) class together, and a re-run reads them from the run."
    ds = noisy_synthetic
    pretrain(ds, pretrain_config('cpu-tiny', method='ce', epochs=5), tmp_path/'pretrain', quiet=True)
    net = load_weights(create_model('fastnet_tiny', ds.num_classes), tmp_path/'pretrain'/'net1.pt')
    path, aug = tmp_path/'features'/'features.npz', no_augment(*ds.normalization)
    feats, logits = cached_features(path, net, ds.images, aug=aug, quiet=True)
    f = torch.nn.functional.normalize(feats, dim=1)
    sim = f @ f.T; sim.fill_diagonal_(-2)
    nearest = sim.argmax(1)
    clean = ds.clean_labels
    assert (clean[nearest] == clean).float().mean() > 0.8  # chance is 0.1
    stamp = path.stat().st_mtime_ns
    again, lg = cached_features(path, net, ds.images, aug=aug)
    assert torch.equal(again, feats) and torch.equal(lg, logits) and path.stat().st_mtime_ns == stamp
    other_images = ds.images.flip(-1)
    recomputed = cached_features(path, net, other_images, aug=aug, quiet=True)[0]
    assert not torch.equal(recomputed, feats)  # other images: recomputed
    assert load_features(path, len(ds))[0].shape == feats.shape


def test_features_file_errors(tmp_path):
    save_npz(tmp_path/'flat.npz', features=np.zeros(5))
    with pytest.raises(ValueError, match=r"flat\.npz: 'features' must be N×D, got shape \(5,\)"):
        load_features(tmp_path/'flat.npz')
    save_features(tmp_path/'f.npz', torch.zeros(4, 3))
    with pytest.raises(ValueError, match='holds features of 4 samples, expected 5'): load_features(tmp_path/'f.npz', 5)


def test_umap_seeded_subsampled_cached(tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 8, generator=g).repeat_interleave(60, 0) + 0.3 * torch.randn(240, 8, generator=g)
    emb, idx = umap_embed(x, n_neighbors=10, max_points=150, seed=3)
    emb2, idx2 = umap_embed(x, n_neighbors=10, max_points=150, seed=3)
    assert emb.shape == (150, 2) and emb.dtype == np.float32 and np.array_equal(idx, idx2) and np.array_equal(emb, emb2)
    other_seed = umap_embed(x, n_neighbors=10, max_points=150, seed=4)[1]
    assert not np.array_equal(other_seed, idx)  # another seed, another subsample
    c1, _ = umap_embed(x, n_neighbors=10, max_points=150, seed=3, cache=tmp_path)
    assert np.array_equal(c1, emb)
    umap_embed(x, n_neighbors=12, max_points=150, seed=3, cache=tmp_path)  # other settings: another file
    umap_embed(x + 1e-3, n_neighbors=10, max_points=150, seed=3, cache=tmp_path)  # other features: another file
    assert len(list(tmp_path.glob('umap_*.npz'))) == 3
    full, all_idx = umap_embed(x[:50], n_neighbors=100)  # N ≤ max_points: every point; n_neighbors capped at N-1
    assert full.shape == (50, 2) and np.array_equal(all_idx, np.arange(50))


def _clusters(n=120, seed=0):
    rng = np.random.default_rng(seed)
    return (np.repeat(rng.normal(0, 5, (3, 2)), n // 3, 0) + rng.normal(0, .3, (n, 2))).astype(np.float32)


def test_plot_representations_saves_png(noisy_synthetic, tmp_path):
    ds = noisy_synthetic
    emb, flagged = _clusters(300), ds.is_noisy.numpy()
    fig = plot_representations(emb, ds.noisy_labels, flagged=flagged, classes=ds.classes,
                               path=tmp_path/'plots'/'umap.png')
    assert (tmp_path/'plots'/'umap.png').read_bytes()[:4] == b'\x89PNG'
    assert [ax.get_title() for ax in fig.axes] == ['noisy labels', 'detection']
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == [f'kept ({(~flagged).sum()})', f'flagged ({flagged.sum()})']
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[0] == f"{ds.classes[0]} ({(ds.noisy_labels == 0).sum()})"
    codes, names, colors = detection_groups(flagged, noisy_labels=ds.noisy_labels, clean_labels=ds.clean_labels)
    assert set(codes[flagged]) == {3} and len(set(colors)) == 4  # flagged = exactly the corrupted: all true positives


def test_explorer_region_class_and_detection(noisy_synthetic):
    ds = noisy_synthetic.subset(torch.arange(120))
    emb = _clusters(120)
    det = Detection(ds.is_noisy.numpy(), np.linspace(0, 1, 120), ds.clean_labels.numpy())
    idx = np.arange(120)[::-1].copy()  # points in another order than the dataset
    ex = EmbeddingExplorer(emb, ds, detection=det, idx=idx, per_page=5)
    x0 = float(np.median(emb[:, 0]))
    ex.x_range.value = (x0, ex.x_range.max)
    inside = idx[emb[:, 0] >= x0]
    assert set(ex.selection) == set(inside)
    assert list(ex.selection) == sorted(inside, key=lambda p: det.score[p])  # most suspicious first
    assert ex.gallery.value.count('<img') == 5 and ex.gallery.value.count(f'#{ex.shown[0]} ') == 1
    ex.y_range.value = (ex.y_range.max - 1e-3, ex.y_range.max)  # an empty strip
    assert len(ex.selection) == 0 and '<img' not in ex.gallery.value and '<b>0</b> points selected' in ex.info.value
    ex.y_range.value = (ex.y_range.min, ex.y_range.max)
    ex.color_by.value = 'clean'; ex.class_filter.value = 1
    assert set(ex.selection) == set(inside[ds.clean_labels.numpy()[inside] == 1])
    assert f"{int(det.flagged[ex.selection].sum())} flagged" in ex.info.value
    with pytest.raises(ValueError, match='N×2 embedding and N indices'): EmbeddingExplorer(emb[:, :1], ds)
    plain = EmbeddingExplorer(emb, replace(ds, clean_labels=None))
    assert [v for _, v in plain.color_by.options] == ['noisy'] and plain.highlight.disabled


def test_explorer_gallery_pages(noisy_synthetic):
    "The gallery shows the selection a page at a time, in the selection's order; a new selection starts at page 1."
    ds = noisy_synthetic.subset(torch.arange(120))
    det = Detection(ds.is_noisy.numpy(), np.random.default_rng(0).random(120), ds.clean_labels.numpy())
    ex = EmbeddingExplorer(_clusters(120), ds, detection=det, per_page=25)
    assert ex.pages == 5 and ex.page_label.value == 'page 1 of 5 (images 1–25 of 120)'
    assert ex.prev.disabled and not ex.next.disabled
    seen = []
    for page in range(5):
        assert ex.page == page and ex.gallery.value.count('<img') == (25 if page < 4 else 20)
        assert all(f'#{p} ' in ex.gallery.value for p in ex.shown)
        seen += list(ex.shown)
        ex.next.click()
    assert ex.page == 4 and ex.next.disabled and ex.page_label.value == 'page 5 of 5 (images 101–120 of 120)'
    assert seen == list(ex.selection) == sorted(range(120), key=lambda p: det.score[p])  # once each, suspicious first
    ex.prev.click(); assert ex.page == 3
    ex.go(-3); assert ex.page == 0 and ex.prev.disabled
    ex.go(2); ex.class_filter.value = 0
    assert ex.page == 0 and ex.pages == 1 and list(ex.shown) == list(ex.selection)


def test_explorer_clean_labels_hidden_until_asked(noisy_synthetic):
    "Captions show the clean labels only with the toggle, green where the given label is right and red where not."
    ds = noisy_synthetic.subset(torch.arange(60))
    ex = EmbeddingExplorer(_clusters(60), ds, per_page=60)
    assert not ex.show_clean.value and not ex.show_clean.disabled and 'clean:' not in ex.gallery.value
    ex.show_clean.value = True
    wrong = (ds.noisy_labels != ds.clean_labels).numpy()
    assert 0 < wrong.sum() < 60
    g = ex.gallery.value
    assert g.count('clean:') == 60
    assert g.count(f"color:{COLOURS['label_wrong']}") == wrong.sum()
    assert g.count(f"color:{COLOURS['label_right']}") == (~wrong).sum()
    ex.show_clean.value = False
    assert 'clean:' not in ex.gallery.value
    unknown = EmbeddingExplorer(_clusters(60), replace(ds, clean_labels=None))
    assert unknown.show_clean.disabled and 'unknown' in unknown.show_clean.tooltip


def test_explorer_controls_and_classes(noisy_synthetic):
    "Readable sliders and stable CSS classes for a browser test; a legend of the selection, in readable type."
    ds = noisy_synthetic.subset(torch.arange(120))
    ex = EmbeddingExplorer(_clusters(120), ds)
    for s in (ex.x_range, ex.y_range):
        assert (s.readout_format, s.style.description_width, s.layout.width) == ('.1f', 'initial', '420px')
    assert [c for w in (ex.widget, ex.plot, ex.gallery, ex.page_label) for c in w._dom_classes] == [
        'nlmn-explorer', 'nlmn-explorer-plot', 'nlmn-gallery', 'nlmn-gallery-page']
    ex.class_filter.value = 1
    texts = ex.figure().axes[0].get_legend().get_texts()
    n = int((ds.noisy_labels == 1).sum())
    assert [t.get_text() for t in texts] == [f'{ds.classes[1]} ({n})'] and all(t.get_fontsize() >= 8 for t in texts)
    assert ex.plot.value[:4] == b'\x89PNG'


def test_colours_are_the_one_source():
    "The detection outcomes, the flagged frame and the revealed labels take their colours from `COLOURS`."
    flagged, noisy, clean = np.array([1, 1, 0, 0], bool), np.array([0, 1, 1, 0]), np.array([1, 1, 0, 0])
    codes, names, colors = detection_groups(flagged, noisy_labels=noisy, clean_labels=clean)
    assert [colors[c] for c in codes] == [COLOURS[k] for k in ('true_flag', 'false_alarm', 'missed', 'kept')]
    assert detection_groups(flagged)[2] == [COLOURS['kept'], COLOURS['flagged']]
    assert COLOURS['true_flag'] == COLOURS['label_wrong']  # red: the given label is wrong
    assert len({COLOURS[k] for k in ('kept', 'missed', 'false_alarm', 'true_flag', 'background')}) == 5
    grid = image_grid_html(torch.zeros(3, 3, 8, 8, dtype=torch.uint8), ['a', 'b', 'c'], marked=np.array([0, 1, 1]))
    assert grid.count(f"border:2px solid {COLOURS['flagged']}") == 2 and grid.count('solid transparent') == 1
    source = inspect.getsource(nlmn.representations)
    start = source.index('COLOURS = dict(')
    rest = source[:start] + source[source.index('\n)\n', start):]  # the module without the table
    assert not re.findall(r"['\"]#[0-9a-fA-F]{6}['\"]", rest), 'a colour outside COLOURS'
