"""Models: encoder backbones, the networks built on them (multitask, plain classifier, a
user's own), inference preparation, checkpoints and training (``pixel_evidence.models.train``,
imported on its own: it pulls in the training loop)."""

from pixel_evidence.models.backbones import (BACKBONE_SPECS, Backbone, Normalization, WeightsUnavailableError,
                                             backbone_normalization, build_encoder, get_backbone)
from pixel_evidence.models.checkpoint import (CheckpointError, available_seeds, load_model, read_metadata,
                                              save_checkpoint)
from pixel_evidence.models.encoder_net import ClassifierNet
from pixel_evidence.models.inference import fold_batchnorm, prepare_for_inference
from pixel_evidence.models.multitask import MultitaskNet, build_decoder
from pixel_evidence.models.network import ClassifierView, ExplainableNet, ModelDefinitionError
from pixel_evidence.models.recipe import ModelRecipe, model_description
from pixel_evidence.models.user_model import UserModel, UserNet

__all__ = ["BACKBONE_SPECS", "Backbone", "CheckpointError", "ClassifierNet", "ClassifierView", "ExplainableNet",
           "ModelDefinitionError", "ModelRecipe", "MultitaskNet", "Normalization", "UserModel", "UserNet",
           "WeightsUnavailableError", "available_seeds", "backbone_normalization", "build_decoder", "build_encoder",
           "fold_batchnorm", "get_backbone", "load_model", "model_description", "prepare_for_inference",
           "read_metadata", "save_checkpoint"]
