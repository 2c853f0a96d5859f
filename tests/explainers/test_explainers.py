"""Each explainer against an independent computation on a tiny conv net."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from pixel_evidence.explainers import REGISTRY, get_explainer
from pixel_evidence.explainers.gradcam import GradCAM
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
from pixel_evidence.explainers.saliency import Saliency
from pixel_evidence.methods import DEFAULT_METHODS, METHODS, method
from tests.explainers.nets import TinyNet
from tests.rounding import assert_same_but_for_order, in_float64


@pytest.fixture
def net():
    return TinyNet().eval()


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.randn(2, 3, 12, 12), torch.tensor([0, 2])


def test_gradcam_matches_hook_computation(net, batch):
    x, target = batch
    store = {}
    handle = net.body[2].register_forward_hook(lambda m, i, o: store.__setitem__("act", o))
    scores = net(x)
    handle.remove()
    act = store["act"]
    grads = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), act)[0]
    weights = grads.mean((2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(12, 12), mode="bilinear", align_corners=False)[:, 0]

    out = GradCAM(net, net.body[2]).attribute(x, target).maps
    assert out.shape == (2, 12, 12) and out.dtype == torch.float32
    assert torch.allclose(out, expected.detach(), atol=1e-6)
    assert (out >= 0).all()


def test_saliency_matches_autograd(net, batch):
    x, target = batch
    x = x.clone().requires_grad_(True)
    grads = torch.autograd.grad(net(x).gather(1, target[:, None]).sum(), x)[0]
    expected = grads.abs().amax(1)
    out = Saliency(net).attribute(x.detach(), target).maps
    assert torch.allclose(out, expected, atol=1e-7)


def test_ig_completeness_against_black_baseline():
    net = TinyNet(act=nn.Softplus).eval()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    torch.manual_seed(2)
    x = torch.randn(2, 3, 12, 12)
    target = torch.tensor([1, 2])
    ig = IntegratedGradients(net, input_mean=mean, input_std=std, n_steps=64)
    # Completeness needs the signed sum: recompute it through captum's own delta.
    out = ig.attribute(x, target)
    baseline = ig.black_baseline(x)
    # black in pixel space, not zero in normalized space
    assert torch.allclose(baseline[0, :, 0, 0], torch.tensor([-0.4 / 0.2, -0.5 / 0.25, -0.6 / 0.3]))
    with torch.no_grad():
        gap = (net(x) - net(baseline)).gather(1, target[:, None])[:, 0]
    # delta = sum(attr) - gap, so |delta| / |gap| < 1% means the attributions are complete
    assert (out.extras["relative_delta"] < 0.01).all()
    assert torch.allclose(out.extras["relative_delta"], out.extras["delta"].abs() / gap.abs())
    # and |attr| summed over RGB bounds the signed total from above
    assert (out.maps.sum((1, 2)) >= gap.abs() * 0.99).all()


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                                    "riemann_trapezoid"])
def test_ig_matches_captum_for_every_fixed_rule(net, batch, method):
    """Our fixed rules against captum's IntegratedGradients, an independent implementation.
    Captum's trapezoid weights sum to (n - 1)/n, ours to 1: its answer is ours scaled by
    (n - 1)/n. The two sum the same float32 terms (10 nodes, then 3 channels) in other orders
    and precisions, so they differ by at most ~13 roundings of 6e-8 of the terms' size: 1e-6
    relative, and of the map's largest value where terms of opposite sign cancel."""
    from captum.attr import IntegratedGradients as CaptumIG

    x, target = batch
    n = 10
    ours = IntegratedGradients(net, n_steps=n, method=method).attribute(x, target)
    baseline = IntegratedGradients(net).black_baseline(x)
    theirs = CaptumIG(net).attribute(x, baselines=baseline, target=target, n_steps=n, method=method)
    if method == "riemann_trapezoid":
        theirs = theirs * n / (n - 1)
    expected = theirs.detach().abs().sum(1)
    assert torch.allclose(ours.maps, expected, rtol=1e-6, atol=1e-6 * float(expected.abs().max()))


def test_ig_rule_errors(net, batch):
    x, target = batch
    with pytest.raises(ValueError, match="unknown IG method 'simpson'"):
        IntegratedGradients(net, method="simpson").attribute(x, target)
    with pytest.raises(ValueError, match="riemann_trapezoid needs n_steps of at least 2"):
        IntegratedGradients(net, n_steps=1, method="riemann_trapezoid").attribute(x, target)
    with pytest.raises(ValueError, match="n_steps must be at least 1"):
        IntegratedGradients(net, n_steps=0).attribute(x, target)

def test_ig_batched_equals_unbatched(net, batch):
    x, target = batch
    net, x = in_float64(net, x)
    full = IntegratedGradients(net, n_steps=10).attribute(x, target)
    chunked = IntegratedGradients(net, n_steps=10, internal_batch_size=3).attribute(x, target)
    single = torch.cat([IntegratedGradients(net, n_steps=10).attribute(x[i:i + 1], target[i:i + 1]).maps
                        for i in range(2)])
    assert_same_but_for_order(chunked.maps, full.maps)
    assert_same_but_for_order(single, full.maps)
    assert_same_but_for_order(chunked.extras["delta"], full.extras["delta"])


