"""The engine under measurement: the first shipped (or given) model, or a freshly
initialised lite0 model when none is trained yet; and which images the sections use."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .config import DEFAULT_MODELS, BenchConfig

log = logging.getLogger("pixel_evidence.bench")


def _fallback_models(data_root: Path, size: int, folder: Path) -> Path:
    """A freshly initialised lite0 model saved like a shipped one (when none is trained yet)."""
    from pixel_evidence.data import prepare_manifest, read_manifest
    from pixel_evidence.files import file_sha256
    from pixel_evidence.models import MultitaskNet, WeightsUnavailableError, backbone_normalization, save_checkpoint

    manifest = folder / "manifest.csv"
    shipped = DEFAULT_MODELS / "manifest.csv"
    if shipped.is_file():
        manifest.write_bytes(shipped.read_bytes())
    else:
        prepare_manifest(data_root, manifest)
    classes = sorted({s.cls for s in read_manifest(manifest)})
    torch.manual_seed(0)
    try:
        net = MultitaskNet(len(classes), backbone="efficientnet_lite0", pretrained=True)
        pretrained = True
    except WeightsUnavailableError:
        net = MultitaskNet(len(classes), backbone="efficientnet_lite0", pretrained=False)
        pretrained = False
    norm = backbone_normalization("efficientnet_lite0")
    meta = {"backbone": "efficientnet_lite0", "classes": classes, "image_size": size,
            "normalization": {"mean": list(norm.mean), "std": list(norm.std)},
            "manifest_sha256": file_sha256(manifest), "hyperparameters": {"pretrained_encoder": pretrained},
            "final_metrics": {}, "note": "untrained, made by the benchmark"}
    save_checkpoint(folder, 0, net.eval().state_dict(), meta)
    return folder


def open_engine(cfg: BenchConfig, scratch: Path):
    """The engine to measure and a description of its model (the report's ``model`` block)."""
    from pixel_evidence.data.synthetic import ensure_default_data
    from pixel_evidence.engine.explain import ExplanationEngine
    from pixel_evidence.models import available_seeds

    data = Path(cfg.data) if cfg.data else ensure_default_data()
    models = Path(cfg.models) if cfg.models else DEFAULT_MODELS
    note = ""
    seeds = available_seeds(models) if models.is_dir() else []
    if seeds:
        source = "shipped" if models.resolve() == DEFAULT_MODELS.resolve() else "given"
    else:
        note = (f"no trained model in {models}: measured on a freshly initialised efficientnet_lite0 at "
                f"{cfg.fallback_image_size} px (timings do not depend on the weights; TKO and IG deltas do)")
        log.warning(note)
        models = _fallback_models(data, cfg.fallback_image_size, scratch / "models")
        seeds, source = [0], "fresh lite0"
    params = {"ig": {"n_steps": int(cfg.engine_ig_steps)}} if cfg.engine_ig_steps else None
    engine = ExplanationEngine(data, models, device=cfg.device, cache_mb=512, method_params=params)
    seed = cfg.seed if cfg.seed is not None else engine.pool.seeds[0]
    if seed not in engine.pool.seeds:
        raise ValueError(f"seed {seed} is not in {models} (available: {engine.pool.seeds})")
    meta = engine.pool.meta[seed]
    model: dict[str, Any] = {"source": source, "models_dir": str(models), "seed": seed,
                             "image_size": int(meta["image_size"]), "backbone": meta["backbone"], "note": note,
                             "data": str(data)}
    return engine, model


def defect_ids(engine, split: str = "test") -> list[str]:
    """The ids of ``split``, defect images first (only they have a mask to explain)."""
    ids = engine.catalogue.image_ids(split)
    defects = [i for i in ids if engine.catalogue.sample(i).has_mask]
    return defects + [i for i in ids if i not in defects]


def input_and_target(engine, seed: int, image_id: str) -> tuple[torch.Tensor, int]:
    """One image as ``seed``'s network takes it (a batch of one), and the class it predicts."""
    base = engine.prediction(seed, image_id)
    return engine.pool.input_batch(seed, base.image[None]), base.predicted_index
