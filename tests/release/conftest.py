"""The release tools' tests: the browser fixture for the ``--html`` pages."""

from __future__ import annotations

from browser import chromium  # noqa: F401  (a fixture)
