"""The Pixel Evidence browser dashboard (Panel).

Two stores hold what changes; views depend on a store, never on one another:

- ``state``: the user's choices (seed, split, class, image, methods, ...), validated and in the URL;
- ``store``: the per-image tab's request, explanation, pictures, errors and ``computing``;
- ``summary``: the results store of the summary tab and one section viewer per question;

and the views and the pieces they are made of:

- ``app``: the page (template, sidebar, tabs) and ``create_app``;
- ``image_view`` / ``image_html`` / ``image_plots``: the per-image view, its words and its
  Bokeh image panes (built once per session, updated in place);
- ``analysis_view`` / ``analysis_charts``: agreement, faithfulness and sanity of the image;
- ``units_view``: the Units tab, Network Dissection's table and where the best units fire;
- ``export_bar`` / ``export``: the download buttons and the PNG / HTML / CSV they build in memory;
- ``pictures``: numpy pictures of an explanation; ``colours`` / ``formatting``: what colours
  and written numbers mean; ``charts``: HoloViews for the charts, behind one lock;
- ``host``: the shared engine (one per process), warm-up, set-up problems;
- ``markup``: names from files and links made text for the page; ``allowed_hosts``: which
  requests may open a session; ``shutdown``: background work stops when the process ends;
- ``catalogue`` / ``config``: what can be shown; where data and models are.

Nothing here imports torch or calls a model: the engine computes, the dashboard draws.
"""
