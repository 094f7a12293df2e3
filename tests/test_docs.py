"""The README and docs/ link only to files that exist, relative to the page that links them (as GitHub renders it)."""

import re
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_targets(page: Path) -> list[str]:
    targets = (match.group(1).split("#")[0] for match in LINK.finditer(page.read_text()))
    return [target for target in targets if target and "://" not in target and not target.startswith("mailto:")]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve_from_their_page(page):
    missing = [target for target in relative_targets(page) if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(REPO)} links to files that are not there: {missing}"


def test_link_pattern_reads_images_and_anchors():
    page = "see ![a plot](cv.png), [the recipes](recipes.md#cpu) and [MLflow](https://mlflow.org)"
    assert [m.group(1) for m in LINK.finditer(page)] == ["cv.png", "recipes.md#cpu", "https://mlflow.org"]
