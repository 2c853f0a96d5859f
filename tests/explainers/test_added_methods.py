"""The added explainers, each against an independent computation on a tiny model.

CAM variants are checked against the grad-cam package (which min-max normalises every map,
so ours are normalised the same way before comparing) or, where our definition differs from
the package's, against the formula written out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import AblationCAM as PkgAblationCAM
from pytorch_grad_cam import GradCAMPlusPlus as PkgGradCAMPlusPlus
from pytorch_grad_cam import XGradCAM as PkgXGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn
from torch.nn import functional as F

from pixel_evidence.explainers import REGISTRY
from pixel_evidence.explainers.ablationcam import AblationCAM
from pixel_evidence.explainers.cam import CAM
from pixel_evidence.explainers.gradcam_pp import GradCAMPlusPlus
from pixel_evidence.explainers.integrated_gradients import IntegratedGradients
from pixel_evidence.explainers.lime import Lime
from pixel_evidence.explainers.occlusion import Occlusion
from pixel_evidence.explainers.rise import RISE, rise_masks
from pixel_evidence.explainers.saliency import Saliency
from pixel_evidence.explainers.scorecam import ScoreCAM
from pixel_evidence.explainers.smoothgrad import SmoothGrad
from pixel_evidence.explainers.smoothgrad_ig import SmoothGradIG
from pixel_evidence.explainers.xgradcam import XGradCAM
from tests.explainers.nets import MEAN, STD, layer_output, make
from tests.rounding import assert_same_but_for_order, in_float64

CAMS = (GradCAMPlusPlus, XGradCAM, ScoreCAM, AblationCAM)
SEEDED = ("lime", "rise", "smoothgrad", "smoothgrad_ig")


def min_max(maps: torch.Tensor) -> torch.Tensor:
    low = maps.amin((1, 2), keepdim=True)
    return (maps - low) / (maps.amax((1, 2), keepdim=True) - low + 1e-7)


def test_every_method_gives_nonnegative_float_maps_at_input_size(net, gap_net, batch):
    x, target = batch
    for key, cls in REGISTRY.items():
        model = gap_net if key == "cam" else net  # CAM is defined on GAP + linear heads only (tests/explainers/test_cam.py)
        out = make(cls, model).attribute(x, target)
        assert out.maps.shape == (2, 16, 16) and out.maps.dtype == torch.float32, key
        assert torch.isfinite(out.maps).all() and (out.maps >= 0).all(), key
        assert cls.cost_note and cls.label, key
        assert not model.block._forward_hooks and not model.block._backward_hooks, key
    slow = {key for key, cls in REGISTRY.items() if getattr(cls, "slow", False)}
    assert slow == {"scorecam", "lime", "rise", "occlusion", "sidu"}


@pytest.mark.parametrize("ours, theirs", [(GradCAMPlusPlus, PkgGradCAMPlusPlus), (XGradCAM, PkgXGradCAM),
                                          (AblationCAM, PkgAblationCAM)])
def test_cam_matches_grad_cam_package(net, batch, ours, theirs):
    x, target = batch
    with theirs(model=net, target_layers=[net.block]) as cam:
        expected = torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in target]))
    out = make(ours, net).attribute(x, target).maps
    assert out.amax((1, 2)).gt(0).all()  # a blank map would make the comparison vacuous
    assert torch.allclose(min_max(out), expected, atol=1e-4)


@pytest.mark.parametrize("head_scale", [1.0, 1e-3])
def test_gradcam_pp_formula_by_hand(net, batch, head_scale):
    # alpha from eq. 19 written out per position, also for gradients as small as on
    # EfficientNet's 7x7 layer (where the grad-cam package's epsilon takes over)
    x, target = batch
    with torch.no_grad():
        net.head.weight.mul_(head_scale)
    acts, scores = layer_output(net, x)
    g = torch.autograd.grad(scores.gather(1, target[:, None]).sum(), acts)[0]
    acts = acts.detach()
    weights = torch.zeros(2, 8)
    for b in range(2):
        for k in range(8):
            total = acts[b, k].sum()
            for i in range(8):
                for j in range(8):
                    gij = g[b, k, i, j]
                    if gij > 0:
                        weights[b, k] += gij**2 / (2 * gij**2 + total * gij**3) * gij
    cam = F.relu((weights[:, :, None, None] * acts).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    out = make(GradCAMPlusPlus, net).attribute(x, target).maps
    assert out.amax((1, 2)).gt(0).all()
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-5 * head_scale)


def test_scorecam_masks_toward_black_by_hand(net, batch):
    x, target = batch
    acts, _ = layer_output(net, x)
    acts = acts.detach()
    black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(3, 1, 1)
    weights = torch.zeros(2, 8)
    with torch.no_grad():
        for b in range(2):
            for k in range(8):  # every channel, including all-zero ones the method skips
                up = F.interpolate(acts[b, k][None, None], size=(16, 16), mode="bilinear", align_corners=False)[0, 0]
                mask = (up - up.min()) / (up.max() - up.min()) if up.max() > up.min() else torch.zeros_like(up)
                pixels = x[b] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)
                masked = (pixels * mask - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
                assert torch.allclose(masked, black + mask * (x[b] - black), atol=1e-5)
                weights[b, k] = F.softmax(net(masked[None]), 1)[0, target[b]]
    cam = F.relu((weights[:, :, None, None] * acts).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    out = make(ScoreCAM, net).attribute(x, target).maps
    assert torch.allclose(out, expected, atol=1e-5)
    net64, x64 = in_float64(net, x)
    assert_same_but_for_order(make(ScoreCAM, net64, batch_size=64).attribute(x64, target).maps,
                              make(ScoreCAM, net64).attribute(x64, target).maps)


def test_ablationcam_weights_by_hand(net, batch):
    # Zero each channel by running the head on an edited copy of the layer output.
    x, target = batch
    with torch.no_grad():
        acts = net.block(net.stem(x))
        y = net.head(acts.flatten(1)).gather(1, target[:, None])
        weights = torch.zeros(2, 8)
        for k in range(8):
            edited = acts.clone()
            edited[:, k] = 0
            weights[:, k] = ((y - net.head(edited.flatten(1)).gather(1, target[:, None])) / y)[:, 0]
    cam = F.relu((weights[:, :, None, None] * acts).sum(1, keepdim=True))
    expected = F.interpolate(cam, size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    for size in (3, 8):
        assert torch.allclose(make(AblationCAM, net, batch_size=size).attribute(x, target).maps, expected, atol=1e-5)


def test_cam_hooks_removed_on_error_and_no_state_kept(net, batch):
    x, _ = batch
    for cls in CAMS:
        explainer = make(cls, net)
        before = dict(vars(explainer))
        explainer.attribute(x, torch.tensor([1, 0]))
        assert vars(explainer) == before
        with pytest.raises((RuntimeError, IndexError)):
            explainer.attribute(x, torch.tensor([0, 7]))  # no class 7: fails after the hook fired
        assert not net.block._forward_hooks, cls.key
    with pytest.raises(ValueError, match="layer"):
        GradCAMPlusPlus(net).attribute(x, torch.tensor([0, 1]))
    assert issubclass(ScoreCAM, CAM) and issubclass(AblationCAM, CAM)


class RedTopLeft(nn.Module):
    """Class 0's logit is the red channel summed over the top-left quadrant."""

    def forward(self, x):
        h, w = x.shape[-2:]
        score = x[:, 0, : h // 2, : w // 2].sum((1, 2))
        return torch.stack([score, -score], 1)


def quadrant_image(size: int = 24) -> torch.Tensor:
    """Four flat colour quadrants with a little noise, pixel values in [0.2, 1]."""
    generator = torch.Generator().manual_seed(5)
    colours = torch.tensor([[0.9, 0.3, 0.3], [0.3, 0.9, 0.3], [0.3, 0.3, 0.9], [0.8, 0.8, 0.3]])
    image = torch.empty(3, size, size)
    half = size // 2
    for (r, c), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], colours):
        image[:, r * half:(r + 1) * half, c * half:(c + 1) * half] = colour.view(3, 1, 1)
    return (image + 0.05 * torch.rand(3, size, size, generator=generator)).clamp(0.2, 1)[None]


