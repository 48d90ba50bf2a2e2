"Bad input to the data layer gets a clear error naming the file, the key and what was expected."
import csv, os
import numpy as np, pytest, torch
from PIL import Image
from nlmn.data import (NoisyDataset, cifarn, cifarn_label_file, from_folder, from_npz, load_label_file,
                       write_fake_cifar, CIFARN_FILES)


@pytest.fixture
def npz_and_labels(tmp_path, noisy_synthetic):
    ds = noisy_synthetic
    np.savez(tmp_path/'imgs.npz', images=ds.images.permute(0, 2, 3, 1).numpy(), labels=ds.clean_labels.numpy(),
             index=np.arange(len(ds)))
    labels = dict(clean_label=ds.clean_labels.numpy(), worse_label=ds.noisy_labels.numpy())
    return tmp_path/'imgs.npz', labels, ds


def _save(tmp_path, labels, name='labels.pt'):
    torch.save(labels, tmp_path/name)
    return tmp_path/name


def test_npz_with_label_file_round_trip(tmp_path, npz_and_labels):
    path, labels, ds = npz_and_labels
    got = from_npz(path, _save(tmp_path, labels), 'worst')
    assert torch.equal(got.noisy_labels, ds.noisy_labels) and torch.equal(got.clean_labels, ds.clean_labels)
    assert got.noise_rate == pytest.approx(ds.noise_rate)


def test_label_file_missing_key(tmp_path, npz_and_labels):
    path, labels, _ = npz_and_labels
    lf = _save(tmp_path, {'clean_label': labels['clean_label']})
    with pytest.raises(KeyError,
                       match=r"labels\.pt: no label set 'worst' \(key 'worse_label'\); the file has \['clean_label'\]"):
        from_npz(path, lf, 'worst')


def test_label_file_wrong_length(tmp_path, npz_and_labels):
    path, labels, _ = npz_and_labels
    lf = _save(tmp_path, {k: v[:100] for k, v in labels.items()})
    with pytest.raises(ValueError,
                       match=r"labels\.pt: label set 'worst' \(key 'worse_label'\) has 100 labels, but the npz 'index' spans 0\.\.299"):
        from_npz(path, lf, 'worst')


def test_labels_out_of_range(tmp_path, npz_and_labels):
    path, labels, _ = npz_and_labels
    bad = dict(labels, worse_label=labels['worse_label'] + 10)
    np.savez(tmp_path/'named.npz', **dict(np.load(path)), classes=np.array([str(c) for c in range(10)]))
    with pytest.raises(ValueError, match=r"labels\.pt: label set 'worst' \(key 'worse_label'\) has labels \d+\.\.\d+, expected 0\.\.9 \(10 classes\)"):
        from_npz(tmp_path/'named.npz', _save(tmp_path, bad), 'worst')


def test_label_file_disagrees_with_images(tmp_path, npz_and_labels):
    path, labels, _ = npz_and_labels
    shifted = dict(labels, clean_label=(labels['clean_label'] + 1) % 10)
    with pytest.raises(ValueError,
                       match=r"imgs\.npz: key 'labels' disagrees with .*labels\.pt key 'clean_label' on 300 of 300"):
        from_npz(path, _save(tmp_path, shifted), 'worst')


def test_checksum_mismatch(tmp_path):
    lf = _save(tmp_path, {'clean_label': np.zeros(3, dtype=np.int64)}, 'CIFAR-10_human.pt')
    sha = CIFARN_FILES['cifar10'][1]
    with pytest.raises(ValueError,
                       match=rf"CIFAR-10_human\.pt: checksum mismatch, expected sha256 {sha}, got [0-9a-f]{{64}}"):
        cifarn_label_file('cifar10', tmp_path, download=False)


def test_missing_label_file_without_download(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"CIFAR-100_human\.pt: CIFAR-N label file not found; pass download=True"):
        cifarn(tmp_path, 'noisy100')


def test_label_file_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {tmp_path}/pwned',))
    lf = _save(tmp_path, {'clean_label': Evil()})
    with pytest.raises(ValueError, match=r"labels\.pt: not a label file of plain arrays"):
        load_label_file(lf)
    assert not (tmp_path/'pwned').exists()


def test_non_image_npz(tmp_path):
    np.savez(tmp_path/'feats.npz', features=np.zeros((4, 8), dtype=np.float32))
    with pytest.raises(KeyError,
                       match=r"feats\.npz: no key 'images' \(expected N×H×W×C uint8 images\); "
                             r"the file has \['features'\]"):
        from_npz(tmp_path/'feats.npz')
    np.savez(tmp_path/'float.npz', images=np.zeros((4, 8, 8, 3), dtype=np.float32), labels=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError,
                       match=r"float\.npz: key 'images' must be uint8 N×H×W×C .* got float32 of shape \(4, 8, 8, 3\)"):
        from_npz(tmp_path/'float.npz')


def test_npz_pickled_object_is_refused(tmp_path):
    np.savez(tmp_path/'obj.npz', images=np.zeros((2, 4, 4, 3), dtype=np.uint8), labels=np.array([{}, {}], dtype=object))
    with pytest.raises(ValueError, match="obj.npz: array 'labels' cannot be read \\(an object array, which would need pickle\\)"):
        from_npz(tmp_path/'obj.npz')


def _folder(tmp_path, ds, rows):
    (tmp_path/'img').mkdir(exist_ok=True)
    for i in range(4): Image.fromarray(ds.images[i].permute(1, 2, 0).numpy()).save(tmp_path/'img'/f'{i}.png')
    with open(tmp_path/'data.csv', 'w', newline='') as f: csv.writer(f).writerows(rows)
    return tmp_path/'data.csv'


