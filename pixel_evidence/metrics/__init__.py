"""Pixel-level scores for attribution maps and the rankings built on them.

One module per job; this package re-exports their public, torch-free API, so the
dashboard can ``from pixel_evidence.metrics import ...`` without loading torch:

- :mod:`.ties`: the tie rules (shared top-K slots, average ranks) every score uses;
- :mod:`.inputs`: the shape and finiteness checks every score applies to its inputs, and
  the one reading of a mask as a boolean defect region;
- :mod:`.localisation`: per-image scores of a map against the defect mask (TKO, chance,
  lift, IoU, pointing game, relevance mass, AUROC);
- :mod:`.scores`: the registry of localisation scores that evaluation, results and the
  dashboard read;
- :mod:`.ranking`: ranks and win shares of the methods on one image;
- :mod:`.aggregate`: win rates over a table of images and their spread over seeds;
- :mod:`.significance`: Friedman, Nemenyi (critical difference) and Wilcoxon-Holm tests of
  the methods' differences over images, per seed and pooled;
- :mod:`.agreement`: how alike two methods' maps are, and the sanity check's pass threshold;
- :mod:`.curves`: the area under a deletion / insertion curve;
- :mod:`.classification`: balanced accuracy, for training and evaluation alike;
- :mod:`.topk_picture`: the top-K pixel picture the dashboard draws.

:mod:`.faithfulness` and :mod:`.sanity` need torch and the model; import them by their
full path.
"""

from __future__ import annotations

from pixel_evidence.metrics.aggregate import OVERALL, summarize_over_seeds, win_rates
from pixel_evidence.metrics.agreement import (AGREEMENT_STATS, SANITY_PASS_THRESHOLD, agreement, pearson, spearman,
                                              top_fraction_iou, top_fraction_membership)
from pixel_evidence.metrics.classification import balanced_accuracy
from pixel_evidence.metrics.curves import curve_auc
from pixel_evidence.metrics.inputs import defect_region
from pixel_evidence.metrics.localisation import (auroc, chance_level, lift, localisation_scores, pointing_game,
                                                 relevance_mass, top_k_iou, top_k_overlap)
from pixel_evidence.metrics.ranking import rank_methods, win_shares
from pixel_evidence.metrics.significance import (MethodComparison, SeedComparison, block_matrix, compare_methods,
                                                 compare_over_seeds, critical_difference, holm_adjust, rank_biserial)
from pixel_evidence.metrics.ties import TopSelection, average_ranks, top_selection

__all__ = [
    "top_k_overlap",
    "chance_level",
    "lift",
    "top_k_iou",
    "localisation_scores",
    "pointing_game",
    "relevance_mass",
    "auroc",
    "rank_methods",
    "win_shares",
    "win_rates",
    "summarize_over_seeds",
    "MethodComparison",
    "SeedComparison",
    "block_matrix",
    "compare_methods",
    "compare_over_seeds",
    "critical_difference",
    "holm_adjust",
    "rank_biserial",
    "OVERALL",
    "pearson",
    "spearman",
    "top_fraction_membership",
    "top_fraction_iou",
    "agreement",
    "AGREEMENT_STATS",
    "SANITY_PASS_THRESHOLD",
    "curve_auc",
    "defect_region",
    "balanced_accuracy",
    "TopSelection",
    "top_selection",
    "average_ranks",
]
