"""``[record]``: read into a ``RecordConfig``, every rule reported under its key, all at once,
in the base and in each environment's overlay; the value class refuses the same in code."""

from __future__ import annotations

from typing import Any

import pytest

from guardedllm import defaults
from guardedllm.errors import ConfigError
from guardedllm.registry import RecordConfig, Registry

from ._configs import load_problems

RECORD = {"path": "/var/log/guardedllm"}


def test_record_is_read_into_a_record_config(data: dict[str, Any]) -> None:
    data["record"] = {**RECORD, "sample": 0.25, "content": "full", "max_file_mb": 8}
    assert Registry.from_dict(data).record == RecordConfig(
        path="/var/log/guardedllm", sample=0.25, content="full", max_file_mb=8.0
    )


def test_record_defaults(data: dict[str, Any]) -> None:
    data["record"] = RECORD
    record = Registry.from_dict(data).record
    assert record is not None
    assert (record.sample, record.content) == (1.0, "none")
    assert record.max_file_mb == defaults.RECORD_MAX_FILE_MB
    assert Registry.from_dict({}).record is None


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("sample", 1.5, "must be from 0 to 1, got 1.5: the share of calls recorded"),
        ("sample", -0.1, "must be from 0 to 1"),
        ("sample", "all", "must be a number, got a string"),
        ("content", "ful", "unknown content (did you mean 'full'?)"),
        ("content", "messages", 'use "none" (token counts and shapes only) or "full"'),
        ("max_file_mb", 0, "must be > 0, got 0: the MB a record file reaches"),
        ("max_file_mb", float("inf"), "must be a finite number"),
        ("path", "", "must not be empty"),
        ("path", 3, "must be a string"),
        ("smaple", 0.5, "unknown key (did you mean 'sample'?)"),
    ],
)
def test_each_record_rule_is_reported_under_its_key(
    data: dict[str, Any], field: str, value: Any, says: str
) -> None:
    data["record"] = {**RECORD, field: value}
    problems = load_problems(data)
    assert list(problems) == [f"record.{field}"], problems
    assert says in problems[f"record.{field}"][0]


def test_record_needs_a_path_and_says_how_to_give_it(data: dict[str, Any]) -> None:
    data["record"] = {"sample": 0.5}
    problems = load_problems(data)
    assert list(problems) == ["record.path"]
    assert 'add path = "/var/log/guardedllm"' in problems["record.path"][0]


def test_every_record_problem_is_reported_at_once(data: dict[str, Any]) -> None:
    data["record"] = {"sample": 2, "content": "some", "max_file_mb": -1}
    assert sorted(load_problems(data)) == [
        "record.content",
        "record.max_file_mb",
        "record.path",
        "record.sample",
    ]


def test_an_environment_records_where_the_base_does_not(data: dict[str, Any]) -> None:
    data["env"]["prod"]["record"] = {**RECORD, "sample": 0.1}
    record = Registry.from_dict(data, env="prod").record
    assert record is not None
    assert record.sample == 0.1
    assert Registry.from_dict(data, env="staging").record is None


def test_an_environment_changes_fields_of_the_base_record(data: dict[str, Any]) -> None:
    data["record"] = RECORD
    data["env"]["staging"]["record"] = {"content": "full"}
    staging = Registry.from_dict(data, env="staging").record
    assert staging == RecordConfig(path=RECORD["path"], content="full")
    assert Registry.from_dict(data, env="prod").record == RecordConfig(path=RECORD["path"])


def test_an_environment_record_problem_is_under_the_environment_key(data: dict[str, Any]) -> None:
    data["record"] = RECORD
    data["env"]["prod"]["record"] = {"sample": 3}
    problems = load_problems(data)
    assert list(problems) == ["env.prod.record.sample"], problems


def test_record_must_be_a_table(data: dict[str, Any]) -> None:
    data["record"] = "/var/log"
    with pytest.raises(ConfigError) as caught:
        Registry.from_dict(data)
    assert [p.key for p in caught.value.problems] == ["record"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"path": ""}, "RecordConfig.path must be the directory"),
        ({"path": "r", "sample": 1.01}, "RecordConfig.sample must be the share of calls"),
        ({"path": "r", "sample": float("nan")}, "RecordConfig.sample"),
        ({"path": "r", "max_file_mb": 0}, "RecordConfig.max_file_mb must be > 0"),
        ({"path": "r", "content": "all"}, "'content' must be in"),
    ],
)
def test_record_config_in_code_refuses_what_the_table_refuses(
    fields: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValueError, match=says.replace("(", r"\(")):
        RecordConfig(**fields)
