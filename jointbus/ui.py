"""What a person sees: tables, progress, one-line errors (on stdout/stderr via rich)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# rich assumes 80 columns when output is not a terminal; tables here are wider than that
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table with a title; numbers right-aligned."""
    rows = [list(r) for r in rows]
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, name in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], int | float) for r in rows)
        t.add_column(name, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*(Text(visible(str(c))) for c in r))  # cells are data, never markup
    out.print(t)


def visible(text: str) -> str:
    """``text`` with every character a terminal would act on or hide (controls, bidi
    overrides, zero-width marks, NUL) written as an escape: what a member sent is shown, it
    does not rearrange or blank the operator's screen."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode() for c in text)


def say(message: str) -> None:
    """One line for the person at the terminal."""
    out.print(message)


def json_line(value: Any) -> None:
    """One JSON document on one line (for ``--json`` streams read line by line)."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def fail(message: str) -> None:
    """One error line on stderr, no traceback."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
