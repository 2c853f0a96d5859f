"""Network Dissection: which units of a stage fire on which defect class.

- :mod:`.units`: thresholds per unit (tie-aware), where each fires, and its IoU with each
  defect class's masks (torch);
- :mod:`.table`: the per-unit table's columns, rules and files, read and summarised without torch;
- :mod:`.overlay`: where one unit fires on one image (what the dashboard draws), without torch.

The engine's :mod:`pixel_evidence.engine.dissector` runs it on the engine's models and images.
"""
