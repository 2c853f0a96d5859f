"""A user's own classifier, named on the command line as ``--model-module path.py:build``.

``build(num_classes)`` returns a ``UserModel``; ``UserNet`` adapts it to the engine's
``ExplainableNet`` contract. Its weights are a plain state_dict like every checkpoint's, but
rebuilding the network runs the module's code: the metadata records the module's path, and
loading the models folder imports it again (open only models folders you trust).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import nn

from pixel_evidence.models.backbones import IMAGENET, Normalization
from pixel_evidence.models.network import ExplainableNet, ModelDefinitionError, find_layer

EXAMPLE = "examples/tiny_model.py:build"


class UserModel(NamedTuple):
    """What ``build(num_classes)`` returns.

    ``model``: (B, 3, H, W) normalized images -> (B, num_classes) class logits.
    ``cam_layer``: the layer Grad-CAM reads, as a module path inside ``model`` (e.g.
    "features.3") or the module itself; its output must be a (B, K, h, w) feature map.
    ``normalization``: the mean and std the inputs are normalized with.
    """

    model: nn.Module
    cam_layer: str | nn.Module
    normalization: Normalization = IMAGENET


def resolve_module_spec(spec: str) -> str:
    """``path.py:function`` with the path made absolute, as the metadata records it; a spec
    without a function or naming no file is a one-line ``ModelDefinitionError``."""
    path, sep, function = spec.rpartition(":")
    if not sep or not path or not function.isidentifier():
        raise ModelDefinitionError(f"--model-module {spec!r}: give a Python file and a function as path.py:function, "
                                   f"e.g. {EXAMPLE}")
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise ModelDefinitionError(f"--model-module {spec!r}: no file {file}; point it at your model's .py file "
                                   "(a models folder records where its module was: put the file back there)")
    if file.suffix != ".py":
        raise ModelDefinitionError(f"--model-module {spec!r}: {file} is not a Python file (.py); point it at the "
                                   f".py file that defines {function}")
    return f"{file}:{function}"


def _one_line(exc: BaseException) -> str:
    """An exception raised by the user's code, as one line: its type and first line."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_builder(spec: str) -> Callable[[int], UserModel]:
    """The ``build`` function named by ``spec``, its module imported once per process."""
    file, _, function = resolve_module_spec(spec).rpartition(":")
    name = "pixel_evidence_user_model_" + hashlib.sha256(file.encode()).hexdigest()[:16]
    module = sys.modules.get(name)
    if module is None:
        loader = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(loader)
        try:
            loader.loader.exec_module(module)
        except Exception as exc:  # the user's code: any error it raises is theirs to fix
            raise ModelDefinitionError(f"{file}: importing it failed with {_one_line(exc)}") from None
        sys.modules[name] = module
    build = getattr(module, function, None)
    if not callable(build):
        raise ModelDefinitionError(f"{file} has no function {function!r}; define {function}(num_classes) returning "
                                   "pixel_evidence.models.UserModel(model, cam_layer, normalization)")
    return build


class UserNet(ExplainableNet):
    """A ``UserModel`` as the engine runs it. Its top-level children are its stages for the
    training modes and the randomization check: all but the last are the encoder, the last
    is the head (a model that is one module has no encoder stages).

    ``forward(x)`` -> ``(logits (B, C), None)``: no mask decoder.
    """

    def __init__(self, built: UserModel, *, owner: str, cam_layer: str | None = None):
        path = cam_layer or (built.cam_layer if isinstance(built.cam_layer, str) else _path_of(built))
        super().__init__(path)
        self.model = built.model
        self.normalization = Normalization(*(tuple(float(v) for v in values) for values in built.normalization))
        find_layer(self.model, self.cam_layer, owner=owner)

    def cam_root(self) -> nn.Module:
        return self.model

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _children(self) -> list[tuple[str, nn.Module]]:
        return [(f"model.{name}", child) for name, child in self.model.named_children()]

    def encoder_stages(self) -> list[tuple[str, nn.Module]]:
        return self._children()[:-1]

    def head(self) -> list[tuple[str, nn.Module]]:
        return self._children()[-1:] or [("model", self.model)]


def build_user_net(spec: str, num_classes: int, *, image_size: int, cam_layer: str | None = None) -> UserNet:
    """Call ``spec``'s builder and check what it built on one zero batch of ``image_size``:
    a ``UserModel`` whose model gives (B, num_classes) logits and whose Grad-CAM layer gives
    a (B, K, h, w) map. Each problem is a one-line ``ModelDefinitionError``."""
    spec = resolve_module_spec(spec)
    builder = load_builder(spec)
    try:
        built = builder(num_classes)
    except Exception as exc:  # the user's code
        raise ModelDefinitionError(f"{spec}({num_classes}) raised {_one_line(exc)}") from None
    if not isinstance(built, UserModel) or not isinstance(built.model, nn.Module):
        raise ModelDefinitionError(f"{spec} returned {type(built).__name__}, not "
                                   "pixel_evidence.models.UserModel(model, cam_layer, normalization) with an nn.Module model")
    net = UserNet(built, owner=spec, cam_layer=cam_layer)
    _check_shapes(net, spec, num_classes, image_size)
    return net


def _path_of(built: UserModel) -> str:
    path = next((name for name, module in built.model.named_modules() if module is built.cam_layer), None)
    if not path:
        raise ModelDefinitionError("UserModel.cam_layer is not a submodule of UserModel.model; pass a layer of the "
                                   "model or its path, e.g. 'features.3'")
    return path


def _check_shapes(net: UserNet, spec: str, num_classes: int, image_size: int) -> None:
    seen: list[tuple[int, ...]] = []
    handle = net.gradcam_layer.register_forward_hook(
        lambda module, args, output: seen.append(tuple(output.shape) if isinstance(output, torch.Tensor) else ()))
    was_training = net.training
    try:
        with torch.no_grad():
            out = net.eval().classify(torch.zeros(2, 3, image_size, image_size))
    finally:
        handle.remove()
        net.train(was_training)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, num_classes):
        raise ModelDefinitionError(f"{spec}: the model returns {shape} for 2 images of {image_size} px, expected "
                                   f"(2, {num_classes}) class logits (B, C); end it with a layer of num_classes outputs")
    if len(seen) != 1 or len(seen[0]) != 4:
        found = "runs more than once per forward" if len(seen) > 1 else f"gives {seen[0] if seen else 'nothing'}"
        raise ModelDefinitionError(f"{spec}: Grad-CAM layer {net.cam_layer!r} {found}, expected one (B, K, h, w) "
                                   "feature map per forward; choose a conv block with --cam-layer")
