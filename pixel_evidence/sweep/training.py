"""Training over seeds as Dask tasks: one seed per task, each writing its own atomic checkpoint.

``train_seeds`` decides which seeds need training and what each is trained with; this module
only runs those trainings on a cluster (``models.train.train_seeds(map_seeds=...)``). A seed's
checkpoint is written once, finished (``checkpoint.save_checkpoint``), so a worker killed
mid-training leaves nothing of that seed and the scheduler trains it again elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from dask.distributed import Client, as_completed
from tqdm.auto import tqdm


def _train_one(train: Callable[[int], dict[str, Any]], seed: int, threads: int) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    return train(seed)


def dask_map(client: Client, *, threads: int = 1, gpu: bool = False):
    """A ``map_seeds`` for ``train_seeds`` that trains each seed as a task of ``client``'s cluster
    (``threads`` torch threads per task; with ``gpu``, on workers with the GPU resource)."""
    def map_seeds(train: Callable[[int], dict[str, Any]], seeds: Sequence[int]) -> list[dict[str, Any]]:
        futures = [client.submit(_train_one, train, seed, threads, key=f"train-seed-{seed}-{i}", pure=False,
                                 resources={"GPU": 1} if gpu else None) for i, seed in enumerate(seeds)]
        try:
            for _ in tqdm(as_completed(futures), total=len(futures), desc="seeds", unit="seed"):
                pass
        except BaseException:
            client.cancel(futures, force=True)
            raise
        return client.gather(futures)

    return map_seeds
