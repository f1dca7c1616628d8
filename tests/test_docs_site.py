"""The docs site builds with ``mkdocs build --strict`` (a broken link, anchor or page fails), and the
README stays a front door that links into it."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _mkdocs() -> list[str]:
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if exe is None:
        pytest.fail("mkdocs is not installed: mkdocs-material comes with the dev extra (pip install -e '.[dev]')")
    return [exe]


def test_the_docs_site_builds_strict(tmp_path):
    done = subprocess.run(_mkdocs() + ["build", "--strict", "--site-dir", str(tmp_path / "site")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in ("index.html", "suites/index.html", "records/index.html", "plugins/methods/index.html",
                 "plugins/models/index.html", "plugins/datasets/index.html", "plugins/backends/index.html",
                 "plugins/testing/index.html", "architecture/index.html"):
        assert page in pages, sorted(pages)


def test_readme_is_a_front_door_under_15_kb_that_links_into_the_docs():
    text = README.read_text()
    assert len(text.encode()) < 15_000, len(text.encode())
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", text))
    assert {"docs/suites.md", "docs/plugins/index.md"} <= linked, linked
    for link in linked:
        assert (REPO / link).is_file(), link
