"""Models: encoder backbones, the multitask network, inference preparation, checkpoints and
training (``engine.models.train``, imported on its own: it pulls in the training loop)."""

from .backbones import BACKBONES, Normalization, WeightsUnavailableError, backbone_normalization, build_encoder
from .checkpoint import CheckpointError, available_seeds, load_model, read_metadata, save_checkpoint
from .inference import fold_batchnorm, prepare_for_inference
from .multitask import ClassifierView, MultitaskNet, build_decoder

__all__ = ["BACKBONES", "CheckpointError", "ClassifierView", "MultitaskNet", "Normalization",
           "WeightsUnavailableError", "available_seeds", "backbone_normalization", "build_decoder",
           "build_encoder", "fold_batchnorm", "load_model", "prepare_for_inference", "read_metadata",
           "save_checkpoint"]