def test_lime_finds_the_region_the_model_reads():
    x, target = quadrant_image(), torch.tensor([0])
    explainer = Lime(RedTopLeft(), n_samples=120, n_segments=16, seed=1)
    segments = explainer.superpixels(x[0])
    assert segments.min() == 0 and segments.max() + 1 == len(segments.unique())
    state = torch.get_rng_state()
    maps = explainer.attribute(x, target).maps[0]
    assert torch.equal(torch.get_rng_state(), state)
    inside = torch.zeros(24, 24, dtype=torch.bool)
    inside[:12, :12] = True
    assert maps.max() > 0
    assert maps[inside].sum() > 0.95 * maps.sum()
    assert inside[maps > 0.5 * maps.max()].all()
    assert torch.equal(explainer.attribute(x, target).maps[0], maps)
    other = Lime(RedTopLeft(), n_samples=120, n_segments=16, seed=2).attribute(x, target).maps[0]
    assert not torch.equal(other, maps)


class LooksAtPatch(nn.Module):
    """Class 0's logit is linear in the pixels of a 4x4 patch at rows 10-13, columns 2-5."""

    def forward(self, x):
        score = x[:, :, 10:14, 2:6].sum((1, 2, 3)) - 12
        return torch.stack([score, torch.zeros_like(score)], 1)


