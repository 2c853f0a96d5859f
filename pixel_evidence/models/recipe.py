"""How a network is built, as a checkpoint's metadata records it and training reads it.

Metadata from before kinds, modes and Grad-CAM layer choices existed records only the
backbone: such a checkpoint is today's default, a multitask network on its backbone's
default Grad-CAM layer, trained in the "partial" mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pixel_evidence.choices import CUSTOM_BACKBONE, KINDS
from pixel_evidence.models.encoder_net import ClassifierNet
from pixel_evidence.models.multitask import MultitaskNet
from pixel_evidence.models.network import ExplainableNet, ModelDefinitionError
from pixel_evidence.models.user_model import build_user_net

DEFAULT_KIND = "multitask"
DEFAULT_MODE = "partial"


@dataclass(frozen=True)
class ModelRecipe:
    """The fields that rebuild a network: ``kind`` ("multitask" or "classifier"),
    ``backbone`` (a built-in backbone, or "custom" for ``model_module``), ``cam_layer`` (a
    module path; None: the default) and ``model_module`` ("path.py:function" of a user's
    builder, which makes a classifier)."""

    kind: str = DEFAULT_KIND
    backbone: str = "efficientnet_lite0"
    cam_layer: str | None = None
    model_module: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelDefinitionError(f"unknown model kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.model_module and self.kind == "multitask":
            # the decoder needs a stride-32 encoder output of known channels, which a
            # user's module does not promise
            raise ModelDefinitionError("--model-module builds a classifier: pass --kind classifier, or use a "
                                       "built-in --backbone for the multitask network")

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "ModelRecipe":
        return cls(kind=meta.get("kind", DEFAULT_KIND), backbone=meta["backbone"], cam_layer=meta.get("cam_layer"),
                   model_module=meta.get("model_module"))

    def build(self, num_classes: int, *, image_size: int, pretrained: bool = False) -> ExplainableNet:
        """The network, random or (``pretrained``) with the backbone's ImageNet weights."""
        if self.model_module:
            return build_user_net(self.model_module, num_classes, image_size=image_size, cam_layer=self.cam_layer)
        net_class = MultitaskNet if self.kind == "multitask" else ClassifierNet
        return net_class(num_classes, self.backbone, pretrained=pretrained, cam_layer=self.cam_layer)

    def metadata(self, net: ExplainableNet) -> dict[str, Any]:
        """What the checkpoint records of ``net``, built from this recipe: the Grad-CAM layer
        as resolved (the default one by name), so that loading does not depend on defaults."""
        if self.model_module:
            return {"kind": self.kind, "backbone": CUSTOM_BACKBONE, "model_module": self.model_module,
                    "cam_layer": net.cam_layer}
        return {"kind": self.kind, "backbone": self.backbone, "cam_layer": net.cam_layer}


def model_description(meta: Mapping[str, Any]) -> str:
    """One line naming a checkpoint's backbone, kind and training mode, for people:
    "resnet18, classifier, fine-tune" or "custom tiny_model.py:build, classifier, partial"."""
    backbone = meta["backbone"]
    if meta.get("model_module"):
        file, _, function = str(meta["model_module"]).rpartition(":")
        backbone = f"{backbone} {Path(file).name}:{function}"
    elif backbone == "none" or not (meta.get("hyperparameters") or {}).get("pretrained", True):
        backbone += " (random init)"
    return f"{backbone}, {meta.get('kind', DEFAULT_KIND)}, {meta.get('mode', DEFAULT_MODE)}"
