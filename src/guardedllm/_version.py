"""The package version, in one place."""

from __future__ import annotations

__version__ = "0.1.0.dev0"

USER_AGENT = f"guardedllm/{__version__}"
