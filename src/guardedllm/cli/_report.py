"""Terminal output of simulate and compare: tables, and a progress bar while a log is read.

On a terminal, with the ``report`` extra installed (``pip install 'guardedllm[report]'``),
tables are drawn by rich and a progress bar runs on stderr. Anywhere else (a pipe, a CI log, a
file) the tables are plain aligned text, which diff and grep read, and there is no bar; without
the extra the commands work the same with plain tables, and on a terminal say once how to get
the bar. rich loads only here, when one of these commands runs: ``import guardedllm`` never
pays for it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from guardedllm.cli._table import format_table

if TYPE_CHECKING:
    from guardedllm.release import Gate

__all__ = ["counted", "gate_lines", "print_skips", "print_table", "progress"]


def counted(number: int, noun: str) -> str:
    """``1 line``, ``2 lines``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def gate_lines(gates: Sequence[Gate]) -> list[str]:
    """One line per gate: PASS or FAIL, its name and what it measured."""
    return [f"{'PASS' if gate.passed else 'FAIL'}  {gate.name}: {gate.detail}" for gate in gates]


def print_skips(skipped: int, reasons: Sequence[str]) -> None:
    """On stderr: how many lines were skipped and the reasons kept."""
    if not skipped:
        return
    print(f"{counted(skipped, 'line')} skipped; the first {len(reasons)}:", file=sys.stderr)
    for reason in reasons:
        print(f"  {reason}", file=sys.stderr)


def _has_rich() -> bool:
    return importlib.util.find_spec("rich") is not None


def print_table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], *, out: TextIO | None = None
) -> None:
    """``rows`` under ``header`` with ``title`` above; numbers (every column but the first)
    right-aligned on a terminal."""
    out = out or sys.stdout
    if out.isatty() and _has_rich():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", header_style="bold")
        for index, name in enumerate(header):
            table.add_column(name, justify="left" if index == 0 else "right", no_wrap=index == 0)
        for row in rows:
            table.add_row(*row)
        Console(file=out).print(table)
        return
    print(title, file=out)
    print(format_table(header, rows), file=out)
    print(file=out)


@contextlib.contextmanager
def progress(total_bytes: int, what: str) -> Iterator[Callable[[int], None] | None]:
    """A callback advancing a progress bar by bytes read, on stderr when it is a terminal and
    rich is installed; None otherwise (nothing to report to)."""
    if not sys.stderr.isatty():
        yield None
        return
    if not _has_rich():
        print(
            "guardedllm: install 'guardedllm[report]' for a progress bar and drawn tables",
            file=sys.stderr,
        )
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(what, total=total_bytes)

        def advance(done: int) -> None:
            bar.advance(task, done)

        yield advance
