"Package-level tests of `nlmn.augment` (the notebook `nbs/02_augment.ipynb` tests each function in place)"
import pytest, torch
import torchvision.transforms.v2 as T
import numpy as np
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import AutoAugment, AutoAugmentPolicy
from nlmn.augment import *
from nlmn.augment import _apply_policy, _rotate, _uda_magnitude, _UDA_OPS


def seeded(seed=0, device='cpu'): return torch.Generator(device).manual_seed(seed)
def images(n=16, size=32, device='cpu'):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=seeded(1)).to(device)

PIPELINES = [weak_augment(), strong_augment(), simifeat_augment(), no_augment()]

@pytest.mark.parametrize("aug", PIPELINES, ids=["weak", "strong", "simifeat", "none"])
def test_pipelines_are_reproducible(aug):
    x = images()
    y = aug(x, gen=seeded())
    assert y.shape == x.shape and y.dtype == torch.float32
    assert torch.equal(y, aug(x, gen=seeded()))

def test_pipeline_order_matches_the_steps():
    x, gen = images(), seeded()
    crop_flip = lambda x: random_hflip(random_crop(x, 4, gen=gen), gen=gen)
    expected = cutout(normalize(crop_flip(autoaugment_cifar10(x, gen=gen))), 16, gen=gen)
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
    for xi, yi in zip(padded, random_crop(x, 4, gen=seeded())):
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
    y = _apply_policy(x, policy_idx, apply, negate, 'torchvision')
    for i in range(n):
        ref = _torchvision_autoaugment(x[i], int(policy_idx[i]), apply[i], negate[i])
        assert torch.equal(y[i], ref), AUTOAUGMENT_CIFAR10_POLICY[int(policy_idx[i])]

def test_forced_subpolicy_matches_functional_ops():
    x = images(8)
    # sub-policy 4: AutoContrast 0.5, Equalize 0.9
    y = autoaugment_cifar10(x, gen=seeded(), policy_idx=torch.full((8,), 4), policy='torchvision')
    candidates = [x, TF.autocontrast(x), TF.equalize(x), TF.equalize(TF.autocontrast(x))]
    assert all(any(torch.equal(y[i], c[i]) for c in candidates) for i in range(8))

# --- the reference's (UDA) AutoAugment: archive.py levels, augmentations.py PIL ops

def to_pil(img): return Image.fromarray(img.permute(1, 2, 0).numpy())
def from_pil(im): return torch.from_numpy(np.array(im)).permute(2, 0, 1)

def pil_uda(im, name, v):
    "The PIL call of the reference's augmentations.py for `name` with value `v` (sign included)"
    affine = lambda *m: im.transform(im.size, Image.AFFINE, m)
    return {"ShearX": lambda: affine(1, v, 0, 0, 1, 0), "ShearY": lambda: affine(1, 0, 0, v, 1, 0),
            "TranslateXAbs": lambda: affine(1, 0, v, 0, 1, 0), "TranslateYAbs": lambda: affine(1, 0, 0, 0, 1, v),
            "Rotate": lambda: im.rotate(v), "AutoContrast": lambda: ImageOps.autocontrast(im),
            "Invert": lambda: ImageOps.invert(im), "Equalize": lambda: ImageOps.equalize(im),
            "Solarize": lambda: ImageOps.solarize(im, v), "Posterize2": lambda: ImageOps.posterize(im, int(v)),
            "Contrast": lambda: ImageEnhance.Contrast(im).enhance(v),
            "Color": lambda: ImageEnhance.Color(im).enhance(v),
            "Brightness": lambda: ImageEnhance.Brightness(im).enhance(v),
            "Sharpness": lambda: ImageEnhance.Sharpness(im).enhance(v)}[name]()

def test_uda_table_differs_from_torchvisions_only_in_subpolicy_13_color():
    rename = {"TranslateXAbs": "TranslateX", "TranslateYAbs": "TranslateY", "Posterize2": "Posterize"}
    diffs = [(k, j) for k, (u, t) in enumerate(zip(UDA_CIFAR10_POLICY, AUTOAUGMENT_CIFAR10_POLICY)) for j in range(2)
             if (rename.get(u[j][0], u[j][0]), u[j][1]) != t[j][:2] or (t[j][2] is not None and u[j][2] != t[j][2])]
    assert diffs == [(13, 1)] and UDA_CIFAR10_POLICY[13][1] == ("Color", 0.2, 6)
    assert AUTOAUGMENT_POLICIES == ('uda', 'torchvision')

# augmentations.py: these take a random sign; the enhance ops none
SIGNED = {"ShearX", "ShearY", "TranslateXAbs", "TranslateYAbs", "Rotate"}

