"""The choices the command line offers, importable without torch (or pandas):
``pixel-evidence --help`` and the data commands must not wait seconds for them.

The engine's own tables stay the truth (the backbones, the method registry, the targets, the
faithfulness starts, the metric words of ``evaluate``); tests/test_layout.py checks that
these copies agree with them.
"""

BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "none")
METHODS = ("gradcam", "saliency", "ig", "gradcam_pp", "xgradcam", "scorecam", "ablationcam", "lime", "rise",
           "occlusion", "smoothgrad", "smoothgrad_ig")
DEFAULT_METHODS = ("gradcam", "saliency", "ig")
TARGETS = ("predicted", "true")
FAITHFULNESS_STARTS = ("black", "blur")
METRICS = ("pointing", "relevance_mass", "auroc", "agreement", "faithfulness", "sanity")
