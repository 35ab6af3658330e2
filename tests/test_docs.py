"""The user documentation stays true and buildable: the mkdocs site builds with --strict, every
```python block of docs/ runs (unless it says why it cannot; the README's, in test_pipeline), every `hwnas` command
line the docs show names a real command and real options, and no page tells project history."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = DOCS / "results"  # written by benchmarks/report.py from the committed results
NOT_RUN = "# not run in the tests:"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
HISTORY = re.compile(
    r"issue #|issue \d|this session|earlier session|previous session|our notes|lent to this project|\bearlier\b|"
    r"\bpreviously\b|\bprevious (table|run|version|protocol)|was tried|we tried|\bno longer\b|used to be",
    re.I,
)


def user_pages(generated: bool = True) -> list[Path]:
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [p for p in pages if p.is_file() and (generated or GENERATED not in p.parents)]


def fenced_blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """(first line number, dedented body) of each fenced block of `lang` in the file."""
    text = path.read_text()
    blocks = []
    for m in FENCE.finditer(text):
        if m.group("lang") != lang:
            continue
        indent = len(m.group("indent"))
        body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
        blocks.append((text.count("\n", 0, m.start()) + 1, body))
    return blocks


def python_blocks() -> list:
    """The docs' Python blocks; the README's one block runs on a demo folder in tests/test_pipeline.py."""
    params = []
    for page in user_pages(generated=False):
        if page.name == "README.md":
            continue
        for line, body in fenced_blocks(page, "python"):
            where = f"{page.relative_to(ROOT)}:{line}"
            skip = body.lstrip().startswith(NOT_RUN)
            params.append(
                pytest.param(
                    body, where, id=where, marks=[pytest.mark.skip(reason=body.strip().splitlines()[0])] if skip else []
                )
            )
    return params


def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(("code", "where"), python_blocks())
def test_python_blocks_run(code, where, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # each block in a fresh folder: it may write files, and finds no checkout files
    namespace: dict = {"__name__": "__docs__"}
    exec(compile(code, where, "exec"), namespace)


def command_lines() -> list[tuple[str, str]]:
    """(where, command line) of every line of a bash block and every inline `hwnas ...` code span of
    the user pages (continuation lines joined). In inline spans `|` separates alternatives
    (`[--largest | --smallest]`); in bash blocks it is a pipe."""
    found = []
    for page in user_pages():
        text = page.read_text()
        for line, body in fenced_blocks(page, "bash"):
            command, start = "", 0
            for i, text_line in enumerate(body.splitlines()):
                start = start if command else line + 1 + i
                command += text_line
                if command.endswith("\\"):  # continued on the next line
                    command = command[:-1] + " "
                    continue
                found.append((f"{page.relative_to(ROOT)}:{start}", command.replace("|", " | ")))
                command = ""
        for m in re.finditer(r"`(hwnas [^`\n]+)`", FENCE.sub("", text)):
            found.append((f"{page.relative_to(ROOT)} (inline)", m.group(1).replace("|", " ")))
    return found


def test_documented_commands_and_options_exist():
    from hwnas.cli import cli

    problems = []
    segments = [
        (where, part) for where, line in command_lines() for part in re.split(r"<\(|\$\(|\)|;|&&", line.split(" #")[0])
    ]  # nested and chained commands apart
    for where, line in segments:
        try:
            tokens = shlex.split(line)
        except ValueError:  # an unbalanced quote around a nested command: not a command line
            continue
        if "hwnas" not in tokens:
            continue
        rest = [t for t in tokens[tokens.index("hwnas") + 1 :] if t != "--debug"]
        if not rest or not re.fullmatch(r"[a-z][a-z-]*", rest[0]):  # a placeholder (COMMAND) or `hwnas --help`
            continue
        name, args = rest[0], rest[1:]
        if name not in cli.commands:
            problems.append(f"{where}: `hwnas {name}` is not a command ({line.strip()})")
            continue
        known = {"--help", "-h"} | {o for p in cli.commands[name].params for o in (*p.opts, *p.secondary_opts)}
        for arg in args:
            if arg == "|":  # a pipe: the rest is another program's
                break
            option = re.match(r"\[?(--[a-z0-9-]+)", arg)
            if option and option.group(1) not in known:
                problems.append(f"{where}: `hwnas {name}` has no option {option.group(1)} ({line.strip()})")
    assert not problems, "\n".join(problems)


def test_user_docs_have_no_history():
    found = [
        f"{page.relative_to(ROOT)}:{i}: {line.strip()}"
        for page in user_pages()
        for i, line in enumerate(page.read_text().splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert not found, "project history in user docs (write for users, not about the project):\n" + "\n".join(found)
