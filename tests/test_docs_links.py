"""Every relative link in the project's markdown points to a file that exists, and every ``#anchor`` into a
markdown file to one of its headings (GitHub's heading slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted({ROOT / "README.md", ROOT / "models" / "README.md", ROOT / "engine" / "README.md", *(ROOT / "docs").rglob("*.md")})
LINK = re.compile(r"!?\[(?:[^\]]|\][^(])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links there are not links)."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        if not inside:
            lines.append(re.sub(r"`[^`]*`", "``", line))
    return "\n".join(lines)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (not ``-``/``_``), spaces as ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's label only
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    slugs = set()
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if inside or not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        slugs.add(slug if count == 0 else f"{slug}-{count}")
    return slugs


def relative_links(path: Path) -> list[str]:
    targets = LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def test_the_documents_exist() -> None:
    assert ROOT / "README.md" in DOCS and all(p.is_file() for p in DOCS)
    assert len(DOCS) >= 6


def broken_links(doc: Path) -> list[str]:
    broken = []
    for target in relative_links(doc):
        file_part, _, anchor = target.partition("#")
        destination = (doc.parent / file_part).resolve() if file_part else doc
        if not destination.exists():
            broken.append(f"{target}: no such file {destination}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading #{anchor} in {destination.name}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = broken_links(doc)
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A `code` title, here\n\n## Twice\n\n## Twice\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#a-code-title-here) [ok](other.md#twice-1) [web](https://example.com/x) [self](#top)\n"
        "# Top\n[gone](missing.md) [bad anchor](other.md#nope) `[in code](missing2.md)`\n"
        "```\n[in a fence](missing3.md)\n```\n![picture](pic.png)\n"
    )
    found = broken_links(doc)
    assert [b.split(":")[0] for b in found] == ["missing.md", "other.md#nope", "pic.png"]


def test_slugs_follow_github() -> None:
    assert github_slug("Nothing lost, nothing leaked") == "nothing-lost-nothing-leaked"
    assert github_slug("`default.pt`: real and generated frames together") == "defaultpt-real-and-generated-frames-together"
    assert github_slug("Backends (`engine.backends.create_backend(x)`)") == "backends-enginebackendscreate_backendx"
