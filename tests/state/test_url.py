"""The rules for a store's URL (``guardedllm.state._url``), shared by the config loader and
``RedisBackend.from_url``: pure, so that ``guardedllm check`` needs no redis-py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from guardedllm.errors import ConfigError
from guardedllm.state import RedisBackend
from guardedllm.state._url import url_problems


@pytest.mark.parametrize(
    "url",
    [
        "redis://redis.internal:6379/0",
        "redis://redis.internal",
        "rediss://app@redis.internal:6380/15",
        "REDIS://redis.internal:6379/",
        "redis://redis.internal:6379?db=3",
        "unix:///run/redis/redis.sock?db=1",
    ],
)
def test_a_good_url_has_no_problems(url: str) -> None:
    assert url_problems(url) == []


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://redis.internal:6379/0", ["must start with redis://, rediss:// or unix://"]),
        ("redis:redis.internal", ["must start with redis://, rediss:// or unix://"]),
        ("redis://redis.internal:port/0", ["is not a valid URL"]),
        ("redis://:secret-pw@redis.internal/0", ["holds a password"]),
        ("redis://h/0?password=secret-pw", ["holds a password"]),
        ("redis://redis.internal:6379/zero", ["names a database that is no number"]),
        ("rediss://redis.internal:6379?db=x", ["names a database that is no number"]),
        ("unix://", ["names no socket"]),
        ("ftp://:secret-pw@h/x", ["must start with", "holds a password"]),
    ],
)
def test_each_problem_of_a_url(url: str, says: list[str]) -> None:
    problems = url_problems(url)
    assert len(problems) == len(says)
    for problem, expected in zip(problems, says, strict=True):
        assert expected in problem
        assert "secret-pw" not in problem


def test_from_url_refuses_a_database_that_is_no_number() -> None:
    # redis-py reads the path "zero" as database 0 without a word.
    with pytest.raises(ConfigError) as caught:
        RedisBackend.from_url("redis://127.0.0.1:6379/zero")
    assert [p.key for p in caught.value.problems] == ["state.url"]
    assert "names a database that is no number" in str(caught.value)


def test_the_url_rules_do_not_import_redis() -> None:
    code = (
        "import sys\n"
        "from guardedllm.state._url import url_problems\n"
        "url_problems('redis://h:6379/0')\n"
        "assert 'redis' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
