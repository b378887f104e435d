from __future__ import annotations

from typing import Any

import pytest

from ._configs import valid_data


@pytest.fixture
def data() -> dict[str, Any]:
    """A fresh copy of the valid config as data, for a test to break."""
    return valid_data()
