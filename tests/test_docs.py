"""The documentation site builds under ``mkdocs build --strict``, with its generated pages.

The build runs as a reader would run it (``python -m mkdocs``, this environment's Python),
and the built HTML is checked for what the generators must have put there: the CLI
reference (mkdocs-click over the Typer app) lists commands with their options, and the API
reference (mkdocstrings over the docstrings) has the catalog's methods and their docs. A
broken generator, a broken link or a griffe warning fails the strict build.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mkdocstrings") is None
    or importlib.util.find_spec("mkdocs_click") is None,
    reason="the docs extra is not installed (pip install -e '.[docs]')",
)


def _nav_pages(nav: list[object]) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        values = entry.values() if isinstance(entry, dict) else [entry]
        for value in values:
            if isinstance(value, list):
                pages.extend(_nav_pages(value))
            else:
                pages.append(str(value))
    return pages


def _text(page: Path) -> str:
    """A built page's text, tags dropped and entities decoded, whitespace collapsed."""
    raw = re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8"))
    return " ".join(html.unescape(raw).split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", str(dest)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dest


def test_every_nav_page_is_built(site: Path) -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = _nav_pages(config["nav"])
    assert len(pages) >= 12
    for page in pages:
        assert (ROOT / "docs" / page).is_file(), page
        built = site / (
            "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        )
        assert built.is_file(), built
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == set(pages), "every page in docs/ is in the nav, and only those"


def test_index_says_what_is_still_to_come(site: Path) -> None:
    text = _text(site / "index.html")
    assert "Still to come" in text and "architecture decision records" in text


def test_cli_reference_lists_commands_with_their_options(site: Path) -> None:
    text = _text(site / "reference" / "cli" / "index.html")
    for command in (
        "arcodex convert",
        "arcodex search",
        "arcodex stac validate",
        "arcodex db copy",
    ):
        assert f"{command} [OPTIONS]" in text, command
    search = text[text.index("arcodex search [OPTIONS]") : text.index("arcodex serve [OPTIONS]")]
    for option in ("--text", "--bbox W,S,E,N", "--time START/END", "--sort", "--json"):
        assert option in search, option
    convert = text[text.index("arcodex convert [OPTIONS]") : text.index("arcodex db [OPTIONS]")]
    for option in ("--to", "--chunks", "--codec", "--cluster", "--dest-profile"):
        assert f"{option} " in convert, option


def test_api_reference_has_the_docstrings(site: Path) -> None:
    from arcodex.catalog import Catalog

    page = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for anchor in (
        "arcodex.catalog.Catalog.search",
        "arcodex.catalog.Catalog.add_file",
        "arcodex.model.Record",
    ):
        assert f'id="{anchor}"' in page, anchor
    text = _text(site / "reference" / "api" / "index.html")
    doc = Catalog.search.__doc__
    assert doc is not None
    # Markdown renders ``code`` as code, so the page has it without backticks, and the tags
    # around it leave spaces: compare without any whitespace.
    first_line = "".join(doc.strip().splitlines()[0].replace("``", "").split())
    assert first_line in "".join(text.split())
