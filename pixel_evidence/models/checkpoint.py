"""Model checkpoints: a ``seed_<n>.pt`` state_dict plus ``seed_<n>.json`` metadata.

The metadata file is the seed's "finished" marker. Training writes the pair once, with the
final metrics: the weights go to a staged file first (the slow part; a kill there keeps the
old pair), then the old metadata is removed, the staged weights are renamed into place and
the metadata is written last, through a temp file and a rename. A kill at any point leaves
either a finished pair or weights without metadata, which counts as unfinished and is
trained again. Metadata without ``final_metrics`` (left by older versions killed between
their two writes) is unfinished too, and the recorded ``weights_sha256`` is checked on
loading, so weights never pass under another seed's metadata.

The state_dict loads with ``torch.load(..., weights_only=True)``. Every problem is a
one-line ``CheckpointError`` naming the file and how to fix it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from pixel_evidence.choices import BACKBONES, CUSTOM_BACKBONE, KINDS, TRAINING_MODES
from pixel_evidence.files import atomic_write_bytes, atomic_write_text
from pixel_evidence.models.network import ExplainableNet, ModelDefinitionError
from pixel_evidence.models.recipe import ModelRecipe
from pixel_evidence.run_folders import train_command


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, unfinished, or belongs to other data."""


def _sha256_hex(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value) is not None


def _numbers(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value))


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _history(value: Any) -> bool:
    """Per-epoch records: each an object with an integer ``epoch`` and numbers (or null) for the rest."""
    return isinstance(value, list) and all(
        isinstance(row, dict) and _integer(row.get("epoch"))
        and all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in row.values())
        for row in value)


# The fields the engine reads, each with its check and what the check asks for.
METADATA_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "backbone": (lambda v: v in (*BACKBONES, CUSTOM_BACKBONE), f"be one of {', '.join(BACKBONES)}, {CUSTOM_BACKBONE}"),
    "classes": (lambda v: isinstance(v, list) and len(v) > 1 and all(isinstance(c, str) for c in v),
                "be a list of class names"),
    "image_size": (lambda v: _integer(v) and v > 0, "be a positive integer"),
    "normalization": (lambda v: isinstance(v, dict) and _numbers(v.get("mean"), 3) and _numbers(v.get("std"), 3),
                      "hold 3 numbers each for mean and std"),
    "weights_sha256": (_sha256_hex, "be a sha256 hex digest"),
    "manifest_sha256": (_sha256_hex, "be a sha256 hex digest"),
}
# Checked when present. Without final metrics a seed is unfinished; models made outside
# `train` (e.g. the benchmark's stand-in) may not record a dataset fingerprint nor a
# history; metadata older than model kinds and training modes stands for today's defaults
# (recipe.py). What the summary, the model notes and `train` read is checked too, so one
# malformed field is this seed's one-line problem, never an error where it is read.
CHECKED_IF_PRESENT = {"final_metrics": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
                                        "map each split to its scores"),
                      "history": (_history, "be a list of per-epoch records, each with an integer 'epoch' and numbers"),
                      "hyperparameters": (lambda v: isinstance(v, dict), "be a mapping"),
                      "selected_epoch": (_integer, "be an integer"),
                      "validation_ids": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
                                         "be a list of image ids"),
                      "dataset_fingerprint": (_sha256_hex, "be a sha256 hex digest"),
                      "kind": (lambda v: v in KINDS, f"be one of {', '.join(KINDS)}"),
                      "mode": (lambda v: v in TRAINING_MODES, f"be one of {', '.join(TRAINING_MODES)}"),
                      "cam_layer": (lambda v: isinstance(v, str) and v != "", "be a module path"),
                      "model_module": (lambda v: isinstance(v, str) and ":" in v, "be path.py:function")}


def checkpoint_paths(models_dir: Path, seed: int) -> tuple[Path, Path]:
    models_dir = Path(models_dir)
    return models_dir / f"seed_{seed}.pt", models_dir / f"seed_{seed}.json"


def _retrain_hint(path: Path, seed: int) -> str:
    return f"retrain the seed with `{train_command(path.parent, '--seeds', str(seed), '--force')}`"


def _unfinished(path: Path, seed: int, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: unfinished training ({why}); finish it with "
                           f"`{train_command(path.parent, '--seeds', str(seed))}`")


