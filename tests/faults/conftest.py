"""``sessions``: open a ``FaultSession`` (one client for a whole scenario) through the test's
driver, closed when the test ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from guardedllm import Registry

from ._session import FaultSession, Figures, OpenSession, open_session


@pytest.fixture
def sessions(driver: str, registry: Registry) -> Iterator[OpenSession]:
    with ExitStack() as stack:

        def open_one(**kwargs: Any) -> FaultSession:
            return stack.enter_context(open_session(driver, registry, **kwargs))

        yield open_one


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Report a scenario's measured figures: printed (``pytest -rP`` shows them for passing
    tests) and kept in the test's ``user_properties``."""

    def report(**measured: object) -> None:
        request.node.user_properties.append(("figures", measured))
        print(f"figures {request.node.name}: {measured}")

    return report
