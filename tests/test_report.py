"""The results pages (docs/results/) and the README's results block are what benchmarks/report.py
generates from the committed benchmark JSON, name the provenance of every result, and tell no history."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "results"
HISTORY_WORDS = ("issue", "earlier", "previous", "our notes", "session")
REGENERATE = "run .venv/bin/python benchmarks/report.py and commit docs/results/ (and README.md)"


def load_report():
    spec = importlib.util.spec_from_file_location("hwnas_benchmarks_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def full_history() -> bool:
    """Dates come from git when a JSON records none: a shallow or absent history cannot give them."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--is-shallow-repository"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return False
    return out == "false"


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    report = load_report()
    out = tmp_path_factory.mktemp("results")
    block = report.build(out)
    return report, out, block


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def test_pages_are_generated_from_the_json(generated):
    if not full_history():
        pytest.skip("no full git history here: the dates of results without their own cannot be derived")
    report, out, block = generated
    differing = report.differences(out, block)
    assert not differing, f"out of date: {', '.join(differing)}; {REGENERATE}"


def test_readme_block_is_current_when_present(generated):
    report, out, block = generated
    readme = report.readme_with(block)
    if readme is None:
        pytest.skip("README.md has no results block yet")
    if not full_history():
        pytest.skip("no full git history here: the dates of results without their own cannot be derived")
    assert readme == report.README.read_text(), f"README.md's results block is out of date; {REGENERATE}"


def test_generation_is_deterministic(generated, tmp_path):
    report, out, block = generated
    assert report.build(tmp_path) == block
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    second = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert first == second


def test_every_result_names_date_machine_and_command():
    assert pages(), f"docs/results/ has no pages; {REGENERATE}"
    for page in pages():
        if page.name == "index.md":
            continue
        text = page.read_text()
        sections = re.split(r"^## ", text, flags=re.M)[1:]
        assert sections, f"{page.name} has no results"
        for section in sections:
            title = section.splitlines()[0]
            line = next((ln for ln in section.splitlines() if ln.startswith("**Provenance.**")), None)
            assert line, f"{page.name}, {title}: no provenance line"
            assert re.search(r"Date: \d{4}-\d{2}-\d{2}\.", line), f"{page.name}, {title}: no date"
            assert re.search(r"Machine: [^.]*\S", line) and "Machine: CPU not recorded" not in line, (
                f"{page.name}, {title}: no machine"
            )
            assert re.search(r"Command: `[^`]+`", line), f"{page.name}, {title}: no command"


def test_pages_tell_no_history():
    for page in pages():
        text = page.read_text().lower()
        found = [w for w in HISTORY_WORDS if w in text]
        assert not found, f"{page.name} says {found}: results pages state what was measured, not its history"


def test_images_on_the_pages_exist():
    for page in pages():
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / target).is_file(), f"{page.name} shows {target}, which is not in docs/results/"


def test_no_gpu_without_a_recorded_gpu(generated):
    """A GPU is named only where a result's JSON records one."""
    report, _, _ = generated
    kept, _ = report.sources()
    recorded = any(
        report.machine_of((s.data.get("provenance") or {}).get("machine"), s.data.get("machine")).get("gpu")
        for s in kept
    )
    if not recorded:
        for page in pages():
            assert "GPU" not in page.read_text(), f"{page.name} names a GPU no result records"
