"""The project's layout: the command line starts without torch, the engine imports neither the
dashboard nor the benchmark, the installed packages are the engine and the dashboard (every
subpackage, no benchmark), and the command line's torch-free choices agree with the engine."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_ENGINE = {"dashboard", "benchmarks"}

# Runs in a fresh interpreter (this one has torch loaded already); prints the verdict last.
TORCH_FREE_CALL = """
import sys
from pixel_evidence.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
print("torch imported" if "torch" in sys.modules else "torch-free")
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["evaluate", "--help"], ["dissect", "--help"],
                                  ["data", "download", "no-such-category", "--data-dir", "{tmp}"]],
                         ids=["help", "train-help", "evaluate-help", "dissect-help", "download-error"])
def test_cli_without_a_model_does_not_import_torch(argv, tmp_path):
    argv = [a.format(tmp=tmp_path) for a in argv]
    # cwd=ROOT: this checkout's engine, not an installed one
    done = subprocess.run([sys.executable, "-c", TORCH_FREE_CALL.format(argv=argv)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)  # a cap only
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "torch-free"


def _imports_from_outside(path: Path) -> list[str]:
    """``path``'s imports of the dashboard or the benchmark, but for the one that runs the
    benchmark inside ``pixel-evidence bench`` (pixel_evidence/cli.py's ``_cmd_bench``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    exempt: set[int] = set()
    if path == ROOT / "engine" / "cli.py":
        bench = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_cmd_bench"), None)
        assert bench is not None, "pixel_evidence/cli.py has no _cmd_bench"
        exempt = {id(n) for n in ast.walk(bench)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                  if name.split(".")[0] in OUTSIDE_ENGINE and id(node) not in exempt]
    return found


def test_engine_imports_neither_dashboard_nor_benchmarks():
    found = [hit for path in sorted((ROOT / "engine").rglob("*.py")) for hit in _imports_from_outside(path)]
    assert not found, found


def test_installed_packages_are_engine_and_dashboard_with_every_subpackage():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    installed = set(find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    expected = {".".join(d.relative_to(ROOT).parts) for top in ("engine", "dashboard")
                for d in [ROOT / top, *(ROOT / top).rglob("*")]
                if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))}
    assert expected <= installed, f"not installed: {sorted(expected - installed)}"
    assert {"pixel_evidence.data", "pixel_evidence.models", "pixel_evidence.metrics", "pixel_evidence.explainers"} <= installed
    assert not {p for p in installed if p.split(".")[0] in ("benchmarks", "tests")}


def test_cli_choices_agree_with_the_engine(capsys):
    from pixel_evidence import choices
    from pixel_evidence.checks.faithfulness import STARTS
    from pixel_evidence.cli import main
    from pixel_evidence.engine.explain import TARGETS
    from pixel_evidence.evaluate import METRIC_CHOICES, AnalysisSettings
    from pixel_evidence.explainers import DEFAULT_METHODS, REGISTRY
    from pixel_evidence.models import BACKBONE_SPECS

    assert choices.BACKBONES == tuple(BACKBONE_SPECS)
    assert choices.METHODS == tuple(REGISTRY)
    assert choices.DEFAULT_METHODS == DEFAULT_METHODS
    assert choices.TARGETS == TARGETS
    assert choices.FAITHFULNESS_STARTS == STARTS
    assert choices.METRICS == METRIC_CHOICES
    # the analysis options' help names AnalysisSettings' defaults, which apply when they are unset
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for setting in fields(AnalysisSettings):
        assert f"(default {setting.default}" in help_text, setting.name
