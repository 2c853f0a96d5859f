"""The speed and memory benchmark of pixel-evidence: a tool of the checkout, not installed with
the package. Run it with ``python -m benchmarks`` from the checkout; see docs/speed/index.md."""
