"""The official openai SDK as an optional peer, whichever HTTP library it is built on.

openai 1.x sends through ``httpx``; openai 3.x through ``httpx2``, a fork with the same API
(``Client``, ``AsyncClient``, ``MockTransport``, ``Response``). ``openai_peer()`` finds out which,
so the benchmarks hand the SDK a client of its own library, or reports why it cannot.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from _payloads import API_KEY, COMPLETION_BODY, COMPLETION_HEADERS


@dataclass(frozen=True)
class OpenAIPeer:
    openai: ModuleType
    http: ModuleType  # httpx or httpx2: what openai.OpenAI(http_client=...) expects
    version: str

    @property
    def http_name(self) -> str:
        return self.http.__name__

    def mock_transport(self, handler: Any = None) -> Any:
        def answer(request: Any) -> Any:
            request.read()
            return self.http.Response(200, content=COMPLETION_BODY, headers=COMPLETION_HEADERS)

        return self.http.MockTransport(handler or answer)

    def client(self, base_url: str, transport: Any) -> Any:
        http_client = self.http.Client(transport=transport)
        return self.openai.OpenAI(base_url=base_url, api_key=API_KEY, http_client=http_client)

    def async_client(self, base_url: str, http_client: Any = None) -> Any:
        return self.openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, http_client=http_client)


def openai_peer() -> tuple[OpenAIPeer | None, str]:
    """The peer, or None and the reason it is skipped."""
    try:
        openai = importlib.import_module("openai")
        base_client = importlib.import_module("openai._base_client")
    except ImportError as exc:
        return None, f"openai SDK not importable ({exc}); skipped"
    http = getattr(base_client, "httpx2", None) or getattr(base_client, "httpx", None)
    if not isinstance(http, ModuleType) or not hasattr(http, "MockTransport"):
        return None, "could not tell which HTTP library the openai SDK uses; skipped"
    version = str(getattr(openai, "__version__", "?"))
    return OpenAIPeer(openai, http, version), f"openai {version} over {http.__name__}"
