"""Every relative link in README.md, docs/*.md and bench/README.md resolves: the file
exists in the repository and, for ``page.md#anchor``, the page has that heading."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", REPO / "bench" / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are not links)."""
    return _CODE.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    return _LINK.findall(_prose(text))


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for line in _FENCE.sub("", text).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    bad = []
    for target in links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif REPO not in dest.parents:
            bad.append(f"{target}: outside the repository")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_the_checker_finds_broken_links(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    monkeypatch.setattr(sys.modules[__name__], "REPO", repo)
    (repo / "docs").mkdir(parents=True)
    (repo / "docs" / "a.md").write_text("# Title\n\n## Some `code`: here\n", encoding="utf-8")
    (tmp_path / "x.md").touch()
    page = repo / "README.md"
    page.write_text("[ok](docs/a.md) [ok](docs/a.md#some-code-here) [ok](#top) ![x](docs/a.md)\n"
                    "[web](https://example.org/x) `[not a link](nowhere.md)`\n\n# Top\n"
                    "```\n[not a link](nowhere.md)\n```\n"
                    "[gone](docs/b.md) [no anchor](docs/a.md#nope) [out](../x.md)\n", encoding="utf-8")
    assert broken_links(page) == ["docs/b.md: no such file", "docs/a.md#nope: no heading #nope in docs/a.md",
                                  "../x.md: outside the repository"]
