"""Sweeps over categories x seeds x splits x methods on a Dask cluster (``pixel-evidence sweep``).

- :mod:`.spec`: what to compute (a TOML sweep file or flags);
- :mod:`.plan`: the tasks, one (category, seed, split, method group, chunk of images) each, keyed by
  the hash of their inputs;
- :mod:`.costs`: per-method costs and what a plan will cost;
- :mod:`.worker`: what a worker runs for one task (models kept per process);
- :mod:`.store`: one Parquet file per task and method, written atomically;
- :mod:`.run`: the cluster, the progress bar, failures and Ctrl-C;
- :mod:`.training`: training over seeds, one seed per task.

The store is read back by :mod:`pixel_evidence.results.sweep_store`.
"""
