"The three backbones: sizes, features, reference checkpoints."
import pytest, torch
from nlmn.models import FastNet, PreActResNet18, ResNet34, count_params, create_model, load_weights


@pytest.mark.parametrize('arch,params,dim', [('resnet34', 21_282_122, 512), ('preact_resnet18', 11_171_274, 512), ('fastnet', 288_746, 128)])
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
