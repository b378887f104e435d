"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s docs``,
``nox -s bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (offline, no API keys)."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src."""
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "src/guardedllm")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built with --strict: a broken link or anchor, a page left out of
    the navigation or a docstring mkdocstrings cannot read fails the build. Output in site/."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, run on demand: figures and ratios against raw httpx in the same run, with the
    openai SDK and LiteLLM as peers (LiteLLM runs offline: bundled cost map, no telemetry)."""
    session.install("-e", ".[dev]", "pyinstrument", "litellm")
    session.run("python", "benchmarks/run.py", *session.posargs)
