"""The ``[record]`` table: where the traffic recorder writes, which calls it keeps, and how much
of each (as a ``RecordConfig``).

Only the settings live here, checked as every other table is; the recorder itself
(``guardedllm.record``: the record builder and the writer thread) loads with a client that
records, so ``import guardedllm`` and ``guardedllm check`` stay light.
"""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

import attrs

from guardedllm import defaults
from guardedllm.errors import ArgumentError
from guardedllm.registry._check import Field, Problems, Table, did_you_mean, read_fields

__all__ = ["CONTENT", "RecordConfig", "read_record"]

Content = Literal["none", "full"]
CONTENT: Final = get_args(Content)


def _check_path(_: object, __: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError(
            "RecordConfig.path must be the directory to write records in, like "
            '"/var/log/guardedllm"; got ' + repr(value)
        )


def _check_sample(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ArgumentError(
            f"RecordConfig.sample must be the share of calls recorded, from 0 to 1 (0.1 records "
            f"one call in ten); got {value!r}"
        )


def _check_size(_: object, __: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ArgumentError(
            f"RecordConfig.max_file_mb must be > 0 (MB a file reaches before the next one "
            f"begins); got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RecordConfig:
    """A ``[record]`` table: record each call as one JSON line (docs/record-format.md).

    ``path`` is the directory the files go in (made when the first record is written; a
    relative path is taken from the working directory then). ``sample`` is the share of calls
    recorded, sticky by the call's routing key (``Policy.route_key``, else the request's
    ``user``), so a user's calls are all in or all out; calls without a key are drawn at
    random. ``content="none"`` keeps token counts and the request's shape only; ``"full"``
    adds the request body (messages, tools, parameters), which holds user data. A file is
    closed and the next begun past ``max_file_mb``. Never a header or an API key, whatever
    ``content`` says.
    """

    path: str = attrs.field(validator=_check_path)
    sample: float = attrs.field(default=1.0, converter=float, validator=_check_sample)
    content: Content = attrs.field(default="none", validator=attrs.validators.in_(CONTENT))
    max_file_mb: float = attrs.field(
        default=defaults.RECORD_MAX_FILE_MB, converter=float, validator=_check_size
    )


RECORD_FIELDS = {
    "path": Field(
        type="str",
        required=True,
        hint='add path = "/var/log/guardedllm", the directory records are written in',
    ),
    "sample": Field(type="number"),
    "content": Field(type="str"),
    "max_file_mb": Field(type="number"),
}


def read_record(table: Table, problems: Problems) -> RecordConfig | None:
    """A ``[record]`` table, every problem reported under its key."""
    mine = Problems()
    read = read_fields(table, RECORD_FIELDS, "[record] table", mine)
    sample = read.get("sample")
    if sample is not None and not 0 <= sample <= 1:
        mine.add(
            table.key_of("sample"),
            f"must be from 0 to 1, got {sample:g}: the share of calls recorded (0.1 records one "
            "call in ten, sticky by the call's routing key)",
        )
    content = read.get("content")
    if content is not None and content not in CONTENT:
        mine.add(
            table.key_of("content"),
            f'unknown content{did_you_mean(content, CONTENT)}: use "none" (token counts '
            'and shapes only) or "full" (the messages too)',
        )
    size = read.get("max_file_mb")
    if size is not None and not size > 0:
        mine.add(
            table.key_of("max_file_mb"),
            f"must be > 0, got {size:g}: the MB a record file reaches before the next one begins",
        )
    problems.extend(mine)
    if mine:
        return None
    return RecordConfig(**read)
