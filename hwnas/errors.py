"""User-facing errors and warnings: the CLI prints these as one line (errors exit with code 2).

A message is written as the command line shows it, naming the flag that fixes it (`--population`,
`pass --drift ignore`). A Python caller sees it in library terms: `str()` gives each flag as the
keyword argument it is in the Python API (`population`, `drift`); commands quoted in backticks
(`hwnas profile --device cpu ...`) stay as they are, since they are commands to run. The CLI
prints `cli_message()`, the message as written.
"""

from __future__ import annotations

import re

_FLAG = re.compile(r"(?<![\w`-])--([a-z][a-z0-9]*(?:[-_][a-z0-9]+)*)")
# flags whose keyword is not the flag's name with underscores; None: the command line's own (no keyword)
_KEYWORDS: dict[str, str | None] = {"from": "from_table", "debug": None, "help": None, "json": None}


def _keyword(match: re.Match[str]) -> str:
    flag = match.group(1)
    keyword = _KEYWORDS.get(flag, flag.replace("-", "_"))
    return match.group(0) if keyword is None else f"`{keyword}`"


def in_library_terms(message: str) -> str:
    """`message` with every flag outside a backtick-quoted command as its keyword, quoted: `--search-val`
    -> `search_val`."""
    parts = message.split("`")
    parts[::2] = [_FLAG.sub(_keyword, text) for text in parts[::2]]
    return "`".join(parts)


class _TwoTerms:
    """A message in CLI terms (`cli_message`) and in library terms (`str`)."""

    args: tuple[object, ...]

    def cli_message(self) -> str:
        return " ".join(str(a) for a in self.args)

    def __str__(self) -> str:
        return in_library_terms(self.cli_message())


class HwnasError(_TwoTerms, Exception):
    """Bad input or usage that the user can fix; the message names the problem and the fix."""


class ArchError(HwnasError, ValueError):
    """An architecture that does not fit its search space."""


class SpaceError(HwnasError, ValueError):
    """An unknown or malformed search space."""


class HwnasWarning(_TwoTerms, UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it as one line."""


class HwnasNotice(HwnasWarning):
    """The outcome of a check the user should see once (it held, or what was reused); the CLI prints
    it as one line without the word 'warning'."""


def cli_message(exc: BaseException | Warning | str) -> str:
    """What the CLI prints for `exc`: ours as written (with flags), anything else as `str` does."""
    return exc.cli_message() if isinstance(exc, _TwoTerms) else str(exc)