def reference_value(name, level, negate):
    "The value handed to the PIL op, with the sign set from the reference rather than from the code under test"
    v = _uda_magnitude(name, level)
    return -v if negate and name in SIGNED else v

def test_uda_magnitudes_from_the_level_formulas():
    assert _uda_magnitude("Posterize2", 7) == 2.                           # 4 - int(7·4/10)
    assert _uda_magnitude("Solarize", 5) == 128. and _uda_magnitude("Solarize", 2) == 205.  # 256 - int(l·256/10)
    assert _uda_magnitude("TranslateXAbs", 9) == 9. and _uda_magnitude("TranslateYAbs", 9, negate=True) == -9.
    assert _uda_magnitude("Color", 0) == pytest.approx(0.1, abs=1e-12)     # l·1.8/10 + 0.1
    assert _uda_magnitude("Sharpness", 9, negate=True) == pytest.approx(1.72, abs=1e-12)  # enhance ops: no sign
    assert _uda_magnitude("Rotate", 2, negate=True) == pytest.approx(-6., abs=1e-12)
    assert _uda_magnitude("ShearX", 8, negate=True) == pytest.approx(-0.24, abs=1e-12)

def px(*v): return torch.tensor(v, dtype=torch.uint8).view(1, -1, 1, 1)
def uda(name, x, level, negate=False): return _UDA_OPS[name](x, _uda_magnitude(name, level, negate))

def test_uda_ops_on_hand_made_images():
    assert torch.equal(uda("Posterize2", px(0b10111111, 0b01000001), 7), px(0b10000000, 0b01000000))  # 2 bits kept
    assert torch.equal(uda("Solarize", px(0, 127, 128, 200, 255), 5), px(0, 127, 127, 55, 0))        # inverts ≥ 128
    dot = torch.zeros(1, 1, 1, 32, dtype=torch.uint8); dot[..., 12] = 255
    assert uda("TranslateXAbs", dot, 9).nonzero()[:, -1].tolist() == [3]                 # 9 px to the left
    assert uda("TranslateXAbs", dot, 9, negate=True).nonzero()[:, -1].tolist() == [21]   # or to the right
    # Color level 0 = factor 0.1 towards grey (200·19595 + 100·38470 + 2¹⁵) >> 16 = 118:
    # ⌊118 + 0.1·(82, −18, −118)⌋
    assert torch.equal(uda("Color", px(200, 100, 0), 0), px(126, 116, 106))
    assert torch.equal(uda("Brightness", px(10, 100, 200), 9), px(17, 172, 255))        # ×1.72, truncated, clipped
    ramp = torch.tensor([[10, 20], [30, 40]], dtype=torch.uint8).expand(1, 3, 2, 2)
    assert uda("AutoContrast", ramp, 5)[0, 0].tolist() == [[0, 85], [170, 255]]

def uda_test_images():
    gen = seeded(7)
    noise = torch.randint(0, 256, (24, 3, 32, 32), generator=gen)
    low_contrast = torch.randint(0, 40, (8, 3, 32, 32), generator=gen)
    low_contrast = low_contrast + torch.randint(0, 216, (8, 3, 1, 1), generator=gen)
    three_levels = torch.randint(0, 3, (4, 3, 32, 32), generator=gen) * 100
    return torch.cat([noise, low_contrast, three_levels]).byte()

UDA_CASES = sorted({(name, level) for sub in UDA_CIFAR10_POLICY for name, _, level in sub})

@pytest.mark.parametrize("name,level", UDA_CASES, ids=[f"{n}-{l}" for n, l in UDA_CASES])
def test_each_uda_op_equals_pil(name, level):
    x = uda_test_images()
    for negate in (False, True):
        v = _uda_magnitude(name, level, negate)
        assert v == reference_value(name, level, negate)
        ref = torch.stack([from_pil(pil_uda(to_pil(xi), name, v)) for xi in x])
        assert torch.equal(_UDA_OPS[name](x, v), ref), (name, level, negate)  # PIL is matched pixel for pixel

def test_batched_uda_autoaugment_equals_the_pil_chain_per_image():
    n = 150
    x = images(n)
    policy_idx = torch.arange(n) % 25
    apply, negate = torch.rand(n, 2, generator=seeded(2)) < 0.7, torch.rand(n, 2, generator=seeded(3)) < 0.5
    y = _apply_policy(x, policy_idx, apply, negate)  # 'uda' is the default
    for i in range(n):
        im = to_pil(x[i])
        for (name, _, level), on, neg in zip(UDA_CIFAR10_POLICY[policy_idx[i]], apply[i], negate[i]):
            if on: im = pil_uda(im, name, reference_value(name, level, bool(neg)))
        assert torch.equal(y[i], from_pil(im)), UDA_CIFAR10_POLICY[int(policy_idx[i])]