def test_the_method_registry_names_each_class_and_describes_it():
    # the order every list and table shows, and the defaults, as they were before the registry
    assert list(METHODS) == ["gradcam", "saliency", "ig", "gradcam_pp", "xgradcam", "scorecam", "ablationcam", "lime",
                             "rise", "occlusion", "smoothgrad", "smoothgrad_ig", "sidu", "cam"]
    assert DEFAULT_METHODS == ("gradcam", "saliency", "ig")
    assert list(REGISTRY) == list(METHODS)
    for key, entry in METHODS.items():
        cls = entry.explainer()
        assert cls.key == key and REGISTRY[key] is cls and cls.__name__ == entry.class_name, key
        # the class reads its label, cost note and slow flag from its entry
        assert (cls.label, cls.cost_note, cls.slow) == (entry.label, entry.cost_note, entry.slow), key
    assert GradCAM(nn.Linear(2, 2)).label == "Grad-CAM"
    with pytest.raises(ValueError, match="unknown method 'lime2'; choose from gradcam, saliency, ig, "):
        method("lime2")


def test_a_class_outside_the_registry_names_itself():
    class StandIn(Saliency):
        key, label = "stand_in", "Stand-in"

    class Unnamed(Saliency):
        key = "unnamed"

    assert StandIn.label == "Stand-in" and Saliency.label == "Saliency"
    with pytest.raises(ValueError, match="unknown method 'unnamed'"):
        Unnamed.label


def test_registry_and_parameter_errors(net):
    assert set(REGISTRY) >= {"gradcam", "saliency", "ig"}
    assert get_explainer("ig") is IntegratedGradients
    with pytest.raises(ValueError, match="unknown method 'lime2'"):
        get_explainer("lime2")
    with pytest.raises(ValueError, match="no parameter"):
        IntegratedGradients(net, steps=3)
    with pytest.raises(ValueError, match=r"3 targets for a batch of 2"):
        Saliency(net).attribute(torch.randn(2, 3, 8, 8), torch.tensor([0, 1, 2]))


def test_ig_on_a_linear_model_is_exact():
    # f(x) = sum_c w_c * mean_hw(x_c): the gradient is constant, so IG = (x - b) * grad exactly.
    lin = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        lin[2].weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]]))
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x = torch.randn(1, 3, 4, 4)
    ig = IntegratedGradients(lin, input_mean=mean, input_std=std, n_steps=8)
    out = ig.attribute(x, torch.tensor([0]))
    grad = lin[2].weight[0].view(1, 3, 1, 1) / 16
    expected = ((x - (-2.0)) * grad).abs().sum(1)
    assert torch.allclose(out.maps, expected.detach(), atol=1e-5)
    assert out.extras["relative_delta"].item() < 1e-5


def test_ig_gap_is_undefined_when_the_score_does_not_change():
    """A classifier blind to its input scores the image and the black baseline alike: the
    relative gap |delta| / |F(x) - F(b)| is 0 / 0, reported as NaN and shown as undefined."""
    from pixel_evidence.dashboard.formatting import ig_gap

    blind = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    with torch.no_grad():
        blind[2].weight.zero_()
    out = IntegratedGradients(blind, n_steps=4).attribute(torch.randn(2, 3, 4, 4), torch.tensor([0, 1]))
    assert torch.isnan(out.extras["relative_delta"]).all() and (out.extras["delta"] == 0).all()
    assert ig_gap(float(out.extras["relative_delta"][0])).startswith("undefined")
    assert ig_gap(0.0321) == "3.2% of the score change"


def test_gradcam_and_saliency_equal_captum(net, batch):
    """The shared-pass implementations give captum's LayerGradCam and Saliency results."""
    from captum.attr import LayerAttribution, LayerGradCam
    from captum.attr import Saliency as CaptumSaliency

    x, target = batch
    cam = LayerGradCam(net, net.body[2]).attribute(x, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, (12, 12), interpolate_mode="bilinear")[:, 0]
    assert torch.allclose(GradCAM(net, net.body[2]).attribute(x, target).maps, cam.detach(), atol=1e-6)
    sal = CaptumSaliency(net).attribute(x.clone().requires_grad_(True), target=target, abs=True).amax(1)
    assert torch.allclose(Saliency(net).attribute(x, target).maps, sal, atol=1e-7)


def test_cam_family_and_saliency_share_one_pass_and_equal_their_solo_maps(net, batch):
    """Asked for together, the CAM family and Saliency run the network once between them
    (plus the forwards Score-CAM and Ablation-CAM make of their own), and each map equals
    the one the method computes alone."""
    from pixel_evidence.engine.pass_runner import PassRunner

    net, x = in_float64(net, batch[0])
    target = batch[1]
    keys = ["gradcam", "saliency", "gradcam_pp", "xgradcam", "scorecam", "ablationcam"]
    explainers = [get_explainer(k)(net, net.body[2]) for k in keys]
    forwards = []
    handle = net.register_forward_hook(lambda module, args, output: forwards.append(len(args[0])))
    try:
        together = PassRunner().attribute(explainers, x, target)
        n_together = len(forwards)
        forwards.clear()
        alone = [e.attribute(x, target) for e in explainers]
    finally:
        handle.remove()
    # Alone, each of the six runs its own first pass; together, one pass serves all six.
    assert len(forwards) - n_together == len(keys) - 1
    for key, a, b in zip(keys, together, alone):
        assert_same_but_for_order(a.maps, b.maps)
