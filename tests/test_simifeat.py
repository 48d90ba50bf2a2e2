"Stage 3 (SimiFeat): exact chunked k-NN, HOC, detection quality on trained features, detectors, bad input."
import numpy as np, pytest, torch
import torch.nn.functional as F
from nlmn.augment import no_augment, simifeat_augment
from nlmn.data import inject_noise, synthetic_dataset
from nlmn.models import create_model, load_weights
from nlmn.pretrain import pretrain, pretrain_config
from nlmn.representations import FeatureRounds
from nlmn.simifeat import (Detection, SimiFeatConfig, cleanlab_detector, clustered_features, compare_detectors,
                           consensus_counts, detection_metrics, disagreement_detector, fit_hoc, fixed_feature_rounds,
                           gmm_detector, knn, knn_soft_labels, simifeat, soft_labels)


def test_chunked_votes_equal_naive_full_matrix():
    g = torch.Generator().manual_seed(5)
    feats, labels = torch.randn(500, 32, generator=g).double(), torch.randint(0, 6, (500,), generator=g)
    fn = F.normalize(feats, dim=1)
    dist = 1 - fn @ fn.T
    dist.fill_diagonal_(-1)
    d, i = dist.topk(10, largest=False)
    d[:, 0] = 2 * d[:, 1] - d[:, 2]
    votes = torch.zeros(500, 6, dtype=torch.float64).scatter_add_(1, labels[i], 1 - d)
    naive = votes / votes.norm(dim=1, keepdim=True)
    for chunk in (1, 33, 500):
        s, idx = knn(feats, k=10, chunk_size=chunk, device='cpu')
        assert torch.equal(idx, i)
        assert torch.allclose(soft_labels(s, idx, labels, num_classes=6), naive, atol=1e-12, rtol=0)


def test_hoc_recovers_a_random_transition_matrix():
    g = torch.Generator().manual_seed(3)
    K = 5
    T = 0.65 * torch.eye(K) + 0.35 * torch.distributions.Dirichlet(torch.ones(K)).sample((K,))
    feats, noisy, clean = clustered_features(10000, T, dim=24, spread=0.3, seed=4)
    T_est, p_est, _ = fit_hoc(*consensus_counts(feats, noisy, num_classes=K, G=4, sample_size=5000, device='cpu'))
    assert (T_est - T.double()).abs().max() < 0.05
    assert (p_est - 1 / K).abs().max() < 0.03


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    "A DivideMix net1 trained on the synthetic set with 40% instance-dependent noise."
    out = tmp_path_factory.mktemp('pretrain')
    train = inject_noise(synthetic_dataset(600, seed=0), 'instance', 0.4, seed=0)
    pretrain(train, pretrain_config('cpu-tiny'), out, quiet=True)
    return train, load_weights(create_model('fastnet_tiny', 10), out/'net1.pt'), out


def test_f1_on_trained_features_with_instance_noise(trained):
    train, net, _ = trained
    rounds = FeatureRounds(net, train.images, aug=simifeat_augment(*train.normalization), device='cpu')
    det = simifeat(rounds, train.noisy_labels, num_classes=10, cfg=SimiFeatConfig(rounds=5), device='cpu', quiet=True)
    m = detection_metrics(det, train.noisy_labels.numpy(), train.clean_labels.numpy(), num_classes=10)
    assert m['f1'] >= 0.9, m
    assert m['suggested_acc'] > 0.8


def test_detectors_compared_on_the_same_inputs(trained):
    train, net, out = trained
    noisy, clean = train.noisy_labels.numpy(), train.clean_labels.numpy()
    with torch.no_grad(): probs = net.eval()(no_augment(*train.normalization)(train.images)).softmax(1).numpy()
    prob1 = np.load(out/'split.npz')['prob1']
    gmm_det, cl_det = gmm_detector(prob1, noisy), cleanlab_detector(probs, noisy)
    gmm, cl = gmm_det.flagged, cl_det.flagged
    assert np.array_equal(gmm, prob1 <= 0.5)
    rows = compare_detectors({'GMM': gmm_det, 'cleanlab': cl_det}, noisy, clean)
    assert [r['detector'] for r in rows] == ['GMM', 'cleanlab', 'GMM ∧ cleanlab', 'GMM ∨ cleanlab']
    for row, mask in zip(rows, (gmm, cl, gmm & cl, gmm | cl)):  # each row scores its own mask against the truth
        wrong = noisy != clean
        assert row['flagged'] == mask.sum() and row['precision'] == pytest.approx((mask & wrong).sum() / mask.sum())
        assert row['recall'] == pytest.approx((mask & wrong).sum() / wrong.sum())
    noise_rate = (noisy != clean).mean()
    assert rows[0]['f1'] > 0.5 and rows[0]['precision'] > noise_rate + 0.2  # DivideMix's split: noise far above chance
    assert rows[1]['precision'] > noise_rate + 0.2  # and so does cleanlab on net1's (in-sample) probabilities


