"""Integrated Gradients from a black image (in pixel space), |attr| summed over RGB.

Extras per image: ``delta`` (the convergence delta, sum(attr) - (F(x) - F(b))) and
``relative_delta`` = |delta| / |F(x) - F(b)|, the share of the score change the
attributions fail to account for. It is NaN, meaning undefined, where F(x) = F(b) exactly:
with no score change there is no share to take (0 would read as perfect, inf as hopeless).
F(x) comes from the caller's ``scores`` when given; F(b), the black image's scores, is
computed once per explainer (the black image is the same for every input of a size), so an
explainer assumes its classifier's weights do not change while it is in use.

With ``tolerance`` set, the fixed rule gives way to a trapezoid rule refined where the
completeness check fails (``ig_path``) until ``relative_delta`` is at most ``tolerance`` at
two refinements in a row or ``max_steps`` gradient evaluations are spent; ``n_steps`` and
``method`` are then unused, and F(x), F(b) are the path's own end nodes. More extras per
image: ``gap_bound`` (the path intervals' |gaps| summed, relative like ``relative_delta`` and
never below it), ``steps`` (evaluations used), ``converged`` (1 or 0),
``stability_spearman`` (Spearman of the map with the map one refinement earlier) and
``previous_map`` (that map, (H, W); the engine turns it into a TKO change where a mask is
known). The fixed rule reports ``steps`` = ``n_steps`` and NaN for ``converged`` and
``stability_spearman``: no tolerance was asked for, no stability measured.
"""

from __future__ import annotations

import torch

from pixel_evidence.explainers.base import INPUT_GRAD, Attribution, Explainer, gradient_pass
from pixel_evidence.explainers.ig_path import fixed_rule, integrate_to_tolerance

# Most steps per forward/backward when ``internal_batch_size`` is None, on a CPU. A moderate
# chunk is as fast per step as one batch of all steps or faster (a whole 224 px batch's
# activations do not stay in cache) and needs a fraction of the memory; the steps are
# spread evenly over the chunks (25 steps -> 4 + 4 + 4 + 4 + 3 + 3 + 3, not 4 * 6 + 1). At
# 224 px on 2 cores, chunks of 4 took 0.60 s an image and chunks of 8 0.60 s in one comparison,
# 0.53 s in the benchmark's chunk table (chunks of 2: 0.76 s). Chunks of 4 halve the graph a
# server keeps between a forward and its backward, which kept the soak under its memory
# limit; that is worth up to a tenth of IG's time here. On a GPU all steps go in one batch.
CPU_STEPS_PER_CHUNK = 4
GPU_STEPS_PER_CHUNK = 64  # nodes per forward/backward of a refinement on a GPU


class IntegratedGradients(Explainer):
    key = "ig"
    # internal_batch_size None = chosen per device (all steps at once on a GPU); the
    # chunking does not change the result.
    defaults = {"n_steps": 25, "method": "gausslegendre", "internal_batch_size": None, "tolerance": None,
                "max_steps": 512}
    batch_images = False  # the steps already form a batch; one image per call keeps memory flat
    needs_scores = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._baseline_scores: dict[tuple, torch.Tensor] = {}

    def chunk_size(self, n_images: int, device: torch.device) -> int:
        """Examples per forward/backward: ``internal_batch_size`` or the device's choice."""
        n_steps = max(1, int(self.params["n_steps"]))
        if self.params["internal_batch_size"]:
            return int(self.params["internal_batch_size"])
        if device.type == "cuda":
            return n_images * n_steps
        chunks = -(-n_steps // CPU_STEPS_PER_CHUNK)
        return n_images * -(-n_steps // chunks)

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor,
                   scores: torch.Tensor | None = None) -> Attribution:
        if self.params["tolerance"] is not None:
            return self._to_tolerance(inputs, target)
        n_steps = int(self.params["n_steps"])
        alphas, weights = (torch.as_tensor(a) for a in fixed_rule(self.params["method"], n_steps))
        baseline = self.black_baseline(inputs)
        chunk = self.chunk_size(1, inputs.device)
        # the weighted sum over the nodes in float64: the rule's own error, not the sum's, remains
        attr = torch.stack([
            torch.einsum("n,nchw->chw", weights.to(x.device), self._path_evaluator(x, b, t, chunk)(alphas)[1].double())
            for x, b, t in zip(inputs.detach(), baseline, target)]).to(inputs.dtype)
        # The completeness gap F(x) - F(b), with no forward when both end points are known
        # (the nodes need not include either end).
        with torch.no_grad():
            if scores is None:
                scores = self.classifier(inputs)
            gap = scores.gather(1, target[:, None])[:, 0] - self._black_scores(baseline)[target]
        delta = attr.sum(dim=(1, 2, 3)) - gap
        nan = torch.full_like(gap, torch.nan)
        relative = torch.where(gap != 0, delta.abs() / gap.abs(), nan)
        return Attribution(attr.abs().sum(dim=1), {"delta": delta, "relative_delta": relative,
                                                   "steps": torch.full_like(gap, n_steps), "converged": nan,
                                                   "stability_spearman": nan})

    def _to_tolerance(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        tolerance, cap = float(self.params["tolerance"]), int(self.params["max_steps"])
        baseline = self.black_baseline(inputs)
        chunk = int(self.params["internal_batch_size"] or (GPU_STEPS_PER_CHUNK if inputs.device.type == "cuda"
                                                           else CPU_STEPS_PER_CHUNK))
        results = [integrate_to_tolerance(self._path_evaluator(x, b, t, chunk), tolerance, cap)
                   for x, b, t in zip(inputs.detach(), baseline, target)]
        maps = torch.stack([r.attribution.abs().sum(0) for r in results])

        def extra(name: str) -> torch.Tensor:
            return torch.tensor([float(getattr(r, name)) for r in results], dtype=torch.float32)

        return Attribution(maps, {"delta": extra("delta"), "relative_delta": extra("relative_delta"),
                                  "gap_bound": extra("gap_bound"), "steps": extra("steps"),
                                  "converged": extra("converged"),
                                  "stability_spearman": extra("stability_spearman"),
                                  "previous_map": torch.stack([r.previous_map for r in results]).float()})

    def _path_evaluator(self, x: torch.Tensor, baseline: torch.Tensor, target: torch.Tensor, chunk: int):
        """``alphas -> (F at each node, (x - b) * gradient at each node)`` for one image, at most
        ``chunk`` nodes per forward/backward, spread evenly over the chunks."""
        direction = x - baseline

        def evaluate(alphas: torch.Tensor):
            scores, contributions = [], []
            n = len(alphas)
            parts = max(1, -(-n // chunk))  # as few as ``chunk`` allows, their sizes within one of each other
            sizes = [n // parts + (i < n % parts) for i in range(parts)]
            for part in alphas.to(device=x.device, dtype=x.dtype).split(sizes):
                points = baseline + part.view(-1, 1, 1, 1) * direction
                p = gradient_pass(self.classifier, None, points, target.expand(len(points)), {INPUT_GRAD})
                scores.append(p.scores[:, target])
                contributions.append(p.input_grad * direction)
            return torch.cat(scores), torch.cat(contributions)

        return evaluate

    def _black_scores(self, baseline: torch.Tensor) -> torch.Tensor:
        """Logits (C,) of the black image ``baseline[0]`` (all rows are equal), memoized per
        image size, dtype and device."""
        key = (tuple(baseline.shape[1:]), baseline.dtype, baseline.device)
        if key not in self._baseline_scores:
            self._baseline_scores[key] = self.classifier(baseline[:1])[0].detach()
        return self._baseline_scores[key]
