"""The README's relative links point to files and folders that exist in the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_links_point_to_files_in_the_repository():
    text = (ROOT / "README.md").read_text()
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not t.startswith(("http", "#", "mailto:"))]
    assert targets, "the README links to the docs and examples"
    missing = [t for t in targets if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README links to missing files: {missing}"
    assert "../shared" not in text and "seasoned/server/" not in text
