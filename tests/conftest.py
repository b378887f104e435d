"""Fixtures shared across the suite: a registry pointed at the ``fake_provider`` fixture's
server, and ``call``, one scenario run through every driver (see ``support.py``)."""

from __future__ import annotations

import pytest

from guardedllm import Registry
from guardedllm.testing import FakeProvider
from support import DRIVERS, Call, config_text, make_call


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider), source="test-config")


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def call(driver: str, registry: Registry) -> Call:
    return make_call(driver, registry)
