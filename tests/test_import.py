"""``import guardedllm`` does no work: the engine, the guards, routing and telemetry (with
OpenTelemetry's trace and metrics API) load with the first client, so that an application pays
for them only when it uses them (benchmarks/bench_import.py measures the time; this checks what
is loaded)."""

from __future__ import annotations

import subprocess
import sys

DEFERRED = (
    "guardedllm.engine._engine",
    "guardedllm.engine._routing",
    "guardedllm.guards",
    "guardedllm.report",
    "guardedllm.record",
    "guardedllm.release",
    "guardedllm.routing",
    "guardedllm.telemetry",
    "opentelemetry.trace",
    "opentelemetry.metrics",
    "matplotlib",
    "rich",
)


def loaded_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_import_loads_none_of_the_deferred_modules() -> None:
    loaded = loaded_after("import guardedllm")
    assert "guardedllm.client" in loaded
    # httpx's own command line loads rich (and click) when they are installed: not ours to
    # defer, so what `import httpx` loads alone does not count.
    loaded -= loaded_after("import httpx")
    assert sorted(m for m in loaded if m.startswith(DEFERRED)) == []


def test_the_first_client_loads_them() -> None:
    loaded = loaded_after(
        "import guardedllm\n"
        "registry = guardedllm.Registry.from_dict({'providers': {'o': {'kind': 'openai'}}, "
        "'models': {'m': {'provider': 'o', 'model': 'x', 'tokenizer': 'o200k_base', "
        "'context_window': 1000, 'max_output_tokens': 100, 'input_usd_per_mtok': 1, "
        "'output_usd_per_mtok': 1}}})\n"
        "guardedllm.Client(registry).close()"
    )
    assert {"guardedllm.engine._engine", "guardedllm.routing", "opentelemetry.trace"} <= loaded


def test_the_guards_warnings_stay_silent_until_logging_is_configured() -> None:
    # Python's last-resort handler prints a warning of a logger with no handler to stderr; a
    # library's NullHandler keeps an application that configured no logging quiet.
    code = (
        "import logging, guardedllm; "
        "logging.getLogger('guardedllm').warning('circuit breaker for a: closed -> open')"
    )
    quiet = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    shown = subprocess.run(
        [sys.executable, "-c", "import logging; logging.basicConfig(); " + code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "closed -> open" in shown.stderr  # configured logging still sees it
