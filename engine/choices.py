"""The choices the command line offers, importable without torch (or pandas):
``pixel-evidence --help`` and the data commands must not wait seconds for them.

The backbones, targets and faithfulness starts are defined here and imported by the engine.
The method keys and the metric words repeat the method registry and ``evaluate``'s table,
which need torch or pandas; tests/test_layout.py checks that these copies agree with them.
"""

BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "none")
METHODS = ("gradcam", "saliency", "ig", "gradcam_pp", "xgradcam", "scorecam", "ablationcam", "lime", "rise",
           "occlusion", "smoothgrad", "smoothgrad_ig", "sidu")
DEFAULT_METHODS = ("gradcam", "saliency", "ig")
TARGETS = ("predicted", "true")
FAITHFULNESS_STARTS = ("black", "blur")
METRICS = ("pointing", "relevance_mass", "auroc", "agreement", "faithfulness", "sanity")
