"""Read-only access to evaluation results and training histories, for summary views.

Only pandas, numpy and json are used here (no torch), so the dashboard can import this
package without loading a deep-learning stack. Nothing here writes files.

The evaluate command writes into ``<models>/results/``:

- ``tko_table.csv``: one row per (seed, split, image, method) with tko, chance, lift, iou,
  rank, win_share and the image's prediction;
- ``win_rates.csv``: win rate per (seed, split, class or "overall", method);
- ``summary.json``: across-seed summaries (mean, std, bootstrap interval);
- ``agreement.csv``, ``faithfulness.csv``, ``sanity.csv``: the optional analyses
  (``--metrics agreement faithfulness sanity``; :mod:`pixel_evidence.analyses` registers
  them), one row per image and method pair, per image and method, and per image, method
  and randomized stage;
- ``per_seed/seed_<n>_<split>.json``: which weights produced each unit's rows;
- ``sweep/``: the Parquet store of ``pixel-evidence sweep`` (many categories), read by
  :mod:`.sweep_store` into the same tables.

Training histories come from the checkpoint metadata (``seed_<n>.json``, key ``history``).

- :mod:`.reading`: the folder's tables as :class:`Results`, and which seeds are stale;
- :mod:`.histories`: training histories and their spread over seeds;
- :mod:`.summaries`: statistics of the tables for the summary views.

The top-K pixel picture (:func:`topk_pixels`) lives in :mod:`pixel_evidence.metrics.topk_picture`
beside the tie rule it draws, and is re-exported here for the dashboard.
"""

from __future__ import annotations

from pixel_evidence.metrics import AGREEMENT_STATS, OVERALL
from pixel_evidence.metrics.topk_picture import (PIXEL_FALSE_ALARM, PIXEL_HIT, PIXEL_MISS, PIXEL_OTHER, PIXEL_TIED_IN,
                                                 PIXEL_TIED_OUT, TopKPixels, topk_pixels)
from pixel_evidence.results.histories import HISTORY_METRICS, history_bands, history_frame
from pixel_evidence.results.reading import (IG_COLUMNS, RESULT_FILES, RESULTS_SUBDIR, SUMMARY_FILE, TABLE_COLUMNS,
                                            TABLE_FILE, WIN_RATES_FILE, Results, ig_columns, load_results, results_dir,
                                            stale_seeds)
from pixel_evidence.results.summaries import (CHANCE, agreement_stats, confusion_matrix, defect_rows,
                                              faithfulness_stats, localisation_win_rates, sanity_stats, tko_stats,
                                              win_rate_stats)
from pixel_evidence.results.sweep_store import StoreTables, category_win_rates, read_store, store_stamp, sweep_dir

__all__ = [
    "HISTORY_METRICS", "Results", "TopKPixels", "load_results", "stale_seeds", "history_frame",
    "history_bands", "confusion_matrix", "defect_rows", "tko_stats", "win_rate_stats", "topk_pixels",
    "AGREEMENT_STATS", "localisation_win_rates", "agreement_stats", "faithfulness_stats",
    "sanity_stats", "OVERALL", "CHANCE", "RESULT_FILES", "TABLE_FILE", "WIN_RATES_FILE", "SUMMARY_FILE",
    "RESULTS_SUBDIR", "TABLE_COLUMNS", "IG_COLUMNS", "ig_columns",
    "results_dir", "StoreTables", "category_win_rates", "read_store", "store_stamp", "sweep_dir",
    "PIXEL_OTHER", "PIXEL_HIT", "PIXEL_MISS", "PIXEL_FALSE_ALARM", "PIXEL_TIED_IN", "PIXEL_TIED_OUT",
]
