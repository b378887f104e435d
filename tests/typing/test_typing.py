"""The public API's types, checked by running mypy (strict) on sample files: the good sample
type-checks with every ``assert_type`` holding, and the bad one has an error on exactly the lines
marked ``# E``, so a signature that loosened back to ``Any`` fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SAMPLES = Path(__file__).parent / "samples"


def run_mypy(sample: Path, cache: Path) -> list[str]:
    stdout, stderr, _ = mypy_api.run(
        [
            "--strict",
            "--no-error-summary",
            "--hide-error-context",
            "--cache-dir",
            str(cache),
            "--python-version",
            "3.11",
            str(sample),
        ]
    )
    assert not stderr, stderr
    return [line for line in stdout.splitlines() if ": error:" in line]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mypy-cache")


def test_the_good_sample_type_checks_with_every_assert_type_holding(cache: Path) -> None:
    assert run_mypy(SAMPLES / "good.py", cache) == []


def test_the_bad_sample_has_an_error_on_each_marked_line_and_nowhere_else(cache: Path) -> None:
    sample = SAMPLES / "bad.py"
    marked = {
        number
        for number, line in enumerate(sample.read_text().splitlines(), start=1)
        if line.rstrip().endswith("# E")
    }
    errors = run_mypy(sample, cache)
    found = {int(m.group(1)) for e in errors if (m := re.search(r"bad\.py:(\d+):", e))}
    assert found == marked, "\n".join(errors)


def test_the_typed_parameters_are_the_ones_create_accepts() -> None:
    """``CompletionParams`` names every parameter ``chat_request`` takes by name or passes
    through to OpenAI, and nothing else, so the types and the run-time check agree."""
    import inspect

    from guardedllm._request import OPENAI_EXTRA_PARAMS, chat_request
    from guardedllm.params import CompletionParams

    named = set(inspect.signature(chat_request).parameters) - {
        "model",
        "messages",
        "stream",
        "params",
    }
    assert set(CompletionParams.__annotations__) == named | OPENAI_EXTRA_PARAMS
