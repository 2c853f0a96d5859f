"""Checks of a map that run the model again: deletion/insertion curves (faithfulness) and
the cascading model randomization (sanity), cached in the engine's store."""

from __future__ import annotations

import copy
import functools
from typing import Callable, Iterable

import torch

from pixel_evidence.checks.faithfulness import MODES, STARTS, perturbation_curve
from pixel_evidence.checks.results import Curve, SanityResult
from pixel_evidence.checks.sanity import cascading_randomization
from pixel_evidence.engine.cache import digest
from pixel_evidence.engine.explanation import Explanation
from pixel_evidence.engine.map_store import MapStore
from pixel_evidence.engine.model_pool import ModelPool


class ModelChecks:
    """Faithfulness and sanity of an explanation's maps, on the pool's networks."""

    def __init__(self, pool: ModelPool, store: MapStore, params_of: Callable[[str], dict]):
        self.pool = pool
        self.store = store
        # what a method's maps depend on, for the cache keys (the engine's: imported methods too)
        self.params_of = params_of

    def _input(self, ex: Explanation) -> Callable[[], torch.Tensor]:
        """``ex``'s input tensor, built on first use only: a fully cached call needs none."""
        return functools.cache(lambda: self.pool.input_batch(ex.seed, ex.image[None]))

    def faithfulness(self, ex: Explanation, *, start: str = "black", steps: int = 20) -> dict[str, dict[str, Curve]]:
        """Deletion and insertion curves of every map in ``ex``: ``{method: {"deletion": Curve,
        "insertion": Curve}}``, for the class the maps explain.

        ``start``: "black" or "blur", what removed pixels become (deletion) and what the
        insertion starts from; ``steps``: points per curve after the first. Each curve is one
        batched forward under ``torch.inference_mode``; results are cached like maps.
        """
        if start not in STARTS:
            raise ValueError(f"start must be one of {STARTS}, got {start!r}")
        norm = self.pool.normalization(ex.seed)
        t = self.pool.classes.index(ex.target_class)
        x = self._input(ex)

        def curves(r) -> dict[str, Curve]:
            with self.pool.running():
                return {mode: perturbation_curve(self.pool.classifier(ex.seed), x(), r.map, t, mode=mode, start=start,
                                                 steps=steps, mean=norm["mean"], std=norm["std"]) for mode in MODES}

        return {m: self.store.memo(("faithfulness", ex.seed, ex.image_id, m, digest(self.params_of(m)), t,
                                    start, steps), lambda r=r: curves(r)) for m, r in ex.methods.items()}

    def sanity(self, ex: Explanation, methods: Iterable[str] | None = None) -> dict[str, SanityResult]:
        """Cascading randomization of ``ex``'s model for each method (default: all in ``ex``).

        The maps of ``ex`` are the references; each method is recomputed after re-initialising
        the classifier head, then every encoder stage from the top down. Runs on a private
        copy of the network, so other requests are not blocked while it runs.
        """
        methods = list(methods) if methods is not None else list(ex.methods)
        for m in methods:
            if m not in ex.methods:
                raise KeyError(f"{m!r} is not among the explanation's methods {list(ex.methods)}")
        norm = self.pool.normalization(ex.seed)
        t = self.pool.classes.index(ex.target_class)
        x = self._input(ex)

        def check(m: str) -> SanityResult:
            net, _ = self.pool.network(ex.seed)
            with self.pool.running():  # a copy taken while no other call has hooks on the network
                work = copy.deepcopy(net)
            return cascading_randomization(work, m, x(), t, params=self.pool.params_of(m), mean=norm["mean"],
                                           std=norm["std"], original=ex.methods[m].map)

        return {m: self.store.memo(("sanity", ex.seed, ex.image_id, m, digest(self.params_of(m)), t),
                                   lambda m=m: check(m)) for m in methods}
