"""Property: an API key written into a config never reaches a repr or an error message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardedllm.errors import ConfigError
from guardedllm.registry import Registry

from ._configs import valid_data

_alnum = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=24)
api_keys = st.one_of(
    st.builds(lambda body: f"sk-{body}", _alnum),
    st.builds(lambda body: f"sk-ant-api03-{body}", _alnum),
    st.builds(lambda body: f"sk-proj-{body}", _alnum),
    st.builds(lambda body: f"AIza{body}", _alnum),
)


def _place(data: dict[str, Any], where: str, key: str) -> None:
    local = data["providers"]["local"]
    if where == "api_key_env":
        local["api_key_env"] = key
    elif where == "header":
        local["headers"] = {"X-Api-Key": key}
    elif where == "bearer":
        local["headers"] = {"Proxy-Authorization": f"Bearer {key}"}
    elif where == "url":
        local["base_url"] = f"https://gateway.example/v1?key={key}"
    elif where == "unknown_key":
        local["api_key"] = key
    elif where == "wrong_type":
        local["api_key_env"] = [key]
    elif where == "alias":
        data["aliases"]["chat"] = key


@given(
    key=api_keys,
    where=st.sampled_from(
        ["api_key_env", "header", "bearer", "url", "unknown_key", "wrong_type", "alias"]
    ),
)
def test_key_in_config_never_echoed(key: str, where: str) -> None:
    data = valid_data()
    _place(data, where, key)
    with pytest.raises(ConfigError) as exc:
        Registry.from_dict(data)
    assert exc.value.problems, "a key in the config must be a problem"
    for text in (str(exc.value), repr(exc.value), repr(exc.value.problems)):
        assert key not in text


@given(key=api_keys)
def test_key_read_from_the_environment_never_in_a_repr(key: str) -> None:
    registry = Registry.from_dict(valid_data(), env="prod")
    provider = registry.providers["openai"]
    assert provider.api_key({"OPENAI_API_KEY": key}) == key
    for text in (repr(registry), repr(provider), repr(registry.resolve("support"))):
        assert key not in text
        assert "OPENAI_API_KEY" in text or text.startswith("Resolution")
