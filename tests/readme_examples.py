"""The documented ``curl`` examples, read from README.md and the ``make demo`` banner.

The documents are the single source of the examples: ``tests/test_readme.py`` runs what
this module extracts, so there is no second, hand-kept copy that could drift.

What counts as an example, in README.md: a line inside a fenced code block that runs
``curl`` (at the start of the line or after a ``|``). In examples/demo.sh: such a line
inside the banner heredoc (``cat <<MSG ... MSG``), as bash prints it. The output an example must print is
the run of ``# ...`` lines right below it, with ``# `` removed (joined by newlines);
an example with no such lines must merely succeed.

Any other code-block or banner command (comments aside) that mentions ``curl`` is an error
(:class:`UnparsedExample`), so an example written in a shape this module does not know
(``$ curl ...``, ``sudo curl``, a wrapped line) fails the test instead of being skipped.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DEMO = REPO / "examples" / "demo.sh"

_FENCE = re.compile(r"^\s*```")
_RUNS_CURL = re.compile(r"(?:^|\|)\s*curl\s")
_MENTIONS_CURL = re.compile(r"\bcurl\b")
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_SHOWN = re.compile(r"^\s*#(?: (?P<text>.*)|$)")
_BANNER = re.compile(r"^cat <<(?P<tag>\w+)\n(?P<body>.*?)^(?P=tag)$", re.MULTILINE | re.DOTALL)
_GATEWAY_COMMAND = re.compile(r'^"\$PY" -m gateway (?P<args>(?:.*\\\n)*.*)$', re.MULTILINE)
_REDIRECT = re.compile(r"\s\d?>")


class UnparsedExample(ValueError):
    """A documented line mentions curl but is not in a shape this module can run."""


@dataclass(frozen=True)
class Example:
    """One documented command; ``shown`` is the output printed under it, or None."""

    where: str  # "README.md:87": file and 1-based line, for test ids and messages
    command: str
    shown: str | None


def _examples(lines: Sequence[str], name: str, first_line: int) -> Iterator[Example]:
    """The examples among lines (all of them code), numbered from first_line."""
    for index, line in enumerate(lines):
        if not _MENTIONS_CURL.search(_COMMENT.sub("", line)):
            continue  # comments may talk about curl; only commands are examples
        where = f"{name}:{first_line + index}"
        if not _RUNS_CURL.search(line):
            raise UnparsedExample(f"{where}: mentions curl but is not a runnable example: {line.strip()!r}")
        shown: list[str] = []
        for below in lines[index + 1 :]:
            match = _SHOWN.match(below)
            if match is None:
                break
            shown.append(match["text"] or "")
        yield Example(where, line.strip(), "\n".join(shown) if shown else None)


def _code_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced block in a Markdown text."""
    block: list[str] | None = None
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            if block is not None:
                yield start, block
            block, start = (None, 0) if block is not None else ([], number + 1)
        elif block is not None:
            block.append(line)
    if block is not None:
        raise UnparsedExample(f"unclosed code block starting at line {start - 1}")


def readme_examples(path: Path = README) -> list[Example]:
    """Every curl example in a Markdown file's fenced code blocks, in document order."""
    return [
        example for start, lines in _code_blocks(path.read_text()) for example in _examples(lines, path.name, start)
    ]


def _banner(text: str) -> tuple[int, list[str]]:
    """(line number of its first line, lines) of the banner as bash prints it.

    The heredoc is unquoted, so bash expands ``$VARS`` and backslash escapes in it; bash
    itself renders it here, with ``B`` kept as the literal ``$B`` for the runner to set.
    """
    match = _BANNER.search(text)
    if match is None:
        raise UnparsedExample("no `cat <<TAG ... TAG` banner found")
    script = f"B='$B'\n{match[0]}\n"
    printed = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, timeout=30).stdout
    return text.count("\n", 0, match.start("body")) + 1, printed.splitlines()


def banner_examples(path: Path = DEMO) -> list[Example]:
    """Every curl example the demo script prints in its banner heredoc, in order."""
    start, lines = _banner(path.read_text())
    return list(_examples(lines, f"{path.parent.name}/{path.name}", start))


def demo_gateway_args(backend: str, path: Path = DEMO) -> list[str]:
    """The demo's own ``python -m gateway`` flags, with its backend replaced by ``backend``.

    ``--host`` and ``--port`` are dropped: the caller binds a free loopback port; a ``--config``
    path is taken from the repository's root, as the demo does. Every flag
    the demo passes takes one value; an unknown shape raises rather than guessing.
    """
    match = _GATEWAY_COMMAND.search(path.read_text())
    if match is None:
        raise UnparsedExample('no `"$PY" -m gateway ...` command found')
    command = _REDIRECT.split(match["args"].replace("\\\n", " "), maxsplit=1)[0]
    tokens = shlex.split(command)
    if len(tokens) % 2 or not all(flag.startswith("--") for flag in tokens[::2]):
        raise UnparsedExample(f"expected --flag value pairs in the demo's gateway command: {tokens}")
    args: list[str] = []
    for flag, value in zip(tokens[::2], tokens[1::2], strict=True):
        if flag in ("--host", "--port"):
            continue
        if flag == "--config":
            value = str(REPO / value)  # the demo runs from the repository's root; the test does not
        args += [flag, backend if flag == "--backend" else value]
    return args
