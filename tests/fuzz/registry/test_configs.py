"""Configs a team can write by mistake, loaded and then called through every driver.

A config is validated when it loads (``guardedllm check`` runs the same validation), so the
promise is: a config either fails to load with a ``ConfigError`` listing its problems, or its
deployments can be called, where a call ends with an answer or a ``GuardedLLMError``, never
with ``UnicodeEncodeError`` from a header, ``InvalidURL`` from a base_url or ``ValueError``
from a price. Starting from ``_rig``'s valid config, hypothesis changes one to three values:
header names and values (non-ASCII, CR/LF, colons, NUL), base URLs (line breaks, ``..``, a
secret in the user part, the query or the fragment; the host stays 127.0.0.1), vendor model
ids and deployment names (``../``, slashes, spaces), prices, limits and timeouts (absurdly
large, tiny, huge integers). A secret planted in the config never appears in an error.

The config file's text is fuzzed too: a byte-order mark, CRLF line ends, invalid UTF-8, and
arrays or inline tables nested thousands deep must give a ``ConfigError`` or a registry.
"""

from __future__ import annotations

import contextlib
import copy
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from fuzz._hostile import HostileServer, respond
from fuzz._profiles import fuzz
from fuzz._rig import Rig, config_text, errors_in, open_rig
from guardedllm import Registry
from guardedllm.errors import ConfigError, GuardedLLMError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

# Not shaped like any key the checks know: only care keeps it out of messages.
PLANTED = "cfgSECRET.7c1e9a"
PROVIDERS = ("openai", "azure", "anthropic", "gemini")
MODELS = ("fuzz-openai", "fuzz-azure", "fuzz-anthropic", "fuzz-gemini")

OK_BODY = (
    b'{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}'
)

header_names = st.sampled_from(
    ["X-Team", "X-Team:", "X:Team", "X Team", "X\r\nInjected", "Équipe", "X\x00", "x" * 300]
)
header_values = st.sampled_from(
    ["search", "équipe", "🙂", "a\r\nX-Injected: 1", "a\x00b", " padded ", "\ufeffv", PLANTED]
) | st.text(max_size=8)
url_tails = st.sampled_from(
    [
        "\r\nX-Injected: 1",
        "/../../admin",
        "/%2e%2e/x",
        f"?key={PLANTED}",
        f"?token={PLANTED}",
        f"#{PLANTED}",
        " ",
        "/\x00",
        "/é",
        "/%",
        "?" + "a" * 5000,
    ]
)
ids = st.sampled_from(
    [
        "../../admin",
        "a/b",
        "a?b=c",
        "%2e%2e/x",
        "é",
        "x y",
        "\r\nx",
        "models/../../x",
        "tunedModels/../x",
    ]
)
numbers = st.sampled_from([0, 1, -1, 1e-300, 1e300, 1.7e308, 2**63, 10**30, 10**400])
PRICES = ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok")
COUNTS = ("context_window", "max_output_tokens", "rpm", "tpm")


@st.composite
def mutated_configs(draw: st.DrawFn, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (the valid config) with one to three values a person might get wrong."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        provider = data["providers"][draw(st.sampled_from(PROVIDERS))]
        names = list(data["models"])
        model = data["models"][draw(st.sampled_from(names))]
        what = draw(
            st.sampled_from(
                ["header", "base_url", "userinfo", "model_id", "name", "price", "count"]
            )
        )
        if what == "header":
            provider["headers"] = {draw(header_names): draw(header_values)}
        elif what == "base_url":
            provider["base_url"] = provider["base_url"] + draw(url_tails)
        elif what == "userinfo":  # a token as the user part, no password
            provider["base_url"] = provider["base_url"].replace("http://", f"http://{PLANTED}@")
        elif what == "model_id":
            model["model"] = draw(ids)
        elif what == "name":
            old = draw(st.sampled_from(names))
            data["models"][draw(ids)] = data["models"].pop(old)
        elif what == "price":
            model[draw(st.sampled_from(PRICES))] = draw(numbers)
        else:
            model[draw(st.sampled_from(COUNTS))] = draw(numbers)
        if draw(st.booleans()):
            data.setdefault("defaults", {})[draw(st.sampled_from(["deadline_s", "timeout_s"]))] = (
                draw(numbers)
            )
    return data


@pytest.fixture
def rig(driver: str) -> Iterator[Rig]:
    with HostileServer(respond(200, OK_BODY)) as server, open_rig(driver, server) as opened:
        yield opened


def assert_nothing_planted(error: BaseException) -> None:
    for text in errors_in(error):
        assert PLANTED not in text, f"a secret from the config is in an error: {text[:300]!r}"


def load(config: dict[str, Any]) -> Registry | None:
    """The registry for ``config``, or None when it fails to load with a ``ConfigError``
    (which must not quote the planted secret)."""
    try:
        return Registry.from_dict(config, source="fuzzed")
    except ConfigError as error:
        assert_nothing_planted(error)
        return None


@fuzz(60)
@given(data=st.data())
def test_a_config_loads_or_raises_a_config_error(data: st.DataObject) -> None:
    valid = tomllib.loads(config_text("http://127.0.0.1:9"))
    load(data.draw(mutated_configs(valid), label="config"))


@fuzz(25, shrink=False)
@given(data=st.data())
def test_the_calls_of_a_config_that_loads_end_in_guardedllm_errors(
    rig: Rig, data: st.DataObject
) -> None:
    valid = tomllib.loads(config_text(rig.server.url))
    config = data.draw(mutated_configs(valid), label="config")
    try:
        registry = load(config)
    except Exception:  # a config that crashes the loader is the test above's failure
        reject()
    if registry is None:
        return
    with rig.fresh(registry=registry) as client:
        for name in registry.models:
            called = rig.call(
                client, model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=16
            )
            if isinstance(called.result, GuardedLLMError):
                assert_nothing_planted(called.result)


@st.composite
def config_texts(draw: st.DrawFn, text: str) -> bytes:
    fault = draw(st.sampled_from(["bom", "crlf", "utf8", "nul", "deep", "deep"]))
    raw = text.encode()
    if fault == "bom":
        return b"\xef\xbb\xbf" + raw
    if fault == "crlf":
        return raw.replace(b"\n", b"\r\n")
    if fault == "utf8":
        return raw.replace(b'"search"', b'"s\xff"') + b"\n# caf\xc3\n"
    if fault == "nul":
        return raw + b'\nx = "\x00"\n'
    depth = draw(st.sampled_from([100, 1_000, 5_000, 50_000]))
    nested = draw(st.sampled_from(["[" * depth + "]" * depth, "{a = " * depth + "1" + "}" * depth]))
    return raw + f"\nnested = {nested}\n".encode()


@fuzz(20)
@given(data=st.data())
def test_a_config_file_loads_or_raises_a_config_error(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "guardedllm.toml"
    path.write_bytes(data.draw(config_texts(config_text("http://127.0.0.1:9")), label="file"))
    with contextlib.suppress(ConfigError):
        Registry.from_toml(path)