def test_policy_names_are_checked():
    x = images(4)
    default, tv = autoaugment_cifar10(x, gen=seeded()), autoaugment_cifar10(x, gen=seeded(), policy='torchvision')
    assert not torch.equal(default, tv)
    with pytest.raises(ValueError, match=r"policy must be one of \('uda', 'torchvision'\), got 'UDA'"):
        autoaugment_cifar10(x, gen=seeded(), policy='UDA')
    with pytest.raises(ValueError, match=r"Augment.autoaugment .* must be one of \('uda', 'torchvision'\)"):
        Augment(autoaugment='randaugment')
    with pytest.raises(ValueError, match="Augment.autoaugment"): Augment(autoaugment=1)
    assert Augment(autoaugment=True).autoaugment == 'uda' and Augment(autoaugment=False).autoaugment is None
    assert strong_augment().autoaugment == 'uda' and strong_augment(policy='torchvision').autoaugment == 'torchvision'
    x = images(8)
    gen = seeded()
    crop_flip = lambda x: random_hflip(random_crop(x, 4, gen=gen), gen=gen)
    expected = cutout(normalize(crop_flip(autoaugment_cifar10(x, gen=gen, policy='torchvision'))), 16, gen=gen)
    assert torch.equal(strong_augment(policy='torchvision')(x, gen=seeded()), expected)

# --- SimiFeat rotation: PIL's nearest rotate with zero fill

@pytest.mark.parametrize("angle", [15., -15., 6., -6., 11.3, -7.77, 0.5, 90.])
def test_nearest_rotation_matches_pil(angle):
    x = images(32)
    y = _rotate(x, torch.full((32,), angle))
    a = float(torch.tensor(angle))  # the float32 angle the batch used
    ref = torch.stack([from_pil(to_pil(xi).rotate(a, resample=Image.NEAREST, fillcolor=0)) for xi in x])
    assert (y == ref).float().mean() >= 0.99  # measured: 100%
    assert torch.equal(y, ref)

def test_random_rotation_matches_pil_at_its_drawn_angles():
    x = images(128)
    y = random_rotation(x, 15., gen=seeded())
    angles = (torch.rand(128, generator=seeded()) * 2 - 1) * 15
    ref = torch.stack([from_pil(to_pil(xi).rotate(float(a), resample=Image.NEAREST, fillcolor=0))
                       for xi, a in zip(x, angles)])
    assert (y == ref).float().mean() >= 0.99
    g = seeded()
    assert torch.equal(simifeat_augment()(x, gen=seeded()),
                       normalize(random_rotation(random_hflip(random_crop(x, 4, gen=g), gen=g), 15., gen=g)))

def test_bilinear_rotation_is_kept_as_an_option():
    x = torch.rand(3, 2, 8, 12)
    angles = torch.tensor([10., -25., 90.])
    ref = torch.stack([TF.rotate(xi, float(a), TF.InterpolationMode.BILINEAR) for xi, a in zip(x, angles)])
    assert torch.allclose(_rotate(x, angles, 'bilinear'), ref, atol=1e-4)
    xb = images(8)
    assert not torch.equal(random_rotation(xb, gen=seeded(), mode='bilinear'), random_rotation(xb, gen=seeded()))
    with pytest.raises(ValueError, match="'nearest' or 'bilinear'"): random_rotation(xb, gen=seeded(), mode='cubic')

def test_cutout_square():
    y = cutout(torch.ones(200, 3, 32, 32), 16, gen=seeded())
    area = (y[:, 0] == 0).sum((1, 2))
    assert area.max() == 256 and area.min() >= 64  # full square, or clipped to a quarter at worst
    assert torch.equal(y[:, 0], y[:, 2])

def test_generator_must_live_on_the_tensor_device():
    x = images().to('meta')  # checks the device logic without CUDA
    for f in (random_crop, random_hflip, random_rotation, cutout, autoaugment_cifar10):
        with pytest.raises(ValueError, match="generator on cpu"): f(x, gen=seeded())

def test_generator_is_keyword_only():
    "A generator passed in a parameter's place (padding, p, degrees, size) is refused, not misread"
    x = images(4)
    for f, arg in ((random_crop, 4), (random_hflip, 0.5), (random_rotation, 15.), (cutout, 16)):
        with pytest.raises(TypeError): f(x, arg, seeded())
    with pytest.raises(TypeError): autoaugment_cifar10(x, seeded())

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
