"""Hypothesis settings for the fuzz suite: bounded and repeatable in CI, long on demand.

Two profiles, registered here and applied test by test with ``fuzz(examples)`` (never loaded
globally, so the rest of the suite keeps hypothesis's defaults):

- ``guardedllm-fuzz-ci``, the default: the same examples on every run (``derandomize``: the
  seed comes from the test itself, and no example database is read or written), no per-example
  deadline (a loopback call on a shared 2-core machine has no stable duration), and each
  test's own modest ``max_examples``, which keeps the whole fuzz suite well under a minute.
  A failing test stops at its first failure, shrinks it (unless its examples are whole calls,
  whose shrinking takes minutes: those report the example as drawn, with the blob that replays
  it) and skips the "explain" phase, so that a failure costs seconds too;
- ``guardedllm-fuzz-long``, chosen by setting ``GUARDEDLLM_FUZZ_EXAMPLES=N``: N examples for
  every test, a new random seed each run, and the example database on, so that a failure
  found once is replayed first next time. Lift pytest's 60 s per-test timeout for it::

      GUARDEDLLM_FUZZ_EXAMPLES=5000 python -m pytest tests/fuzz --timeout=0

A failing example is printed with the ``@reproduce_failure`` blob that replays it.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

__all__ = ["LONG_RUN", "fuzz"]

CI_PROFILE = "guardedllm-fuzz-ci"
LONG_PROFILE = "guardedllm-fuzz-long"

# Big inputs (deep nesting, megabyte streams) are what the suite is for: generating them is
# slow and large by design, and whole-call tests hold one server across their examples.
_EXPECTED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
_FIXTURES = [HealthCheck.function_scoped_fixture]

settings.register_profile(
    CI_PROFILE,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    report_multiple_bugs=False,
    suppress_health_check=_EXPECTED + _FIXTURES,
)
settings.register_profile(
    LONG_PROFILE,
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=_EXPECTED + _FIXTURES,
)

_LONG_EXAMPLES = os.environ.get("GUARDEDLLM_FUZZ_EXAMPLES", "").strip()
LONG_RUN = bool(_LONG_EXAMPLES)


def fuzz(examples: int, *, shrink: bool = True) -> settings:
    """The settings for one fuzz test: ``examples`` examples in CI (a failure shrunk if
    ``shrink``), or as many as ``GUARDEDLLM_FUZZ_EXAMPLES`` says on a long run."""
    if LONG_RUN:
        return settings(settings.get_profile(LONG_PROFILE), max_examples=int(_LONG_EXAMPLES))
    phases = [Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])]
    return settings(settings.get_profile(CI_PROFILE), max_examples=examples, phases=phases)
