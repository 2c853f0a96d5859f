"""Checks that run the model again on altered inputs or weights: faithfulness (deletion and
insertion curves) and sanity (cascading weight randomization). Unlike
:mod:`pixel_evidence.metrics` they need torch and the model; the engine's
:mod:`pixel_evidence.engine.model_checks` runs them on its models and caches the results."""
