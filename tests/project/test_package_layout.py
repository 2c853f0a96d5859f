"""The project's layout: the command line and the registries start without torch, nothing in the
package but the dashboard imports the dashboard and nothing imports the benchmark, the one
installed package is pixel_evidence (every subpackage, no benchmark), and each method's
label, the default method list and the analysis names are written in one module only."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pixel_evidence"
DASHBOARD = PACKAGE / "dashboard"

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


def _imported_names(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.append((node.lineno, node.module or ""))
    return found


def test_only_the_dashboard_imports_the_dashboard_and_nothing_imports_the_benchmark():
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in sorted(PACKAGE.rglob("*.py")) for line, name in _imported_names(path)
             if name.split(".")[0] == "benchmarks"
             or (name.startswith("pixel_evidence.dashboard") and not path.is_relative_to(DASHBOARD))]
    assert not found, found


def test_the_installed_package_is_pixel_evidence_with_every_subpackage():
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    installed = set(find_packages(str(ROOT), include=find["include"], exclude=find.get("exclude", ())))
    expected = {".".join(d.relative_to(ROOT).parts) for d in [PACKAGE, *PACKAGE.rglob("*")]
                if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))}
    assert {"pixel_evidence.dashboard", "pixel_evidence.engine", "pixel_evidence.explainers"} <= expected
    assert installed == expected, f"installed {sorted(installed)}, expected {sorted(expected)}"


REGISTRIES_WITHOUT_TORCH = """
import sys
import pixel_evidence.analyses, pixel_evidence.choices, pixel_evidence.methods, pixel_evidence.metrics.scores
print(sorted(m for m in ("torch", "torchvision", "captum") if m in sys.modules))
"""


def test_the_registries_import_without_torch():
    done = subprocess.run([sys.executable, "-c", REGISTRIES_WITHOUT_TORCH], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # a cap only
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_cli_choices_agree_with_the_engine(capsys):
    from pixel_evidence import choices
    from pixel_evidence.analyses import AnalysisSettings
    from pixel_evidence.checks.faithfulness import STARTS
    from pixel_evidence.cli import main
    from pixel_evidence.engine.explain import TARGETS
    from pixel_evidence.models import BACKBONE_SPECS

    assert choices.BACKBONES == tuple(BACKBONE_SPECS)
    assert choices.TARGETS == TARGETS
    assert choices.FAITHFULNESS_STARTS == STARTS
    # the analysis options' help names AnalysisSettings' defaults, which apply when they are unset
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for setting in fields(AnalysisSettings):
        assert f"(default {setting.default}" in help_text, setting.name


# ---------------------------------------------------------------- one registry per concept

def _source_files(root: Path) -> list[Path]:
    return sorted([*(root / "pixel_evidence").rglob("*.py"), *(root / "benchmarks").rglob("*.py")])


def _strings(node: ast.AST) -> list[str] | None:
    """The string elements of a tuple, list or set literal (None if it is not one, or holds
    anything but strings and starred names)."""
    if not isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return None
    items = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return items if len(items) == len([e for e in node.elts if not isinstance(e, ast.Starred)]) else None


def name_copies(root: Path, labels: set[str], defaults: tuple[str, ...], analyses: set[str]) -> dict[str, set[str]]:
    """Where the checkout ``root`` writes the registries' names in pixel_evidence/ and benchmarks/:
    ``{what: {module, ...}}`` for each method label written as a string of its own, each literal
    list (or text) holding every default method, and each literal list or dict holding two or more
    analysis names."""
    found: dict[str, set[str]] = {}
    spelled = {" ".join(defaults), ", ".join(defaults)}
    for path in _source_files(root):
        module = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value in labels:
                    found.setdefault(f"label {node.value!r}", set()).add(module)
                if any(words in node.value for words in spelled):
                    found.setdefault("default methods in a text", set()).add(module)
            items = _strings(node)
            if isinstance(node, ast.Dict):
                items = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            if items is None:
                continue
            if set(defaults) <= set(items):
                found.setdefault("list of the default methods", set()).add(module)
            if len(analyses & set(items)) >= 2:
                found.setdefault("list of analysis names", set()).add(module)
    return found


def test_each_method_label_is_written_once_and_no_list_of_names_twice():
    from pixel_evidence.analyses import ANALYSES
    from pixel_evidence.methods import DEFAULT_METHODS, METHODS

    found = name_copies(ROOT, {m.label for m in METHODS.values()}, DEFAULT_METHODS, set(ANALYSES))
    assert {what: where for what, where in found.items() if what.startswith("label")} == {
        f"label {m.label!r}": {"pixel_evidence/methods.py"} for m in METHODS.values()}
    assert {what: where for what, where in found.items() if not what.startswith("label")} == {}
