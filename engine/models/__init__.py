"""Models: encoder backbones, the networks built on them (multitask, plain classifier, a
user's own), inference preparation, checkpoints and training (``engine.models.train``,
imported on its own: it pulls in the training loop)."""

from .backbones import (BACKBONE_SPECS, Backbone, Normalization, WeightsUnavailableError, backbone_normalization,
                        build_encoder, get_backbone)
from .checkpoint import CheckpointError, available_seeds, load_model, read_metadata, save_checkpoint
from .encoder_net import ClassifierNet
from .inference import fold_batchnorm, prepare_for_inference
from .multitask import MultitaskNet, build_decoder
from .network import ClassifierView, ExplainableNet, ModelDefinitionError
from .recipe import ModelRecipe, model_description
from .user_model import UserModel, UserNet

__all__ = ["BACKBONE_SPECS", "Backbone", "CheckpointError", "ClassifierNet", "ClassifierView", "ExplainableNet",
           "ModelDefinitionError", "ModelRecipe", "MultitaskNet", "Normalization", "UserModel", "UserNet",
           "WeightsUnavailableError", "available_seeds", "backbone_normalization", "build_decoder", "build_encoder",
           "fold_batchnorm", "get_backbone", "load_model", "model_description", "prepare_for_inference",
           "read_metadata", "save_checkpoint"]
