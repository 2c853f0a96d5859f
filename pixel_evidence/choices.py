"""The choices the command line offers, importable without torch:
``pixel-evidence --help`` and the data commands must not wait seconds for them.

The backbones, model kinds, training modes, targets and faithfulness starts are defined
here and imported by the engine. The metric words are read from the registries of
localisation scores (:mod:`pixel_evidence.metrics.scores`) and analyses
(:mod:`pixel_evidence.analyses`); the methods' from :mod:`pixel_evidence.methods`.
"""

import argparse

from pixel_evidence.analyses import ANALYSES
from pixel_evidence.metrics.scores import EXTRA_SCORES

# "none" is EfficientNet-B0 from a random init, as before --no-pretrained existed.
BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "resnet18", "resnet50", "vgg11_bn", "none")
# What the metadata records as the backbone of a model built by a user's --model-module.
CUSTOM_BACKBONE = "custom"
KINDS = ("multitask", "classifier")
TRAINING_MODES = ("partial", "fine-tune", "feature-extraction")
TARGETS = ("predicted", "true")
FAITHFULNESS_STARTS = ("black", "blur")
SCORES = EXTRA_SCORES  # localisation scores beside TKO (the sweep's --metrics)
METRICS = (*SCORES, *ANALYSES)  # evaluate's --metrics: the scores, and the analyses with tables of their own

# Integrated Gradients to a tolerance (pixel_evidence/explainers/ig_path.py): evaluate's default
# tolerance (README, "Integrated Gradients to a tolerance", says why this one) and step cap.
EVALUATE_IG_TOLERANCE = 0.05
IG_MAX_STEPS = 512


def ig_params(n_steps: int, tolerance: float | None, max_steps: int = IG_MAX_STEPS) -> dict:
    """Integrated Gradients' settings from the command-line words: a tolerance > 0 refines
    to it (up to ``max_steps``); None or 0 means the fixed rule of ``n_steps``."""
    if tolerance is not None and not tolerance >= 0:
        raise ValueError(f"--ig-tolerance must be >= 0 (0: a fixed rule of --ig-steps), got {tolerance}")
    if not tolerance:
        if n_steps < 1:
            raise ValueError(f"--ig-steps must be at least 1, got {n_steps}")
        return {"n_steps": int(n_steps)}
    if max_steps < 18:  # the first grid (17 nodes) and one refinement
        raise ValueError(f"--ig-max-steps must be at least 18, got {max_steps}")
    return {"tolerance": float(tolerance), "max_steps": int(max_steps)}

def parse_seeds(text: str) -> list[int]:
    """'42-51' or '42,43,50' or a mix -> sorted unique ints."""
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-", 1)
                seeds.update(range(int(lo), int(hi) + 1))
            elif part:
                seeds.add(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds {text!r}: use a list like 42,43 or a range like 42-51") from None
    if not seeds:
        raise argparse.ArgumentTypeError("seeds: give at least one seed")
    return sorted(seeds)
