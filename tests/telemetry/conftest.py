"""Fixtures: a fresh SDK-backed ``Telemetry`` per test (see ``_recording.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._recording import Recorded


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    result = Recorded()
    yield result
    result.tracer_provider.shutdown()
    result.meter_provider.shutdown()


@pytest.fixture
def recorded_content() -> Iterator[Recorded]:
    result = Recorded(record_content=True)
    yield result
    result.tracer_provider.shutdown()
    result.meter_provider.shutdown()