def scan_seeds(models_dir: Path) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """The metadata of every finished seed of ``models_dir``, and for each seed that has files
    but is not finished or not usable (interrupted, malformed metadata, weights missing,
    truncated, other than recorded or holding Python objects) a one-line reason.

    Every weights file is read, hashed and loaded as tensors only (never unpickling code), so
    no seed is offered that fails when picked: about 0.05 s per 7.7 MB file on a busy
    two-core machine, 0.5 s for the ten shipped seeds.
    """
    models_dir = Path(models_dir)
    seeds = set()
    for path in [*models_dir.glob("seed_*.json"), *models_dir.glob("seed_*.pt")]:
        number = path.stem.removeprefix("seed_")
        if number.lstrip("-").isdigit():
            seeds.add(int(number))
    finished, problems = {}, {}
    for seed in sorted(seeds):
        pt, js = checkpoint_paths(models_dir, seed)
        try:
            if not js.is_file():
                raise _unfinished(pt, seed, f"no {js.name} beside it")
            meta = read_metadata(models_dir, seed)
            _read_state(pt, seed, meta["weights_sha256"])
        except CheckpointError as err:
            problems[seed] = str(err)
        else:
            finished[seed] = meta
    return finished, problems


def available_seeds(models_dir: Path) -> list[int]:
    """Finished seeds (weights present, metadata complete), sorted."""
    return sorted(scan_seeds(models_dir)[0])


def stored_state(state_dict: dict[str, torch.Tensor], *, half: bool = True) -> dict[str, torch.Tensor]:
    """The tensors as a checkpoint holds them: on the CPU, floats in fp16 when ``half``."""
    return {k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point() else v.detach().cpu())
            for k, v in state_dict.items()}


def widened(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored tensors as the network computes with them: floats in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def save_checkpoint(models_dir: Path, seed: int, state_dict: dict[str, torch.Tensor],
                    meta: dict[str, Any], *, half: bool = True) -> Path:
    """Store weights (fp16 floats when ``half``) and metadata, in the order the module
    docstring gives; return the weights path.

    ``meta`` gains ``weights_sha256`` so caches can key on the exact weights.
    """
    pt, js = checkpoint_paths(models_dir, seed)
    buf = io.BytesIO()
    torch.save(stored_state(state_dict, half=half), buf)
    data = buf.getvalue()
    staged = pt.with_name(f".{pt.name}.staged")
    atomic_write_bytes(staged, data)
    js.unlink(missing_ok=True)  # until the new metadata is written, the seed is unfinished
    os.replace(staged, pt)
    meta = dict(meta, seed=seed, weights_file=pt.name, weights_sha256=hashlib.sha256(data).hexdigest())
    atomic_write_text(js, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return pt


def read_metadata(models_dir: Path, seed: int) -> dict[str, Any]:
    """The checked metadata of ``seed``: a one-line ``CheckpointError`` naming the file if it
    is missing, not a JSON object, lacks a field the engine reads, or is unfinished."""
    _, js = checkpoint_paths(models_dir, seed)
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{js}: no model for seed {seed}; train it with "
                              f"`{train_command(js.parent, '--seeds', str(seed))}`") from None
    except OSError as exc:
        raise CheckpointError(f"{js}: cannot be read ({exc.strerror}); {_retrain_hint(js, seed)}") from None
    except UnicodeDecodeError:
        raise CheckpointError(f"{js}: not UTF-8 text, so not model metadata; {_retrain_hint(js, seed)}") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{js}: not valid JSON (line {exc.lineno} column {exc.colno}); "
                              f"{_retrain_hint(js, seed)}") from None
    problem = _metadata_problem(meta)
    if problem:
        raise CheckpointError(f"{js}: {problem}; {_retrain_hint(js, seed)}")
    if "final_metrics" not in meta:
        raise _unfinished(js, seed, "no final metrics")
    return meta


def check_trained_on(models_dir: Path, seed: int, meta: dict[str, Any], *, classes: Sequence[str] | None = None,
                     manifest_sha256: str | None = None) -> None:
    """Raise a ``CheckpointError`` saying what differs if ``seed`` (its checked ``meta``) was
    trained on other classes or another split manifest than those given."""
    _, js = checkpoint_paths(models_dir, seed)
    if classes is not None and list(classes) != list(meta["classes"]):
        raise CheckpointError(f"{js}: model classes {meta['classes']} differ from the data's {list(classes)}; "
                              f"train models for this data with `{train_command(js.parent)}`")
    if manifest_sha256 is not None and manifest_sha256 != meta["manifest_sha256"]:
        raise CheckpointError(f"{js}: model was trained on another split manifest "
                              f"({meta['manifest_sha256'][:12]} != {manifest_sha256[:12]}); "
                              "use the manifest shipped with the models or retrain")


