"Package-level tests of `nlmn.augment` (the notebook `nbs/02_augment.ipynb` tests each function in place)"
import pytest, torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import AutoAugment, AutoAugmentPolicy
from nlmn.augment import *
from nlmn.augment import _apply_policy


def seeded(seed=0, device='cpu'): return torch.Generator(device).manual_seed(seed)
def images(n=16, size=32, device='cpu'): return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=seeded(1)).to(device)

PIPELINES = [weak_augment(), strong_augment(), simifeat_augment(), no_augment()]

@pytest.mark.parametrize("aug", PIPELINES, ids=["weak", "strong", "simifeat", "none"])
def test_pipelines_are_reproducible(aug):
    x = images()
    y = aug(x, gen=seeded())
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, aug(x, gen=seeded()))

def test_pipeline_order_matches_the_steps():
    x, gen = images(), seeded()
    expected = cutout(normalize(random_hflip(random_crop(autoaugment_cifar10(x, gen), 4, gen), gen=gen)), 16, gen)
    assert torch.equal(strong_augment()(x, gen=seeded()), expected)

@pytest.mark.parametrize("f", [random_crop, random_hflip, random_rotation, cutout, autoaugment_cifar10])
def test_steps_keep_shape_and_dtype(f):
    x = images(size=20)  # nothing assumes 32×32
    y = f(x, gen=seeded())
    assert y.shape == x.shape and y.dtype == torch.uint8
    assert torch.equal(y, f(x, gen=seeded()))

def test_crop_is_a_window_of_the_padded_image():
    x = images(4, 8)
    padded = torch.nn.functional.pad(x, (4,) * 4)
    for xi, yi in zip(padded, random_crop(x, 4, seeded())):
        assert any(torch.equal(yi, xi[:, r:r+8, c:c+8]) for r in range(9) for c in range(9))

def test_autoaugment_policy_is_torchvisions():
    assert AUTOAUGMENT_CIFAR10_POLICY == AutoAugment(AutoAugmentPolicy.CIFAR10).policies

def _torchvision_autoaugment(img, policy_idx, apply, negate):
    "torchvision's AutoAugment (v2) on one image, with the random draws given"
    aa = T.AutoAugment(T.AutoAugmentPolicy.CIFAR10)
    H, W = img.shape[-2:]
    for (op, _, bin), on, neg in zip(aa._policies[policy_idx], apply, negate):
        if not on: continue
        mags, signed = aa._AUGMENTATION_SPACE[op]
        mags = mags(10, H, W)
        m = 0. if mags is None else float(mags[bin]) * (-1 if signed and neg else 1)
        img = aa._apply_image_or_video_transform(img, op, m, interpolation=aa.interpolation, fill=aa._fill)
    return img

def test_batched_autoaugment_equals_torchvision_per_image():
    n = 200  # every sub-policy, with every combination of applied ops and signs
    x = images(n)
    policy_idx = torch.arange(n) % 25
    apply = torch.rand(n, 2, generator=seeded(2)) < 0.7
    negate = torch.rand(n, 2, generator=seeded(3)) < 0.5
    y = _apply_policy(x, policy_idx, apply, negate)
    for i in range(n):
        ref = _torchvision_autoaugment(x[i], int(policy_idx[i]), apply[i], negate[i])
        assert torch.equal(y[i], ref), AUTOAUGMENT_CIFAR10_POLICY[int(policy_idx[i])]

def test_forced_subpolicy_matches_functional_ops():
    x = images(8)
    y = autoaugment_cifar10(x, seeded(), policy_idx=torch.full((8,), 4))  # AutoContrast 0.5, Equalize 0.9
    candidates = [x, TF.autocontrast(x), TF.equalize(x), TF.equalize(TF.autocontrast(x))]
    assert all(any(torch.equal(y[i], c[i]) for c in candidates) for i in range(8))

def test_cutout_square():
    y = cutout(torch.ones(200, 3, 32, 32), 16, seeded())
    area = (y[:, 0] == 0).sum((1, 2))
    assert area.max() == 256 and area.min() >= 64  # full square, or clipped to a quarter at worst
    assert torch.equal(y[:, 0], y[:, 2])

def test_generator_must_live_on_the_tensor_device():
    x = images().to('meta')  # checks the device logic without CUDA
    for f in (random_crop, random_hflip, random_rotation, cutout, autoaugment_cifar10):
        with pytest.raises(ValueError, match="generator on cpu"): f(x, gen=seeded())

def test_batches_cover_each_index_once_and_reshuffle():
    bs = Batches(103, 10, seed=0)
    assert len(bs) == 11
    e1, e2 = (torch.cat(list(bs)) for _ in range(2))
    assert torch.equal(e1.sort().values, torch.arange(103)) and not torch.equal(e1, e2)
    assert torch.equal(torch.cat(list(Batches(103, 10, seed=0))), e1)
    dropped = list(Batches(103, 10, drop_last=True, seed=0))
    assert len(dropped) == 10 and all(len(b) == 10 for b in dropped)

def test_batches_resume_from_state():
    bs = Batches(50, 8, seed=0)
    list(bs)
    state = bs.state_dict()
    expected = [torch.cat(list(bs)) for _ in range(2)]
    resumed = Batches(50, 8)
    resumed.load_state_dict(state)
    assert all(torch.equal(torch.cat(list(resumed)), e) for e in expected)
