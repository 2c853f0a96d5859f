"""The speed and memory benchmark of pixel-evidence: a tool of the checkout, not installed with
the package. Run it with ``pixel-evidence bench`` or ``python -m benchmarks``; see README.md."""
