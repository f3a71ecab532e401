"""The documents and the code point only at what exists: README.md and docs/ link to files (and
headings) that are there, and every ``docs/….md`` the code cites is a page of the repository.

No network: links with a scheme (``https:``, ``mailto:``) are not followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.markdown import anchors, headings, links

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Where the code lives, and the files at the top that cite documents too.
CODE_DIRS = ("leadlawk_daemon", "actors", "supervisors", "tests", "bench", "scripts", "config")
CODE_FILES = ("Makefile", "pyproject.toml", "app.json", "Procfile")
CODE_SUFFIXES = {".py", ".sql", ".yaml", ".yml", ".json", ".toml", ".sh", ".html", ".js", ".css", ".j2"}
DOC_CITATION = re.compile(r"\bdocs/[\w./-]+\.md(?:#[\w-]+)?")
# The second stage's contract and picture, kept in ../shared: the repository's own copies are
# docs/interfaces.md and docs/architecture.md, so the code cites those.
SHARED_PAGE = re.compile(r"\b(?:INTERFACES|ARCHITECTURE)\.md\b")
README_SECTION = re.compile(r'README[\'’s]*[ :,]*"([^"\n]+)"')
# An applied migration is checksummed (store/migrations.py): its text, comments included, never
# changes, so what it cites stays as it was written.
FROZEN = ("leadlawk_daemon/store/migrations/",)
# Not citations: captured pages and fixtures, and this file (its own examples of each pattern).
NOT_CODE = ("tests/data/", Path(__file__).relative_to(ROOT).as_posix())
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _code_files() -> list[Path]:
    files = [ROOT / name for name in CODE_FILES if (ROOT / name).is_file()]
    for directory in CODE_DIRS:
        files += sorted(p for p in (ROOT / directory).rglob("*") if p.is_file() and p.suffix in CODE_SUFFIXES)
    return [p for p in files if not p.relative_to(ROOT).as_posix().startswith(NOT_CODE)]


def _missing(target: str, page: Path) -> str | None:
    """Why ``target``, linked from ``page``, leads nowhere; None when it leads somewhere."""
    path, _, anchor = unquote(target).partition("#")
    dest = (page.parent / path).resolve() if path else page
    if not dest.exists():
        return f"{dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist"
    if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
        return f"{dest.relative_to(ROOT)} has no heading #{anchor}"
    return None


def test_the_pages_exist_and_the_readme_is_an_entry_point() -> None:
    assert len(PAGES) > 10
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines: the rest belongs under docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    targets = [t for t in links(text) if not SCHEME.match(t)]
    broken = [f"{target}: {why}" for target in targets if (why := _missing(target, page))]
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_document_the_code_cites_exists() -> None:
    readme_sections = set(headings((ROOT / "README.md").read_text(encoding="utf-8")))
    broken = []
    for file in _code_files():
        name = file.relative_to(ROOT).as_posix()
        text = file.read_text(encoding="utf-8", errors="replace")
        for citation in DOC_CITATION.findall(text):
            if why := _missing(citation, ROOT / "README.md"):
                broken.append(f"{name}: {citation}: {why}")
        if not name.startswith(FROZEN):
            broken += [f"{name}: cites {cited}, which is not in the repository" for cited in SHARED_PAGE.findall(text)]
        broken += [
            f'{name}: README "{section}" is no heading of README.md'
            for section in README_SECTION.findall(text)
            if section not in readme_sections
        ]
    assert not broken, "\n".join(broken)


def test_the_checks_see_what_they_check() -> None:
    """The patterns find what they are meant to, so a passing run means something."""
    page = (
        "# A *title*, with `code`\n\n```sh\n# not a heading\n[no](link.md)\n```\n"
        "[yes](x.md#a-title-with-code) `[no](y.md)`\n"
    )
    assert anchors(page) == {"a-title-with-code"}
    assert links(page) == ["x.md#a-title-with-code"]
    assert DOC_CITATION.findall("see docs/runbook.md#scaling-out.") == ["docs/runbook.md#scaling-out"]
    assert SHARED_PAGE.findall("(INTERFACES.md: metrics)") == ["INTERFACES.md"]
    assert README_SECTION.findall('(README "Scaling out")') == ["Scaling out"]
    assert any(p.name == "http_api.py" for p in _code_files())

