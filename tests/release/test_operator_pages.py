"""The operators' pages (issue 20 item 14): a going-live checklist whose commands exist, a
glossary with exactly the position statuses the program reports, and links that resolve
(each alert's troubleshooting section is the runbook's, tested in tests/status)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from reactor.cli.main import _parser
from reactor.status.model import POSITION_STATUSES
from tests.paths import REPO

DOCS = REPO / "docs"
PAGES = [DOCS / n for n in ("going-live.md", "glossary.md", "upgrading.md")]


def _slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", page.read_text(), re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_resolve_to_files_and_headings(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in _anchors(dest), f"{page.name}: {target}: no such heading"


def test_the_glossary_lists_every_position_status_and_no_other() -> None:
    text = (DOCS / "glossary.md").read_text()
    section = text.split("## Position statuses", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert sorted(rows) == sorted(POSITION_STATUSES)
    assert len(rows) == len(set(rows))


def test_the_checklist_covers_the_steps_before_live() -> None:
    text = (DOCS / "going-live.md").read_text()
    steps = re.findall(r"^\d+\. \*\*(.+?)\*\*", text, re.M)
    assert len(steps) >= 8, steps
    order = [
        "check-config",
        "--online",
        "reactor plan",
        "reactor probe",
        "--dry-run",
        "alerting.md",
        "systemctl",
    ]
    positions = [text.index(word) for word in order]
    assert positions[:5] == sorted(positions[:5]), "check-config, plan, probe, dry run in order"
    assert "runbook.md" in text and "glossary.md" in text


def test_the_checklists_commands_exist() -> None:
    parser = _parser()
    text = (DOCS / "going-live.md").read_text()
    seen = 0
    for line in re.findall(r"^\s*\(?(?:set -a; \. \S+\s*)?(reactor [^\n#)]+)", text, re.M):
        words = shlex.split(line)[1:]
        if words[0] in ("probe", "sim") or "--version" in words:
            continue
        parser.parse_args(words)
        seen += 1
    assert seen >= 3
