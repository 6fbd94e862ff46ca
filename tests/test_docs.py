"""Tests for the docs users read: README.md stays short and carries both fresh-machine commands, every relative
link in README.md, docs/ and benchmarks/ resolves, and every ``benchmarks/...`` file they name exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "benchmarks").rglob("*.md")),
         ROOT / "weights" / "README.md"]  # fmt: skip
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
BENCH_PATH = re.compile(r"(?<![\w/.-])benchmarks/[^\s`'\")\]|,;:]*")


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_readme_is_short_and_has_both_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = next(line for line in ci if "pytest" in line)
    assert f"    {test_command}\n" in text  # the test command CI runs, verbatim
    assert "pip install . && python examples/make_sample.py sample.avi && msvq encode" in text


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the page
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page_id(page)}: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_benchmark_file_named_exists(page):
    named = [p.rstrip(".") for p in BENCH_PATH.findall(page.read_text())]
    missing = [p for p in named if not any(c in p for c in "${*") and not (ROOT / p).exists()]  # not a pattern
    assert not missing, f"{page_id(page)}: {missing}"