def _metadata_problem(meta: Any) -> str | None:
    """What is wrong with parsed metadata, or None."""
    if not isinstance(meta, dict):
        return f"not a JSON object but a {type(meta).__name__}, so not model metadata"
    missing = next((name for name in METADATA_FIELDS if name not in meta), None)
    if missing:
        return f"missing field {missing!r}"
    for name, (check, requirement) in {**METADATA_FIELDS, **CHECKED_IF_PRESENT}.items():
        if name in meta and not check(meta[name]):
            return f"{name!r} must {requirement}, found {json.dumps(meta[name])[:40]}"
    if (meta["backbone"] == CUSTOM_BACKBONE) != ("model_module" in meta):
        return f"a 'model_module' goes with backbone {CUSTOM_BACKBONE!r}, and only with it"
    return None


def _check_weights_file(pt: Path, seed: int) -> None:
    """Raise if the weights file is missing or empty (cheap: no read)."""
    if not pt.is_file():
        raise CheckpointError(f"{pt}: weights file missing; {_retrain_hint(pt, seed)}")
    if pt.stat().st_size == 0:
        raise CheckpointError(f"{pt}: empty file; {_retrain_hint(pt, seed)}")


def _read_state(pt: Path, seed: int, weights_sha256: str) -> dict[str, torch.Tensor]:
    """The state_dict stored in ``pt``, which must be the file the metadata records."""
    _check_weights_file(pt, seed)
    data = pt.read_bytes()
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run the file's code: never relay it
        raise CheckpointError(f"{pt}: refused, the file holds not only tensors (Python objects are unsafe to "
                              f"load); {_retrain_hint(pt, seed)}") from None
    except Exception:
        raise CheckpointError(f"{pt}: not a PyTorch weights file, or truncated; {_retrain_hint(pt, seed)}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{pt}: holds no state_dict of tensors; {_retrain_hint(pt, seed)}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != weights_sha256:
        raise CheckpointError(f"{pt}: weights are not those {pt.with_suffix('.json').name} records "
                              f"(sha256 {digest[:12]} != {weights_sha256[:12]}); {_retrain_hint(pt, seed)}")
    return state


def _misfit(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str | None:
    """What keeps the tensors ``found`` from loading into a model whose state is ``expected``."""
    problems = [f"{k} is {list(found[k].shape)} in the file, {list(v.shape)} in the model"
                for k, v in expected.items() if k in found and found[k].shape != v.shape]
    problems += [f"{k} is missing from the file" for k in expected if k not in found]
    problems += [f"{k} is not in the model" for k in found if k not in expected]
    if not problems:
        return None
    return problems[0] + (f"; {len(problems) - 1} more difference(s)" if len(problems) > 1 else "")


def load_model(models_dir: Path, seed: int, *, device: str | torch.device = "cpu",
               classes: Sequence[str] | None = None, manifest_sha256: str | None = None
               ) -> tuple[ExplainableNet, dict[str, Any]]:
    """Rebuild the network of ``seed`` in eval mode, as float32 on ``device``, from the
    recipe its metadata records (a user's model imports its ``model_module`` again).

    When ``classes`` or ``manifest_sha256`` are given they must match what the model was
    trained on; a mismatch is a ``CheckpointError`` that says what differs.
    """
    meta = read_metadata(models_dir, seed)
    check_trained_on(models_dir, seed, meta, classes=classes, manifest_sha256=manifest_sha256)
    pt, _ = checkpoint_paths(models_dir, seed)
    state = _read_state(pt, seed, meta["weights_sha256"])
    try:
        net = ModelRecipe.from_metadata(meta).build(len(meta["classes"]), image_size=meta["image_size"])
    except ModelDefinitionError as err:
        raise CheckpointError(f"{pt.with_suffix('.json')}: {err}") from None
    misfit = _misfit(net.state_dict(), state)
    if misfit:
        raise CheckpointError(f"{pt}: weights do not fit the model: {misfit}; {_retrain_hint(pt, seed)}")
    net.load_state_dict(widened(state))
    return net.to(device).eval(), meta
