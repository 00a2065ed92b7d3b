"""MkDocs hook: fill reference tables from the code itself.

* ``<!-- mathy-help COMMAND -->`` becomes the output of ``mathy COMMAND --help``
  (``<!-- mathy-help -->`` for ``mathy --help``);
* ``<!-- config-table -->`` becomes a table of every ``A3CConfig`` field with
  its default and documentation.

So the reference pages cannot drift from the code.
"""

from __future__ import annotations

import os
import re
from typing import Any

MARKER = re.compile(r"<!-- mathy-help(?: (?P<command>[a-z-]+))? -->")


def _help(command: str | None) -> str:
    from typer.testing import CliRunner

    from mathy_a3c.cli import app

    args = [command, "--help"] if command else ["--help"]
    env = {"NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}
    result = CliRunner().invoke(app, args, env=env, prog_name="mathy")
    if result.exit_code != 0:
        raise RuntimeError(f"mathy {' '.join(args)} failed:\n{result.output}")
    return result.output.rstrip()


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    os.environ.setdefault("COLUMNS", "100")

    def render(match: re.Match[str]) -> str:
        command = match.group("command")
        title = f"mathy {command} --help" if command else "mathy --help"
        return f"```text\n$ {title}\n{_help(command)}\n```"

    markdown = MARKER.sub(render, markdown)
    if "<!-- config-table -->" in markdown:
        markdown = markdown.replace("<!-- config-table -->", _config_table())
    return markdown


def _config_table() -> str:
    import dataclasses

    from mathy_a3c.config import A3CConfig

    defaults = A3CConfig()
    rows = ["| field | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(A3CConfig):
        value = getattr(defaults, field.name)
        text = str(field.metadata["help"]).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{value!r}` | {text} |")
    return "\n".join(rows)
