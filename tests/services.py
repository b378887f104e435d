"""Finding the real programs some tests start (Debian's redis-server and chromium): a test
that needs one skips with the command that installs it, and fails instead in CI, where
``.ci/run`` installs them and their tests must run."""

from __future__ import annotations

import os
import shutil

import pytest


def service_binary(*names: str, install: str, tests: str) -> str:
    """The first of ``names`` on PATH, or skip (fail with ``CI=true``) the test that needs it;
    ``install`` is the command that installs it, ``tests`` what it lets run."""
    for name in names:
        binary = shutil.which(name)
        if binary is not None:
            return binary
    message = f"{names[0]} is not installed; `{install}` lets {tests} run"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI must run them: .ci/run installs it)", pytrace=False)
    pytest.skip(message)
