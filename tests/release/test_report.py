"""Terminal output: rich tables on a terminal, plain aligned text anywhere else, and rich not
even imported when nothing is drawn."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from guardedllm.cli._report import print_table, progress

from .traffic import body, write_config, write_lines


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_drawn_table_and_a_pipe_plain_text() -> None:
    rows = [["input tokens p50", "812", "893"]]
    drawn = Terminal()
    print_table("Simulated", ["", "baseline", "candidate"], rows, out=drawn)
    assert "Simulated" in drawn.getvalue()
    assert "│" in drawn.getvalue() or "┃" in drawn.getvalue()  # a box drawn by rich
    plain = io.StringIO()
    print_table("Simulated", ["", "baseline", "candidate"], rows, out=plain)
    assert plain.getvalue().splitlines() == [
        "Simulated",
        "                  baseline  candidate",
        "----------------  --------  ---------",
        "input tokens p50  812       893",
        "",
    ]


def test_no_progress_bar_without_a_terminal() -> None:
    with progress(100, "replaying") as advance:
        assert advance is None


def test_simulate_into_a_pipe_does_not_import_rich(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    log = write_lines(tmp_path / "t.jsonl", [body()])
    # httpx's own command line loads rich when it is installed: only what simulate adds to
    # what `import httpx` loaded counts.
    code = (
        "import sys\nimport httpx\nbefore = set(sys.modules)\nfrom guardedllm.cli import main\n"
        f"status = main(['simulate', {config!r}, '--traffic', {log!r}, '--baseline', 'mini', "
        "'--candidate', 'haiku'])\n"
        "ours = [m for m in set(sys.modules) - before if m.split('.')[0] == 'rich']\n"
        "print('rich loaded' if ours else 'rich not loaded', status)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "rich not loaded 0"
