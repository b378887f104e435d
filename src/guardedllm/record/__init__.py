"""The traffic recorder: one JSON line per call (and per shadow pair), written by a background
thread, for ``guardedllm simulate`` and ``compare`` to read offline. The format is
docs/record-format.md; the settings are ``[record]`` (``RecordConfig``).

Loaded with the first client that records: ``import guardedllm`` does not import it.
"""

from __future__ import annotations

from guardedllm.record._build import FORMAT_VERSION
from guardedllm.record._recorder import Recorder
from guardedllm.registry import RecordConfig

__all__ = ["FORMAT_VERSION", "RecordConfig", "Recorder"]
