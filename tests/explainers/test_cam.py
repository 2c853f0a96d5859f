"""Plain CAM: the head's own weights on a GAP + linear network, Grad-CAM's map up to h * w
there, and a refusal in one line on any other head."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from pixel_evidence.explainers.class_activation_map import PlainCAM
from pixel_evidence.explainers.gradcam import GradCAM
from tests.explainers.nets import layer_output, make


def test_cam_is_the_heads_weights_on_the_channels(gap_net, batch):
    x, target = batch
    activation, _ = layer_output(gap_net, x)
    weights = gap_net.head.weight.detach()[target]  # (B, K), read off the linear layer itself
    by_hand = F.interpolate(torch.einsum("bk,bkhw->bhw", weights, activation.detach()).relu()[:, None],
                            size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    maps = make(PlainCAM, gap_net).attribute(x, target).maps
    assert torch.allclose(maps, by_hand, rtol=1e-5, atol=1e-6 * float(by_hand.abs().max()))


def test_cam_is_grad_cam_times_the_layers_area_on_such_a_head(gap_net, batch):
    """The gradient of a mean over h * w positions is the weight / (h * w)."""
    x, target = batch
    activation, _ = layer_output(gap_net, x)
    area = activation.shape[-2] * activation.shape[-1]
    cam = make(PlainCAM, gap_net).attribute(x, target).maps
    grad_cam = make(GradCAM, gap_net).attribute(x, target).maps
    assert cam.abs().max() > 0
    assert torch.allclose(cam, grad_cam * area, rtol=1e-4, atol=1e-5 * float(cam.abs().max()))


def test_cam_refuses_a_head_that_is_not_gap_and_linear(net, batch):
    """tests/explainers/nets.py's ConvNet reads the flattened map: no CAM is defined there."""
    x, target = batch
    with pytest.raises(ValueError, match=r"CAM needs one linear layer from the CAM layer's 8 channels"):
        make(PlainCAM, net).attribute(x, target)


def test_cam_refuses_a_layer_before_the_last(gap_net, batch):
    x, target = batch
    cam = PlainCAM(gap_net, gap_net.stem)  # 6 channels: no linear layer takes them
    with pytest.raises(ValueError, match="use Grad-CAM"):
        cam.attribute(x, target)


@pytest.mark.parametrize("net_class", ["MultitaskNet", "ClassifierNet"])
def test_cam_on_our_networks_is_grad_cam_times_the_area(net_class):
    """The shipped multitask network and the classifier kind both end in GAP + linear (the
    dropout before the linear layer is off in eval mode)."""
    import pixel_evidence.models as models

    torch.manual_seed(0)
    network = getattr(models, net_class)(3, "efficientnet_lite0", pretrained=False).eval()
    classifier, layer = models.ClassifierView(network), network.gradcam_layer
    x, target = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with torch.no_grad():
        activation = []
        handle = layer.register_forward_hook(lambda _m, _i, out: activation.append(out))
        classifier(x)
        handle.remove()
    area = activation[0].shape[-2] * activation[0].shape[-1]
    cam = PlainCAM(classifier, layer).attribute(x, target).maps
    grad_cam = GradCAM(classifier, layer).attribute(x, target).maps
    assert cam.abs().max() > 0
    assert torch.allclose(cam, grad_cam * area, rtol=1e-3, atol=1e-4 * float(cam.abs().max()))
