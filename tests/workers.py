"""Worker processes started together, for tests of what several processes share (a Redis
store): each prints "ready" once set up, waits for a go-file, does its work and prints its
results as JSON on its last line. Every wait is bounded; a worker still running at the end is
killed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# How long a worker may take in all: far past what any of them needs on a loaded machine.
WORKER_TIMEOUT_S = 60.0


def run_together(
    argvs: Sequence[Sequence[str]],
    go: Path,
    *,
    during: Callable[[], None] | None = None,
    timeout_s: float = WORKER_TIMEOUT_S,
) -> list[Any]:
    """Start one worker per argv, let them all go at once when every one is ready (``during``
    runs then), and return each one's results, in order."""
    workers = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    try:
        for worker in workers:  # every worker is set up before any starts
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            assert line == "ready", worker.communicate(timeout=timeout_s)[1]
        go.touch()
        if during is not None:
            during()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=timeout_s)
            assert worker.returncode == 0, err
            results.append(json.loads(out.splitlines()[-1]))
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
