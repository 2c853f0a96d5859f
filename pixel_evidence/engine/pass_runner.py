"""Running several explainers on one batch, sharing gradient passes where they can.

Methods that need nothing but one forward and one backward of the target scores (Saliency
and the CAM family, see ``Explainer.pass_needs``) are grouped by network and layer and read
one shared :func:`~pixel_evidence.explainers.base.gradient_pass`; every other method runs on its
own. The result of each method equals that of calling its ``attribute`` alone.

Every call is reported to ``count(n)``, where ``n`` is the number of method maps it
computes. Locking is not the runner's job: the engine's classifiers take the model lock for
each forward (and a hooked pass for the hook's lifetime), so a request waits for at most
one forward of another one. Slow methods run their forwards at ``SLOW`` priority, so
that a quick request's forwards go before their next one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Sequence

import torch

from pixel_evidence.engine.priority_lock import SLOW, at_most
from pixel_evidence.explainers.base import Attribution, Explainer, GradientPass, _check, _finish, gradient_pass


def pass_groups(explainers: Sequence[Explainer]) -> list[list[int]]:
    """Indices of ``explainers`` grouped into calls: methods that can share a gradient
    pass on the same classifier and layer form one group, every other method its own."""
    groups: list[list[int]] = []
    shared: dict[tuple[int, int], list[int]] = {}
    for i, ex in enumerate(explainers):
        if not ex.pass_needs:
            groups.append([i])
            continue
        key = (id(ex.classifier), id(ex.layer))
        if key not in shared:
            shared[key] = []
            groups.append(shared[key])
        shared[key].append(i)
    return groups


def shared_pass(explainers: Sequence[Explainer], inputs: torch.Tensor, target: torch.Tensor | None,
                also: frozenset[str] = frozenset()) -> tuple[GradientPass, list[Attribution]]:
    """One gradient pass covering the needs of every (pass-sharing) explainer plus ``also``,
    and each explainer's attribution read from it. ``target`` None: each image's
    top-scoring class (the pass's ``target`` says which)."""
    if not explainers or not all(ex.pass_needs for ex in explainers):
        raise ValueError("a shared pass needs one or more pass-sharing methods")
    needs = frozenset(also).union(*(ex.pass_needs for ex in explainers))
    if target is not None:
        target = _check(inputs, target)
    first = explainers[0]
    p = gradient_pass(first.classifier, first.layer, inputs, target, needs)
    out = []
    for ex in explainers:
        with _pace(ex):  # Score-CAM and Ablation-CAM run forwards of their own from the pass
            out.append(_finish(ex.from_pass(p)))
    return p, out


class PassRunner:
    """Runs explainers on batches: one shared pass per group, one image per call for
    methods that batch internally (``batch_images`` False), each call reported to ``count``."""

    def __init__(self, count: Callable[[int], None] = lambda calls: None):
        self.count = count

    def attribute(self, explainers: Sequence[Explainer], inputs: torch.Tensor, target: torch.Tensor,
                  scores: torch.Tensor | None = None) -> list[Attribution]:
        """Every explainer's attribution of ``inputs`` (B, 3, H, W) for ``target`` (B,),
        in the order given. ``scores`` (B, C): the inputs' logits when known (methods that
        need them then skip that forward; see ``Explainer.attribute``)."""
        target = _check(inputs, target)
        out: list[Attribution | None] = [None] * len(explainers)
        for group in pass_groups(explainers):
            members = [explainers[i] for i in group]
            step = len(inputs) if all(e.batch_images for e in members) else 1
            parts: list[list[Attribution]] = [[] for _ in members]
            for j in range(0, len(inputs), step):
                chunk = slice(j, j + step)
                self.count(len(members))
                if len(members) == 1:
                    with _pace(members[0]):
                        results = [members[0].attribute(inputs[chunk], target[chunk],
                                                        scores[chunk] if scores is not None else None)]
                else:
                    results = shared_pass(members, inputs[chunk], target[chunk])[1]
                for part, r in zip(parts, results):
                    part.append(r)
            for i, part in zip(group, parts):
                out[i] = part[0] if len(part) == 1 else _concat(part)
        return out  # type: ignore[return-value]

    def predict_with(self, explainers: Sequence[Explainer], inputs: torch.Tensor, target: torch.Tensor | None,
                     also: frozenset[str] = frozenset()) -> tuple[GradientPass, list[Attribution]]:
        """The pass-sharing ``explainers``' maps and the class scores from one forward and
        backward (see :func:`shared_pass`), counted as one call for the prediction and one
        per map."""
        self.count(1 + len(explainers))
        return shared_pass(explainers, inputs, target, also)


def _pace(explainer: Explainer) -> AbstractContextManager:
    """Slow methods' forwards wait behind every quicker request's (see ``priority_lock``)."""
    return at_most(SLOW) if explainer.slow else nullcontext()


def _concat(parts: Sequence[Attribution]) -> Attribution:
    return Attribution(torch.cat([r.maps for r in parts]),
                       {k: torch.cat([r.extras[k] for r in parts]) for k in parts[0].extras})
