"""Model checkpoints: a ``seed_<n>.pt`` state_dict plus ``seed_<n>.json`` metadata.

The state_dict loads with ``torch.load(..., weights_only=True)``. Both files are written
to a temp file and renamed, weights first, so a killed run leaves either the old pair or
the new pair's weights without metadata (which counts as "not finished"), or, when it
replaced a finished seed, new weights beside the old metadata: ``load_model`` checks the
weights against the metadata's hash and refuses such a pair (caches key on that hash).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Sequence

import torch

from ..files import atomic_write_bytes, atomic_write_text
from .multitask import MultitaskNet


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, or belongs to other data."""


def checkpoint_paths(models_dir: Path, seed: int) -> tuple[Path, Path]:
    models_dir = Path(models_dir)
    return models_dir / f"seed_{seed}.pt", models_dir / f"seed_{seed}.json"


def available_seeds(models_dir: Path) -> list[int]:
    """Seeds whose weights and metadata both exist, sorted."""
    seeds = []
    for meta in Path(models_dir).glob("seed_*.json"):
        stem = meta.stem.removeprefix("seed_")
        if stem.lstrip("-").isdigit() and meta.with_suffix(".pt").is_file():
            seeds.append(int(stem))
    return sorted(seeds)


def save_checkpoint(models_dir: Path, seed: int, state_dict: dict[str, torch.Tensor],
                    meta: dict[str, Any], *, half: bool = True) -> Path:
    """Store weights (fp16 floats when ``half``) and metadata; return the weights path.

    ``meta`` gains ``weights_sha256`` so caches can key on the exact weights.
    """
    pt, js = checkpoint_paths(models_dir, seed)
    state = {k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point() else v.detach().cpu())
             for k, v in state_dict.items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    atomic_write_bytes(pt, data)
    meta = dict(meta, seed=seed, weights_file=pt.name, weights_sha256=hashlib.sha256(data).hexdigest())
    atomic_write_text(js, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return pt


def read_metadata(models_dir: Path, seed: int) -> dict[str, Any]:
    _, js = checkpoint_paths(models_dir, seed)
    try:
        return json.loads(js.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{js}: no model for seed {seed}; train it with `pixel-evidence train`") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{js}: corrupt metadata ({exc}); retrain with `pixel-evidence train --force`") from None


def load_model(models_dir: Path, seed: int, *, device: str | torch.device = "cpu",
               classes: Sequence[str] | None = None, manifest_sha256: str | None = None
               ) -> tuple[MultitaskNet, dict[str, Any]]:
    """Rebuild the network of ``seed`` in eval mode, as float32 on ``device``.

    When ``classes`` or ``manifest_sha256`` are given they must match what the model was
    trained on; a mismatch is a ``CheckpointError`` that says what differs.
    """
    meta = read_metadata(models_dir, seed)
    pt, js = checkpoint_paths(models_dir, seed)
    if classes is not None and list(classes) != list(meta["classes"]):
        raise CheckpointError(f"{js}: model classes {meta['classes']} differ from the data's {list(classes)}; "
                              "train models for this data with `pixel-evidence train`")
    if manifest_sha256 is not None and manifest_sha256 != meta.get("manifest_sha256"):
        raise CheckpointError(f"{js}: model was trained on another split manifest "
                              f"({meta.get('manifest_sha256', '?')[:12]} != {manifest_sha256[:12]}); "
                              "use the manifest shipped with the models or retrain")
    try:
        data = pt.read_bytes()
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{pt}: cannot read weights ({exc}); retrain with `pixel-evidence train --force`") from None
    if meta.get("weights_sha256") not in (None, hashlib.sha256(data).hexdigest()):
        raise CheckpointError(f"{pt}: the weights are not the ones {js.name} describes (another hash); "
                              "retrain with `pixel-evidence train --force`")
    net = MultitaskNet(len(meta["classes"]), backbone=meta["backbone"], pretrained=False)
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{pt}: weights do not fit the {meta['backbone']} model ({str(exc).splitlines()[0]})") from None
    return net.to(device).eval(), meta
