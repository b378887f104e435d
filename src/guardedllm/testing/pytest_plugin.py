"""guardedllm's pytest plugin (entry point ``pytest11: guardedllm``): the ``fake_provider``
fixture.

The plugin loads in every pytest run of a project that has guardedllm installed, so it imports
nothing heavy until a test asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from guardedllm.testing import FakeProvider

__all__ = ["fake_provider"]


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    """A started ``guardedllm.testing.FakeProvider`` serving every model, stopped after the
    test. Script it with ``fake_provider.script(...)``; read ``fake_provider.requests``."""
    from guardedllm.testing import FakeProvider

    with FakeProvider() as fake:
        yield fake