def test_rise_peaks_where_the_model_looks_and_reuses_masks():
    generator = torch.Generator().manual_seed(4)
    images = 0.5 + 0.5 * torch.rand(2, 3, 16, 16, generator=generator)
    target = torch.tensor([0])
    rise_masks.cache_clear()
    explainer = RISE(LooksAtPatch(), n_masks=300, grid=4, keep_prob=0.5, seed=0, batch_size=64)
    first = explainer.attribute(images[:1], target).maps[0]
    second = explainer.attribute(images[1:], target).maps[0]
    assert rise_masks.cache_info().misses == 1 and rise_masks.cache_info().hits == 1
    for maps in (first, second):
        patch = torch.zeros(16, 16, dtype=torch.bool)
        patch[10:14, 2:6] = True
        assert maps[patch].mean() > maps[~patch].mean() * 1.1
        row, col = divmod(int(maps.argmax()), 16)
        assert 8 <= row <= 15 and 0 <= col <= 7
    masks = rise_masks(300, 4, 0.5, 0, 16, 16)
    assert masks.shape == (300, 1, 16, 16) and 0 <= masks.min() and masks.max() <= 1
    assert abs(masks.mean().item() - 0.5) < 0.05
    # the formula, written out: sum_i P(target | black + M_i (x - black)) M_i / (N p)
    with torch.no_grad():
        probs = F.softmax(LooksAtPatch()(masks * images[:1]), 1)[:, 0]
    assert torch.allclose(first, (probs[:, None, None] * masks[:, 0]).sum(0) / 150, atol=1e-5)
    again = RISE(LooksAtPatch(), n_masks=300, grid=4, keep_prob=0.5, seed=0).attribute(images[:1], target)
    assert torch.allclose(again.maps[0], first, atol=1e-6)
    reseeded = RISE(LooksAtPatch(), n_masks=300, grid=4, keep_prob=0.5, seed=1).attribute(images[:1], target)
    assert not torch.allclose(reseeded.maps[0], first)


def occlusion_by_hand(net, x, target, window, stride, black):
    """Slide a black square; each pixel gets the mean score drop of the squares covering it."""

    def starts(length):
        out, pos = [0], 0
        while pos + window < length:
            pos += stride
            out.append(pos)
        return out

    height, width = x.shape[-2:]
    with torch.no_grad():
        base = net(x)[0, target]
        total, count = torch.zeros(height, width), torch.zeros(height, width)
        for top in starts(height):
            for left in starts(width):
                occluded = x.clone()
                occluded[..., top:top + window, left:left + window] = black[..., top:top + window, left:left + window]
                total[top:top + window, left:left + window] += base - net(occluded)[0, target]
                count[top:top + window, left:left + window] += 1
    return (total / count).clamp_min(0)


