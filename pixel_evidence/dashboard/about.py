"""The "How to read this" tab: what the numbers mean, in the words of the data shown.

The category and its defect classes come from the data (the category folder's name, the
manifest's classes), so a tile or a screw set is not described as hazelnuts.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pixel_evidence.dashboard.catalogue import GOOD
from pixel_evidence.dashboard.markup import plain

_TEXT = """
## How to read this dashboard

**The question.** A classifier tells good images of {category} from defective ones ({defects}). Explanation
methods (Grad-CAM, Saliency, Integrated Gradients, ...) each produce a heatmap of "important" pixels.
Which one points at the actual defect?

**Top-K overlap (TKO).** Let K be the number of ground-truth defect pixels. Take the K highest pixels
of a method's map and count how many lie on the defect: TKO = hits / K, between 0 and 1.
Pixels that tie exactly at the cut-off value share the remaining top-K slots and count fractionally,
so pixel order never decides a score.

**Chance level and lift.** A random map scores K/N on average (N = all pixels). Lift = TKO / (K/N):
×1 is no better than chance. Small defects have a tiny chance level, so lifts can be large.

**IoU.** The overlap of the top-K set with the defect as intersection over union: hits / (2K − hits).
It ranks methods the same way as TKO on one image (both sets have K pixels).

**Winner.** The method with the highest TKO on an image wins it. Ties are ties: tied methods share the
rank (e.g. 1.5) and split the win. Good images have no defect pixels (K = 0): nothing to rank, no winner.

**Win rate (summary tab).** Over the correctly classified defect images, the share each method wins
(shared wins split). Shown per seed, so the boxes show how much it varies between training runs.

**Heatmap colours** are for display only: each map is stretched from its own 1st percentile (dark) to its
99.5th (bright), so one very bright pixel does not turn the rest black and a map on a high baseline (RISE's)
does not turn into a uniform wash: what is bright is what the top K takes. Numbers always use the raw maps.

**Integrated Gradients' convergence gap** (|δ| / |F(x) − F(baseline)|) says how much of the class
score change the attributions fail to account for; small is good. With 25 fixed steps (this page's
default) it is about 9% at the median on the shipped models, above 24% on one image in ten. Started
with `--ig-tolerance`, IG refines each image until the gap is within the tolerance at two
refinements in a row (the first grid does not count), says how stable the map was in the last
refinement (Spearman ρ, TKO change), and marks a map that did not get there by the step cap
(orange, NOT CONVERGED). The gap bounds the attributions' total, not each pixel: two methods whose
TKOs differ by less than about 0.006 on an image tie within IG's own error. The shipped models' tables on the summary
tab were made to `evaluate`'s 5% tolerance, so an IG TKO there can differ a little from this page's
25-step map of the same image (by 0.005 at the median).

**Target.** By default the maps explain the predicted class. Switch to the true class to see what the
model would have needed to look at, which matters on misclassified images.
"""


def about_markdown(category: str, classes: Sequence[str], seed_models: Mapping[int, str] | None = None) -> str:
    """The tab's text for the category named ``category`` with the manifest's ``classes``;
    ``seed_models`` (seed -> "backbone, kind, training mode") adds which model each seed is."""
    defects = ", ".join(plain(c) for c in classes if c != GOOD) or "none listed"
    text = _TEXT.format(category=f"<b>{plain(category)}</b>", defects=defects)
    return text + _models_text(seed_models) if seed_models else text


def _models_text(seed_models: Mapping[int, str]) -> str:
    """One line per distinct model recipe, with the seeds trained with it."""
    seeds_of: dict[str, list[int]] = {}
    for seed, description in sorted(seed_models.items()):
        seeds_of.setdefault(description, []).append(seed)
    lines = [f"- seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}: {plain(description)}"
             for description, seeds in seeds_of.items()]
    return ("\n**The models** (backbone, kind, training mode; the sidebar names the seed's model):\n\n"
            + "\n".join(lines) + "\n")
