"""The docs: the committed results pages and the README's headline are what ``python -m
docs.generate`` writes from the shipped result files now, the README stays short and its test
command is the one CI runs, and the site builds without a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from docs import generate

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    generate.write(out)
    return out


def test_the_committed_pages_are_what_the_generator_writes(written):
    pages = sorted(p.relative_to(written) for p in written.rglob("*.md"))
    assert [str(p) for p in pages] == sorted(generate.pages())
    for page in pages:
        assert (ROOT / "docs" / page).read_bytes() == (written / page).read_bytes(), (
            f"docs/{page} is stale: run python -m docs.generate")


def test_the_readme_headline_is_what_the_generator_writes():
    text = README.read_text(encoding="utf-8")
    assert generate.readme_text(text, generate.Sources()) == text, "run python -m docs.generate"


def test_the_generator_leaves_the_readme_alone_when_writing_elsewhere(tmp_path):
    before = README.read_bytes()
    generate.main(["--out", str(tmp_path)])
    assert README.read_bytes() == before
    assert (tmp_path / "results" / "index.md").is_file()


def test_the_readme_is_at_most_15_kb():
    assert len(README.read_bytes()) <= 15 * 1024


def _shell_blocks(text: str) -> list[str]:
    blocks, inside = [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if inside is None and line.strip() == "```bash":
                inside = []
            elif inside is not None:
                blocks.append("\n".join(inside))
                inside = None
        elif inside is not None:
            inside.append(line)
    return blocks


def test_ci_runs_the_readmes_test_command():
    # the README's test command: the one block that runs pytest; CI makes its own venv first
    command = next(b for b in _shell_blocks(README.read_text(encoding="utf-8")) if "pytest" in b)
    _, _, install_and_test = command.split(" && ", 2)
    assert install_and_test.startswith('pip install -e ".[test,docs]" && ')
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"python -m {install_and_test}" in ci
    assert "mkdocs build --strict --site-dir" in ci


def test_the_site_builds_strictly_outside_the_checkout(tmp_path):
    pytest.importorskip("material", reason="mkdocs-material comes with the docs extra")
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (site / "results" / "index.html").is_file() and (site / "images" / "dashboard.png").is_file()
    assert not (ROOT / "site").exists()