def test_occlusion_equals_sliding_window_drop(net, batch):
    x, _ = batch
    explainer = make(Occlusion, net, window=5, stride=3, batch_size=7)  # 16 px: the last window is cut
    for target in (0, 2):
        out = explainer.attribute(x[:1], torch.tensor([target])).maps[0]
        expected = occlusion_by_hand(net, x[:1], target, 5, 3, explainer.black_baseline(x[:1]))
        assert out.max() > 0
        assert torch.allclose(out, expected, atol=1e-5)


def test_smoothgrad_without_noise_is_the_base_method(net, batch):
    x, target = batch
    plain = Saliency(net).attribute(x, target).maps
    assert torch.equal(SmoothGrad(net, noise=0.0, nt_samples=2).attribute(x, target).maps, plain)
    ig = IntegratedGradients(net, input_mean=MEAN, input_std=STD, n_steps=4).attribute(x, target).maps
    smooth_ig = SmoothGradIG(net, input_mean=MEAN, input_std=STD, noise=0.0, nt_samples=2, n_steps=4)
    assert torch.allclose(smooth_ig.attribute(x, target).maps, ig, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [SmoothGrad, SmoothGradIG])
def test_smoothgrad_noise_is_seeded_per_image(net, batch, cls):
    x, target = batch
    state = torch.get_rng_state()
    first = make(cls, net, seed=3).attribute(x, target).maps
    assert torch.equal(torch.get_rng_state(), state)
    # each image is seeded on its own, so its map does not depend on the batch
    net64, x64 = in_float64(net, x)
    assert_same_but_for_order(make(cls, net64, seed=3).attribute(x64[1:], target[1:]).maps[0],
                              make(cls, net64, seed=3).attribute(x64, target).maps[1])


@pytest.mark.parametrize("key", SEEDED)
def test_seeded_methods_are_deterministic(net, batch, key):
    x, target = batch
    first = make(REGISTRY[key], net, seed=0).attribute(x, target).maps
    assert torch.equal(make(REGISTRY[key], net, seed=0).attribute(x, target).maps, first)
    assert not torch.equal(make(REGISTRY[key], net, seed=9).attribute(x, target).maps, first)


def test_parameter_errors(net, batch):
    x, target = batch
    with pytest.raises(ValueError, match="no parameter"):
        RISE(net, n_samples=10)
    with pytest.raises(ValueError, match="keep_prob"):
        RISE(net, keep_prob=0).attribute(x, target)
    with pytest.raises(ValueError, match="window"):
        Occlusion(net, window=32).attribute(x, target)
    with pytest.raises(ValueError, match="noise"):
        SmoothGrad(net, noise=-1).attribute(x, target)


# ---------------------------------------------------------------- SmoothGrad, SmoothGrad-IG, LIME by hand
# The noise: each image's copies are drawn after torch.manual_seed(seed), in chunks of
# batch_size copies (then the remainder), each chunk one torch.normal call with stdev
# noise * (max - min) of the image in normalized space, as the SmoothGrad docstring says.
# Tolerances: the same float32 network on the same inputs; only the order of summation
# differs (a sum then a division instead of a mean, batches of another size), a few ulps.


def seeded_noisy_copies(image, n, chunk, noise, seed):
    """The (n, 3, H, W) noisy copies of ``image`` (3, H, W) that the docstring describes."""
    stdev = noise * float(image.max() - image.min())
    sizes = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        draws = [torch.normal(0.0, torch.full((k, *image.shape), stdev)) for k in sizes]
    return image + torch.cat(draws)


def input_gradients(net, x, target):
    """d net(x)[i, target] / d x[i] for every row of x (eval mode: rows do not interact)."""
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(net(x)[:, target].sum(), x)[0]


