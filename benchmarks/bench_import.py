"""Cold import time: ``python -c "import X"`` in fresh interpreters, minus bare ``python``.

Cases: ``pass`` (the interpreter's own start-up, subtracted from the rest), ``import httpx``,
``import guardedllm``, and ``import openai`` when it is installed. Each case runs in
``Mode.import_runs`` fresh interpreters, the cases interleaved in rotating order; the first run
of each (which writes the bytecode caches a source checkout lacks, PYTHONDONTWRITEBYTECODE or
not) is untimed. Figures are median wall-clock times;
each child's CPU time (user + system, from ``getrusage``) is reported beside them, because wall
time on a shared machine also counts waiting for a core.

Run alone:  python benchmarks/bench_import.py [--quick]
"""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
import time

from _harness import Mode, Section, Stats, Target, run_alone, schedule

BARE = "python -c pass"
CASES = {
    BARE: "pass",
    "import httpx": "import httpx",
    "import guardedllm": "import guardedllm",
    "import openai": "import openai",
}
RUN_TIMEOUT_S = 60.0  # one interpreter start; a healthy one takes well under a second
GOAL = 0.3  # import guardedllm <= 0.3x import openai (each minus bare python)
# The children may write bytecode caches, as an installed package has them (pip compiles them
# when it installs): with PYTHONDONTWRITEBYTECODE set, a source checkout would be compiled on
# every run and timed as such, while the installed packages it is compared with are not.
CHILD_ENVIRON = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_interpreter(code: str) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one ``python -c code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            [sys.executable, "-c", code],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=RUN_TIMEOUT_S,
            check=False,
            env=CHILD_ENVIRON,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`python -c {code!r}` did not finish in {RUN_TIMEOUT_S:g} s") from exc
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        error = completed.stderr.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"`python -c {code!r}` failed: {error}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    section = Section("4. Cold import (fresh interpreter each run, minus bare python)")
    cases = dict(CASES)
    if importlib.util.find_spec("openai") is None:
        del cases["import openai"]
        section.notes.append("openai not installed: its import is not measured")
    for code in cases.values():  # untimed: bytecode caches, the OS file cache
        time_interpreter(code)
    walls: dict[str, list[float]] = {name: [] for name in cases}
    cpus: dict[str, list[float]] = {name: [] for name in cases}
    for order in schedule(list(cases), rounds=mode.import_runs, budget_s=120.0):
        for name in order:
            wall, cpu = time_interpreter(cases[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    bare_wall = Stats.of(walls[BARE]).median
    bare_cpu = Stats.of(cpus[BARE]).median
    net = {name: [w - bare_wall for w in walls[name]] for name in cases if name != BARE}
    section.add(BARE, walls[BARE], "ms", scale=1e3, note="subtracted from the others")
    reference = net.get("import openai")
    for name, values in net.items():
        cpu = Stats.of(cpus[name]).median - bare_cpu
        section.add(
            name,
            values,
            "ms",
            scale=1e3,
            baseline=reference,
            baseline_label="import openai" if reference else None,
            note=f"CPU {cpu * 1e3:.0f} ms",
        )
    if reference is not None:
        value: float | None = section.ratio("import guardedllm")
        basis = "wall time minus bare python, fresh interpreters"
    else:
        value, basis = None, "openai not installed"
    target = Target(
        "cold import, guardedllm vs openai", value, GOAL, higher_is_better=False, basis=basis
    )
    return [section], [target]


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
