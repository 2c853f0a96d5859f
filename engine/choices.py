"""The choices the command line offers, importable without torch (or pandas):
``pixel-evidence --help`` and the data commands must not wait seconds for them.

The backbones, model kinds, training modes, targets and faithfulness starts are defined
here and imported by the engine. The method keys and the metric words repeat the method
registry and ``evaluate``'s table, which need torch or pandas; tests/test_layout.py checks
that these copies agree with them.
"""

# "none" is EfficientNet-B0 from a random init, as before --no-pretrained existed.
BACKBONES = ("efficientnet_lite0", "efficientnet_b0", "resnet18", "resnet50", "vgg11_bn", "none")
# What the metadata records as the backbone of a model built by a user's --model-module.
CUSTOM_BACKBONE = "custom"
KINDS = ("multitask", "classifier")
TRAINING_MODES = ("partial", "fine-tune", "feature-extraction")
METHODS = ("gradcam", "saliency", "ig", "gradcam_pp", "xgradcam", "scorecam", "ablationcam", "lime", "rise",
           "occlusion", "smoothgrad", "smoothgrad_ig", "sidu", "cam")
DEFAULT_METHODS = ("gradcam", "saliency", "ig")
TARGETS = ("predicted", "true")
FAITHFULNESS_STARTS = ("black", "blur")
SCORES = ("pointing", "relevance_mass", "auroc")  # localisation scores beside TKO (the sweep's --metrics)
METRICS = (*SCORES, "agreement", "faithfulness", "sanity")
