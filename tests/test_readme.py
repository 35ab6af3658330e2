"""The README is for users: short, opening with the two set-up commands, its links resolve.

Its one Python block runs against a demo folder in tests/test_pipeline.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def test_readme_opens_with_the_two_commands_and_stays_short():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first_block and [line.split()[:2] for line in first_block.group(1).strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    assert len(re.findall(r"```python\n", text)) == 1, "the README has one Python block (run in test_pipeline)"


def test_readme_links_resolve():
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the README links to the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