def test_smoothgrad_is_the_mean_absolute_gradient_over_seeded_noisy_copies(net, batch):
    x, target = batch
    params = dict(nt_samples=5, batch_size=2, noise=0.2, seed=4)  # chunks of 2, 2 and 1
    out = SmoothGrad(net, **params).attribute(x, target).maps
    for b in range(2):
        copies = seeded_noisy_copies(x[b], 5, 2, 0.2, 4)
        expected = input_gradients(net, copies, int(target[b])).abs().mean(0).amax(0)
        torch.testing.assert_close(out[b], expected, rtol=1e-5, atol=1e-6)
    plain = Saliency(net).attribute(x, target).maps
    assert (out - plain).abs().max() > 0.05 * plain.max()  # the noise changed the map: the check is not vacuous


def test_smoothgrad_ig_is_the_mean_of_ig_over_seeded_noisy_copies(net, batch):
    x, target = batch
    n_steps = 4
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)  # Gauss-Legendre on [-1, 1] ...
    alphas, step = (1 + nodes) / 2, weights / 2                 # ... moved to [0, 1]
    black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(3, 1, 1)
    out = make(SmoothGradIG, net, nt_samples=3, batch_size=2, noise=0.2, n_steps=n_steps, seed=4).attribute(x, target)
    for b in range(2):
        copies = seeded_noisy_copies(x[b], 3, 2, 0.2, 4)
        total = torch.zeros_like(copies)
        for a, w in zip(alphas, step):
            total += float(w) * input_gradients(net, black + float(a) * (copies - black), int(target[b]))
        ig = (copies - black) * total  # IG of every copy from the black image
        expected = ig.mean(0).abs().sum(0)  # signed mean over the copies, then |.| summed over RGB
        torch.testing.assert_close(out.maps[b], expected, rtol=1e-5, atol=1e-6)
    plain = IntegratedGradients(net, input_mean=MEAN, input_std=STD, n_steps=n_steps).attribute(x, target).maps
    assert (out.maps - plain).abs().max() > 0.05 * plain.max()


def test_lime_is_a_weighted_ridge_fit_over_the_seeded_patterns(net):
    from sklearn.linear_model import Ridge

    # flat colour quadrants (SLIC finds a single superpixel in 16 px of noise), and the same flipped
    pixels = quadrant_image(16)
    x = (torch.cat([pixels, pixels.flip(-1)]) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    target = torch.tensor([0, 2])
    n_samples, seed = 60, 5
    explainer = make(Lime, net, n_samples=n_samples, n_segments=16, seed=seed, batch_size=16)
    out = explainer.attribute(x, target).maps
    black = ((0 - torch.tensor(MEAN)) / torch.tensor(STD)).view(3, 1, 1)
    for b in range(2):
        segments = explainer.superpixels(x[b])
        n_features = int(segments.max()) + 1
        assert n_features >= 4
        # the on/off patterns: one fair coin per superpixel and sample, from a generator seeded per image
        generator = torch.Generator().manual_seed(seed)
        patterns = torch.cat([torch.bernoulli(torch.full((1, n_features), 0.5), generator=generator)
                              for _ in range(n_samples)])
        keep = patterns[:, segments].unsqueeze(1).bool()  # (N, 1, H, W)
        with torch.no_grad():
            scores = net(torch.where(keep, x[b], black))[:, target[b]].double().numpy()
        # the reference lime package's kernel: cosine distance to the all-on pattern, width 0.25
        z = patterns.double().numpy()
        norms = np.linalg.norm(z, axis=1) * np.sqrt(n_features)
        cosine = np.divide(z.sum(1), norms, out=np.zeros(n_samples), where=norms > 0)  # an all-off pattern: 0
        kernel = np.exp(-(1 - cosine) ** 2 / (2 * 0.25**2))
        coef = Ridge(alpha=1.0).fit(z, scores, sample_weight=kernel).coef_
        assert coef.max() > 0 and coef.min() < 0  # both signs present, so the clamp is exercised
        expected = torch.from_numpy(coef).float()[segments].clamp_min(0)
        # float32 logits and weights enter a ridge system whose condition number is at most
        # 1 + n_samples (eigenvalues between alpha = 1 and the weighted Gram's n_samples + 1):
        # 1e-4 of the largest weight covers that amplification of float32 rounding
        torch.testing.assert_close(out[b], expected, rtol=0, atol=1e-4 * float(np.abs(coef).max()))
