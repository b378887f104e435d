"""Fixtures shared by the estimate tests."""

from __future__ import annotations

import socket
from typing import NoReturn

import pytest


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to resolve a host name or open a connection fail at once."""

    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise OSError("this test forbids network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