def test_each_detector_returns_a_detection_with_the_old_flags():
    "GMM, disagreement and cleanlab give `Detection`s: the same flags as their former bare masks, a score and a label."
    g = torch.Generator().manual_seed(0)
    clean = torch.arange(200) % 4
    noisy = torch.where(torch.rand(200, generator=g) < 0.3, torch.randint(0, 4, (200,), generator=g), clean).numpy()
    logits = 2 * F.one_hot(clean, 4).float() + torch.randn(200, 4, generator=g)
    probs, prob_clean = logits.softmax(1).numpy(), torch.rand(200, generator=g).numpy()
    given_prob = probs[np.arange(200), noisy]
    gmm = gmm_detector(prob_clean, noisy, p_threshold=0.4)
    assert np.array_equal(gmm.flagged, prob_clean <= 0.4)  # the old mask
    assert np.array_equal(gmm.score, prob_clean) and np.array_equal(gmm.suggested, noisy)
    for out in (logits, logits.numpy(), probs):  # logits or probabilities, tensor or array
        dis = disagreement_detector(out, noisy)
        assert np.array_equal(dis.flagged, np.asarray(torch.as_tensor(out).argmax(1)) != noisy)  # the old mask
        assert np.allclose(dis.score, given_prob, atol=1e-6) and np.array_equal(dis.suggested, probs.argmax(1))
    pytest.importorskip('cleanlab')
    from cleanlab.filter import find_label_issues
    cl = cleanlab_detector(probs, noisy)
    assert np.array_equal(cl.flagged, find_label_issues(noisy, probs.astype(np.float64)))  # the old mask
    assert np.allclose(cl.score, given_prob) and np.array_equal(cl.suggested, probs.argmax(1))
    dets = dict(gmm=gmm, disagreement=dis, cleanlab=cl)
    for name, d in dets.items():
        assert isinstance(d, Detection) and d.params['method'] == name and d.flagged.dtype == bool
        assert d.score.shape == d.suggested.shape == (200,) and d.suggested.dtype == np.int64
        assert d.score[d.flagged].mean() < d.score[~d.flagged].mean()  # lower score = more suspicious
    as_masks = compare_detectors({n: d.flagged for n, d in dets.items()}, noisy, clean.numpy())
    assert compare_detectors(dets, noisy, clean.numpy()) == as_masks  # Detections and bare masks score the same
    m = detection_metrics(dis, noisy, clean.numpy())
    assert m['suggested_acc'] == (dis.suggested[dis.flagged] == clean.numpy()[dis.flagged]).mean()

def test_threshold_and_rounds_aggregate():
    feats, noisy, clean = clustered_features(1200, seed=0, spread=0.9)
    rounds = fixed_feature_rounds(feats, seed=1)
    run = lambda threshold: simifeat(rounds, noisy, num_classes=4, cfg=SimiFeatConfig(rounds=7, threshold=threshold),
                                     device='cpu', quiet=True)
    majority, strict = run(0.5), run(0.8)
    assert np.array_equal(majority.score, strict.score)  # same rounds, same votes
    assert np.array_equal(majority.flagged, majority.score <= 0.5)
    assert np.array_equal(strict.flagged, strict.score <= 0.8)
    assert strict.flagged.sum() >= majority.flagged.sum()
    # every score is (rounds judged clean) / (rounds seen)
    assert all(any(abs(s * t - round(s * t)) < 1e-5 for t in range(1, 8)) for s in majority.score)


def test_detection_file_round_trip_and_competition_format(tmp_path):
    det = Detection(np.array([True, False]), np.array([0.2, 0.9]), np.array([3, 1]), dict(method='vote'))
    det.save(tmp_path/'d.npz')
    back = Detection.load(tmp_path/'d.npz')
    assert np.array_equal(back.flagged, det.flagged) and back.params == {'method': 'vote'}
    det.to_competition(tmp_path/'detection.npy')
    assert np.load(tmp_path/'detection.npy').tolist() == [True, False]
    np.savez(tmp_path/'bad.npz', flagged=np.zeros(2, bool))
    with pytest.raises(KeyError, match=r"bad\.npz: not a detection file, missing keys \['score', 'suggested'\]"):
        Detection.load(tmp_path/'bad.npz')


@pytest.mark.parametrize('feats,labels,k,msg', [
    (torch.full((20, 4), float('inf')), torch.arange(20) % 2, 5, 'NaN or infinite values in 20 rows'),
    (torch.randn(20, 4), torch.arange(20) % 2, 20, 'k must lie in 2..N-1 = 2..19'),
    (torch.randn(20, 4), torch.zeros(20, dtype=torch.long), 5, 'at least 2 classes'),
    (torch.randn(20, 4), torch.arange(19) % 2, 5, 'labels must have shape (20,)'),
    (torch.randn(20), torch.arange(20) % 2, 5, 'features must be N×D'),
])
def test_bad_input(feats, labels, k, msg):
    with pytest.raises(ValueError, match=msg.replace('(', r'\(').replace(')', r'\)').replace('.', r'\.')):
        knn_soft_labels(feats, labels, num_classes=2, k=k)
