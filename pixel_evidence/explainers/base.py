"""The one interface every attribution method implements.

An explainer wraps a classifier ``f: (B, 3, H, W) -> (B, C)`` (normalized inputs, class
logits) and, for a target class per image, returns non-negative importance maps of shape
``(B, H, W)``, float32, at input resolution. Methods that need a layer (the CAM family)
take it from ``layer``.

Gradient methods that need nothing but one forward and one backward of the target
scores (Saliency, Grad-CAM) say so with ``pass_needs`` and implement ``from_pass``; when
several of them are asked for on the same batch, ``pixel_evidence.engine.pass_runner.PassRunner`` runs that pass once
and lets each read what it needs from it. Every other method implements
``_attribute`` and runs on its own; one that needs the classifier's scores of the inputs
themselves (Integrated Gradients, for its convergence gap) sets ``needs_scores`` and takes
them from the caller when the caller already has them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from pixel_evidence.methods import method

# What a shared pass can provide: the gradient at the input, the layer's output, and the
# layer's output with the gradient at that output.
INPUT_GRAD = "input_grad"
ACTIVATION = "activation"
LAYER_GRAD = "layer_grad"


@dataclass
class Attribution:
    """Maps ``(B, H, W)`` float32 >= 0 and optional per-image extras, each of shape ``(B,)``;
    one extra, ``previous_map`` (B, H, W), is a map the method had one refinement before
    its final one (see ``explanation.assemble``)."""

    maps: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def per_image(self) -> list[dict[str, np.ndarray]]:
        """One ``{"map": (H, W) float32, extra: ()}`` of numpy arrays per image."""
        maps = np.ascontiguousarray(self.maps.cpu().numpy(), dtype=np.float32)
        extras = {k: v.float().cpu().numpy() for k, v in self.extras.items()}
        return [{"map": maps[n], **{k: np.asarray(v[n]) for k, v in extras.items()}} for n in range(len(maps))]


@dataclass
class GradientPass:
    """The result of one forward (+ backward) of ``sum_i f(x_i)[target_i]``.

    ``inputs`` (B, 3, H, W) as given, ``scores`` (B, C) logits, ``target`` (B,) as given or,
    when none was given, each image's top-scoring class;
    ``input_grad`` (B, 3, H, W), ``activation`` and ``activation_grad`` (B, C', h, w) of the
    explainer's layer; a field is None when no method of the pass asked for it.
    """

    inputs: torch.Tensor
    scores: torch.Tensor
    target: torch.Tensor
    input_grad: torch.Tensor | None = None
    activation: torch.Tensor | None = None
    activation_grad: torch.Tensor | None = None


def gradient_pass(classifier: nn.Module, layer: nn.Module | None, inputs: torch.Tensor,
                  target: torch.Tensor | None, needs: frozenset[str] | set[str]) -> GradientPass:
    """One forward and, if a gradient is needed, one backward of the target scores, keeping
    what ``needs`` lists (``INPUT_GRAD``, ``ACTIVATION``, ``LAYER_GRAD``). ``target`` None
    means each image's top-scoring class, chosen from this same forward.

    Only the graph that the requested gradients need is built: with the layer gradient
    alone, the part of the network before the layer runs without autograd; with no
    gradient at all, the forward runs without autograd. The layer must run exactly once per
    forward, and what runs after it must not modify its output in place.
    """
    want_input = INPUT_GRAD in needs
    want_grad = LAYER_GRAD in needs
    want_activation = want_grad or ACTIVATION in needs
    if want_activation and layer is None:
        raise ValueError("this method needs a layer (the model's last conv block)")
    x = inputs.detach().requires_grad_(want_input)
    store: dict[str, torch.Tensor] = {}
    calls = []

    def keep(module, args, output):
        calls.append(1)
        if want_grad and not output.requires_grad:  # nothing upstream needs gradients: start the graph here
            output = output.detach().requires_grad_(True)
        store["activation"] = output
        # Later in-place operations must not overwrite the stored activation.
        return output.clone()

    # No other thread's forward may meet our hook, and the backward runs under the lock too.
    # Between them the graph keeps every activation of the forward; were the backward outside
    # the lock, each request thread could hold such a graph at once while the others' forwards
    # ran (eight threads with an IG chunk of 224 px images each: gigabytes). On a CPU a backward
    # already uses every core, so running them one at a time costs little.
    with network_lock(classifier):
        handle = layer.register_forward_hook(keep) if want_activation else None
        try:
            with torch.set_grad_enabled(want_input or want_grad):
                scores = classifier(x)
        finally:
            if handle is not None:
                handle.remove()
        if want_activation and len(calls) != 1:
            raise RuntimeError(f"the layer must run once per forward, it ran {len(calls)} times")
        activation = store["activation"] if want_activation else None
        if target is None:
            target = scores.detach().argmax(1)
        wrt = ([x] if want_input else []) + ([activation] if want_grad else [])
        grads = list(torch.autograd.grad(scores.gather(1, target[:, None]).sum(), wrt)) if wrt else []
    # Images in a batch do not interact in eval mode, so the gradient of the summed scores
    # holds each image's own gradient.
    return GradientPass(inputs, scores.detach(), target,
                        input_grad=grads.pop(0) if want_input else None,
                        activation=activation.detach() if want_activation else None,
                        activation_grad=grads.pop(0) if want_grad else None)


class RegisteredAttribute:
    """A class attribute of an explainer read from its method's entry in the registry
    (:mod:`pixel_evidence.methods`) by the class's ``key``, so that the label, cost note and
    slow flag are written in one place. A class outside the registry (a test's or a
    benchmark's stand-in) sets its own."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        return getattr(method(owner.key), self.name)


class Explainer:
    """Base class: subclasses set ``key`` (their entry in :mod:`pixel_evidence.methods`) and
    implement ``_attribute``, or set ``pass_needs`` and implement ``from_pass``.

    ``params`` holds the method's settings; they are part of every cache key, so two
    explainers with equal ``params`` must produce equal maps. ``batch_images`` False tells
    callers to send one image per call (a method that already batches internally).

    A method built on captum imports it where it calls it, not at the top of its file:
    importing captum takes about half a second (it loads matplotlib), which a server's first
    view (Grad-CAM, Saliency and IG, none of them captum's) should not wait for.
    """

    key: ClassVar[str]
    label = RegisteredAttribute()
    cost_note = RegisteredAttribute()
    slow = RegisteredAttribute()  # perturbation methods: many forwards, the UI warns
    defaults: ClassVar[dict[str, Any]] = {}
    pass_needs: ClassVar[frozenset[str]] = frozenset()
    needs_scores: ClassVar[bool] = False  # ``_attribute`` takes the inputs' scores (or None)
    batch_images: ClassVar[bool] = True

    def __init__(self, classifier: nn.Module, layer: nn.Module | None = None, *,
                 input_mean=(0.0, 0.0, 0.0), input_std=(1.0, 1.0, 1.0), **params: Any):
        unknown = set(params) - set(self.defaults)
        if unknown:
            raise ValueError(f"{self.label} has no parameter(s) {sorted(unknown)}; "
                             f"known: {sorted(self.defaults) or 'none'}")
        self.classifier = classifier
        self.layer = layer
        self.input_mean = tuple(float(v) for v in input_mean)
        self.input_std = tuple(float(v) for v in input_std)
        self.params = {**self.defaults, **params}

    def black_baseline(self, like: torch.Tensor) -> torch.Tensor:
        """A black image in pixel space, normalized like the inputs (see :func:`black_image`)."""
        return black_image(like, self.input_mean, self.input_std)

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor,
                  scores: torch.Tensor | None = None) -> Attribution:
        """``inputs`` (B, 3, H, W) normalized, ``target`` (B,) class indices.

        ``scores`` (B, C), optional: the classifier's logits of ``inputs`` when the caller
        already has them; a method that needs them then skips that forward. The result is
        the same either way.
        """
        target = _check(inputs, target)
        if self.pass_needs:
            return _finish(self.from_pass(gradient_pass(self.classifier, self.layer, inputs, target,
                                                        self.pass_needs)))
        # captum differentiates with respect to the inputs; say so up front rather than let it warn
        x = inputs.detach().requires_grad_(True)
        return _finish(self._attribute(x, target, scores) if self.needs_scores else self._attribute(x, target))

    def from_pass(self, p: GradientPass) -> Attribution:
        raise NotImplementedError

    def _attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> Attribution:
        raise NotImplementedError


def network_lock(classifier: nn.Module) -> AbstractContextManager:
    """The lock to hold while a hook is on ``classifier``'s network: the classifier's own
    ``lock`` when it has one (the engine's classifiers do: one per process for all their
    forwards), else none (a classifier no other thread uses)."""
    return getattr(classifier, "lock", None) or nullcontext()


def black_image(like: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Black in pixel space, normalized with ``mean``/``std``: (0 - mean) / std, shaped and
    laid out like ``like`` (B, 3, H, W). Not zeros: zero in normalized space is mid-grey."""
    m = torch.tensor(tuple(mean), dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    s = torch.tensor(tuple(std), dtype=like.dtype, device=like.device).view(1, 3, 1, 1)
    return ((0 - m) / s).expand_as(like).contiguous(memory_format=_memory_format(like))


def _memory_format(t: torch.Tensor) -> torch.memory_format:
    if t.ndim == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _check(inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if inputs.ndim != 4 or inputs.shape[1] != 3:
        raise ValueError(f"inputs must be (B, 3, H, W), got {tuple(inputs.shape)}")
    target = torch.as_tensor(target, device=inputs.device).long().view(-1)
    if target.numel() != inputs.shape[0]:
        raise ValueError(f"{target.numel()} targets for a batch of {inputs.shape[0]}")
    return target


def _finish(out: Attribution) -> Attribution:
    out.maps = out.maps.detach().float().clamp_min_(0).contiguous()
    return out