def test_csv_naming_missing_files(tmp_path, noisy_synthetic):
    rows = [['path', 'label'], ['img/0.png', 'a'], ['img/gone.png', 'b'], ['img/2.png', 'a']]
    path = _folder(tmp_path, noisy_synthetic, rows)
    with pytest.raises(FileNotFoundError,
                       match=r"data\.csv: 1 listed image file\(s\) not found, e\.g\. \['.*img/gone\.png'\]"):
        from_folder(path)


def test_csv_missing_column(tmp_path, noisy_synthetic):
    path = _folder(tmp_path, noisy_synthetic, [['file', 'label'], ['img/0.png', 'a']])
    with pytest.raises(KeyError, match=r"data\.csv: missing column\(s\) \['path'\]"):
        from_folder(path)


def test_csv_with_clean_labels(tmp_path, noisy_synthetic):
    rows = [['path', 'label', 'clean_label'], *[[f'img/{i}.png', 'b' if i else 'a', 'b'] for i in range(4)]]
    path = _folder(tmp_path, noisy_synthetic, rows)
    ds = from_folder(path)
    assert ds.classes == ['a', 'b'] and ds.noise_rate == 0.25


def test_dataset_validation():
    imgs = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"toy: noisy_labels must lie in 0\.\.1 for 2 classes, got values 0\.\.5"):
        NoisyDataset(imgs, torch.tensor([0, 1, 5]), ['a', 'b'], name='toy')
    with pytest.raises(ValueError, match=r"toy: clean_labels must have shape \(3,\)"):
        NoisyDataset(imgs, torch.tensor([0, 1, 1]), ['a', 'b'], clean_labels=torch.tensor([0, 1]), name='toy')


def test_cifar100n_path_on_synthetic_archive(tmp_path):
    lf = write_fake_cifar(tmp_path, 'cifar100', n_train=300, n_test=50, noise_rate=0.4)
    ds = cifarn(tmp_path, 'noisy100', label_file=lf, verify=False)
    assert ds.num_classes == 100 and ds.images.shape == (300, 3, 32, 32)
    assert 0.25 < ds.noise_rate < 0.55
    assert ds.norm == ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276))


def test_cifar10n_path_on_synthetic_archive(tmp_path):
    lf = write_fake_cifar(tmp_path, 'cifar10', n_train=200, n_test=50, noise_rate=0.4)
    for label_set in ('aggre', 'rand1', 'rand2', 'rand3', 'worst', 'clean'):
        ds = cifarn(tmp_path, label_set, label_file=lf, verify=False)
        assert len(ds) == 200 and ds.name == f'cifar10n-{label_set}'
    assert ds.noise_rate == 0
    with pytest.raises(ValueError, match=r"CIFAR-10_human\.pt: key 'clean_label' has 200 labels, expected 50"):
        write_fake_cifar(tmp_path/'small', 'cifar10', n_train=50, n_test=10)
        cifarn(tmp_path/'small', 'worst', label_file=lf, verify=False)  # the 200-image label file on 50 images


def test_npz_label_file_without_label_set(tmp_path, npz_and_labels):
    path, labels, _ = npz_and_labels
    with pytest.raises(ValueError, match=r"labels\.pt: give label_set, the key of the noisy labels"):
        from_npz(path, _save(tmp_path, labels))


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path/'bare.npz', images=np.zeros((4, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(KeyError,
                       match=r"bare\.npz: no key 'labels' and no label file given; "
                             r"expected int labels of shape \(4,\)"):
        from_npz(tmp_path/'bare.npz')
    np.savez(tmp_path/'two.npz', images=np.zeros((4, 8, 8, 2), dtype=np.uint8), labels=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match=r"two\.npz: key 'images' must be uint8 .* got uint8 of shape \(4, 8, 8, 2\)"):
        from_npz(tmp_path/'two.npz')


def test_npz_gray_images_and_own_clean_labels(tmp_path):
    np.savez(tmp_path/'g.npz', images=np.zeros((3, 5, 5), dtype=np.uint8), labels=np.array([0, 2, 1]),
             clean_labels=np.array([0, 1, 1]))
    ds = from_npz(tmp_path/'g.npz')
    assert ds.images.shape == (3, 1, 5, 5) and ds.classes == ['0', '1', '2'] and ds.noise_rate == pytest.approx(1 / 3)


def test_csv_unreadable_or_mixed_size_images(tmp_path, noisy_synthetic):
    path = _folder(tmp_path, noisy_synthetic, [['path', 'label'], ['img/0.png', 'a'], ['img/1.png', 'b']])
    (tmp_path/'img'/'1.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match=r"data\.csv: .*img/1\.png is not a readable image"):
        from_folder(path)
    Image.fromarray(np.zeros((20, 10, 3), dtype=np.uint8)).save(tmp_path/'img'/'1.png')
    with pytest.raises(ValueError,
                       match=r"data\.csv: .*img/1\.png is 10×20 but .*img/0\.png is 32×32; pass size= to resize"):
        from_folder(path)
    assert from_folder(path, size=(8, 12)).images.shape == (2, 3, 8, 12)


def test_csv_without_rows(tmp_path, noisy_synthetic):
    path = _folder(tmp_path, noisy_synthetic, [['path', 'label']])
    with pytest.raises(ValueError, match=r"data\.csv: no rows; expected a header 'path,label' and one row per image"):
        from_folder(path)


def test_csv_numeric_labels_sort_by_value(tmp_path, noisy_synthetic):
    rows = [['path', 'label'], *[[f'img/{i}.png', l] for i, l in enumerate(['10', '2', 'b', '-1'])]]
    path = _folder(tmp_path, noisy_synthetic, rows)
    ds = from_folder(path)
    assert ds.classes == ['-1', '2', '10', 'b'] and ds.noisy_labels.tolist() == [2, 1, 3, 0]
