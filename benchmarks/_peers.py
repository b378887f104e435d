"""Optional peers: the official openai SDK, whichever HTTP library it is built on, and LiteLLM.

openai 1.x sends through ``httpx``; openai 3.x through ``httpx2``, a fork with the same API
(``Client``, ``AsyncClient``, ``MockTransport``, ``Response``). ``openai_peer()`` finds out which,
so the benchmarks hand the SDK a client of its own library, or reports why it cannot.

``litellm_peer()`` imports LiteLLM with everything it would fetch or send on its own turned off
(the model cost map is read from the copy bundled with it, offline mode on, telemetry off), so
that the only connections a benchmark makes are the ones it asks for: none in process (LiteLLM
is handed an openai client built on the SDK's own ``MockTransport``) and 127.0.0.1 for loopback.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

from _payloads import API_KEY, COMPLETION_BODY, COMPLETION_HEADERS, MODEL_ID


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


# Set before LiteLLM is imported: it reads them at import time. Forced, not defaulted: a
# benchmark must never fetch the remote cost map or anything else.
LITELLM_OFFLINE_ENVIRON = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true"}


@dataclass(frozen=True)
class LiteLLMPeer:
    litellm: ModuleType
    version: str
    model: str = f"openai/{MODEL_ID}"  # LiteLLM's OpenAI provider, the model sent unchanged

    def router(self, api_base: str) -> Any:
        """A ``litellm.Router`` with one deployment on ``api_base`` (model name "chat")."""
        deployment = {"model": self.model, "api_base": api_base, "api_key": API_KEY}
        return self.litellm.Router(
            model_list=[{"model_name": "chat", "litellm_params": deployment}]
        )


@functools.cache
def litellm_peer() -> tuple[LiteLLMPeer | None, str]:
    """The peer, or None and the reason it is skipped. Imported once (it takes seconds)."""
    os.environ.update(LITELLM_OFFLINE_ENVIRON)
    try:
        litellm = importlib.import_module("litellm")
    except Exception as exc:  # not installed, or broken by the installed openai: skip, never fail
        return None, f"litellm not importable ({type(exc).__name__}: {exc}); skipped"
    litellm.telemetry = False  # older releases ping on first use; newer ones have no telemetry
    for name in ("success_callback", "failure_callback", "callbacks"):
        setattr(litellm, name, [])  # no logging integration configured: nothing sent anywhere
    try:
        version = metadata.version("litellm")
    except metadata.PackageNotFoundError:
        version = str(getattr(litellm, "__version__", "?"))
    return LiteLLMPeer(litellm, version), f"litellm {version} (offline: bundled cost map)"
