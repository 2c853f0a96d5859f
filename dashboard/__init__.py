"""The Pixel Evidence browser dashboard (Panel).

Modules:

- ``app``: the page (template, sidebar, tabs, downloads) and ``create_app``;
- ``state``: the one state object every view depends on, its validation and URL sync;
- ``image_view``: the per-image view (maps, top-K pictures, scores, ranking);
- ``summary_view``: win rates, TKO distributions, training curves, confusion matrix;
- ``export``: PNG / HTML / CSV downloads built in memory;
- ``figures``: numpy pictures and HoloViews elements, colour meanings;
- ``host``: the shared engine (one per process), warm-up, set-up problems;
- ``catalogue`` / ``config``: what can be shown; where data and models are.

Nothing here imports torch or calls a model: the engine computes, the dashboard draws.
"""
