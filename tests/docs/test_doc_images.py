"""The pictures in the docs: every image a page shows is there, and every screenshot of
the dashboard is one the test suite takes (tests/integration/test_ui*.py write them to
tests/output/ui/; the guide shows copies reviewed and committed under docs/images/ui/)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_image_a_doc_shows_exists() -> None:
    shown = 0
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for target in IMAGE.findall(page.read_text()):
            assert not target.startswith(("http:", "https:")), (page, target)
            assert (page.parent / target).is_file(), f"{page.name} shows missing {target}"
            shown += 1
    assert shown >= 5


def test_the_dashboards_screenshots_are_taken_by_the_tests() -> None:
    tests = "".join(p.read_text() for p in (ROOT / "tests" / "integration").glob("test_ui*.py"))
    committed = sorted((ROOT / "docs" / "images" / "ui").glob("*.png"))
    assert committed
    for image in committed:
        assert f'"{image.name}"' in tests, f"no test takes {image.name}"
