"The backbones: sizes, features, reference checkpoints; the whitening net fitted to the data, resumable in DivideMix."
import pytest, torch
from nlmn.models import FastNet, PreActResNet18, ResNet34, count_params, create_model, load_weights


@pytest.mark.parametrize('arch,params,dim', [('resnet34', 21_282_122, 512), ('preact_resnet18', 11_171_274, 512),
                                             ('fastnet', 288_746, 128), ('whitenet', 1_972_514, 256),
                                             ('whitenet_small', 497_826, 128)])
def test_sizes_and_features(arch, params, dim):
    m = create_model(arch, 10).eval()
    assert count_params(m) == params
    x = torch.randn(2, 3, 32, 32)
    f = m.features(x)
    assert f.shape == (2, dim) and m.feature_dim == dim
    assert torch.allclose(m.linear(f), m(x), atol=1e-6)


def test_reference_checkpoint_with_dataparallel_prefix(tmp_path):
    ref = ResNet34(10).eval()
    torch.save({'module.' + k: v for k, v in ref.state_dict().items()}, tmp_path/'cifar10_worse_label5.0best.pth.tar')
    net = load_weights(ResNet34(10), tmp_path/'cifar10_worse_label5.0best.pth.tar').eval()
    x = torch.randn(3, 3, 32, 32)
    assert torch.equal(net(x), ref(x))


def test_mismatched_checkpoint_names_keys(tmp_path):
    torch.save(PreActResNet18(10).state_dict(), tmp_path/'r18.pt')
    with pytest.raises(ValueError, match=r"r18\.pt: does not fit CifarResNet: missing keys \['layer1\.2"):
        load_weights(ResNet34(10), tmp_path/'r18.pt')


def test_whitenet_is_fitted_to_the_data_and_resumes_in_dividemix(tmp_path):
    from nlmn.augment import no_augment
    from nlmn.core import load_torch
    from nlmn.data import inject_noise, synthetic_dataset
    from nlmn.models import data_init
    from nlmn.pretrain import pretrain, pretrain_config
    train = inject_noise(synthetic_dataset(300, seed=1), 'symmetric', 0.3, seed=1)
    cfg = pretrain_config('cpu-tiny', arch='whitenet_small', warm_up=1, epochs=3)
    pretrain(train, cfg, tmp_path/'whole', quiet=True)
    pretrain(train, cfg, tmp_path/'pieces', quiet=True, stop_after=1)  # warm-up and one DivideMix epoch, then stop
    assert not (tmp_path/'pieces'/'net2.pt').exists()
    pretrain(train, cfg, tmp_path/'pieces', quiet=True)  # resumes at epoch 2
    whole, pieces = (load_torch(tmp_path/d/'net2.pt') for d in ('whole', 'pieces'))
    assert all(torch.equal(whole[k], pieces[k]) for k in whole)
    fitted = data_init(create_model('whitenet_small', 10), no_augment(*train.normalization)(train.images))
    assert torch.equal(whole['whiten.conv.weight'], fitted.whiten.conv.weight)  # fitted once, frozen while training
    assert not torch.equal(whole['whiten.conv.weight'], create_model('whitenet_small', 10).whiten.conv.weight)


def test_load_weights_explains_every_misfit():
    "One message lists missing, unexpected and mis-shaped keys; a shape mismatch fails even when not strict."
    import torch.nn as nn
    sd = {'net1': {'module.weight': torch.zeros(3, 4), 'module.extra': torch.zeros(1)}}  # a DivideMix-style checkpoint
    want = ("state_dict: does not fit Linear: missing keys ['bias']; unexpected keys ['extra']; "
            "shape mismatch ['weight: file (3, 4) vs model (3, 2)']")
    for strict in (True, False):
        with pytest.raises(ValueError) as e: load_weights(nn.Linear(2, 3), sd, strict=strict)
        assert str(e.value) == want
    partial = {'model': {'weight': torch.ones(3, 2)}}
    with pytest.raises(ValueError, match=r"^state_dict: does not fit Linear: missing keys \['bias'\]$"):
        load_weights(nn.Linear(2, 3), partial)
    assert torch.equal(load_weights(nn.Linear(2, 3), partial, strict=False).weight, torch.ones(3, 2))
    many = {f'k{i}': torch.zeros(1) for i in range(7)}
    with pytest.raises(ValueError, match=r"unexpected keys \['k0', 'k1', 'k2', 'k3', 'k4'\]\.\.\.$"):
        load_weights(nn.Linear(2, 3), many | dict(nn.Linear(2, 3).state_dict()))
