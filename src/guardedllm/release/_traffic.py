"""Reading traffic logs one line at a time: what ``simulate`` replays and ``compare`` measures.

A log is never loaded whole: files are read line by line in binary (the byte count drives the
progress bar) and each line becomes one small value that the caller folds into its statistics
and drops. Three formats are told apart per line, so one run may mix them:

- a recorder line (has ``"v"``; see docs/cli.md, "The traffic record format"): ``"kind":
  "call"`` is one call, ``"kind": "shadow"`` a shadow pair;
- an OpenAI chat-completion request body (has ``"messages"``), with an optional
  ``"timestamp"`` (Unix seconds or ISO 8601);
- an OpenAI Batch API input line (``{"custom_id", "method", "url", "body"}``).

A line that is none of these, or not JSON, is skipped and counted, with the first few reasons
kept for the report. A recorder line of a format version above the one this module knows is an
error (``TrafficError``): it was written by a newer guardedllm and would be misread.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

import attrs

from guardedllm import defaults
from guardedllm.errors import TrafficError

__all__ = [
    "CallRecord",
    "Piece",
    "ShadowRecord",
    "Skips",
    "TrafficReader",
    "TrafficRequest",
    "split_file",
]

_EMPTY: Final[Mapping[str, Any]] = {}


class _Skip(Exception):
    """A line that is not usable traffic; its message is the reason kept for the report."""


@attrs.define
class Skips:
    """Lines skipped: how many, and the first few with where and why."""

    count: int = 0
    reasons: list[str] = attrs.field(factory=list)

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < defaults.TRAFFIC_SKIP_REASONS_KEPT:
            self.reasons.append(f"{where}: {reason}")

    def extend(self, other: Skips) -> None:
        """Add the skips of a later part of the traffic."""
        self.count += other.count
        room = defaults.TRAFFIC_SKIP_REASONS_KEPT - len(self.reasons)
        self.reasons.extend(other.reasons[: max(0, room)])


@attrs.frozen(kw_only=True)
class TrafficRequest:
    """One request to replay. ``messages`` (and ``tools``) are the body when the log has it;
    otherwise ``recorded_tokens`` holds the recorder's input counts per tokenizer name (exact
    per ``recorded_exact``). ``name`` is the model, alias or route the caller named.

    From a recorder line also: the ``deployment`` that answered, the vendor's
    ``vendor_input_tokens`` (what calibration learns from) and ``output_tokens``.
    """

    time: float | None = None
    name: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    max_tokens: int | None = None
    recorded_tokens: Mapping[str, int] = _EMPTY
    recorded_exact: Mapping[str, bool] = _EMPTY
    deployment: str | None = None
    vendor_input_tokens: int | None = None
    output_tokens: int | None = None


@attrs.frozen(kw_only=True)
class CallRecord:
    """The outcome of one recorded call (a recorder ``"kind": "call"`` line)."""

    time: float | None
    split: str | None
    arm: str | None
    deployment: str | None
    vendor_model: str | None
    shadow_of: str | None
    status: str
    error_type: str | None
    fallbacks: int
    escalated: bool
    latency_s: float | None
    first_chunk_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    finish_reason: str | None


@attrs.frozen(kw_only=True)
class ShadowRecord:
    """A shadow pair (a recorder ``"kind": "shadow"`` line): whether the copy agreed."""

    primary: str | None
    candidate: str | None
    same_content: bool | None


@attrs.frozen
class Piece:
    """Part of a traffic file: the lines from byte ``start`` (a line's first byte, line number
    ``first_line``) up to byte ``end`` (None: the end of the file)."""

    path: str
    start: int = 0
    end: int | None = None
    first_line: int = 1


_SCAN_BYTES: Final = 4 * 1024 * 1024


def split_file(path: str, parts: int) -> list[Piece]:
    """``path`` cut into about ``parts`` pieces of equal size at line boundaries, each with its
    first line's number (newlines are counted on the way: bytes.count reads gigabytes a second)."""
    size = os.stat(path).st_size
    pieces: list[Piece] = []
    start, first_line, position, lines = 0, 1, 0, 0
    with open(path, "rb") as file:
        for index in range(1, parts):
            target = size * index // parts
            if target <= start:
                continue
            while position < target:  # count the newlines before the target
                block = file.read(min(_SCAN_BYTES, target - position))
                if not block:
                    break
                lines += block.count(b"\n")
                position += len(block)
            rest = file.readline()  # finish the line the target fell in
            position += len(rest)
            lines += rest.endswith(b"\n")
            if position >= size:
                break  # the rest of the file is the last piece's
            pieces.append(Piece(path, start, position, first_line))
            start, first_line = position, lines + 1
    pieces.append(Piece(path, start, None, first_line))
    return pieces


class TrafficReader:
    """The lines of ``paths`` (or of ``pieces`` of them), in order, parsed; ``skips`` counts
    what was not usable.

    Every path is checked for readability up front, so a typo fails before minutes of work.
    ``on_progress`` is called with the bytes read since its last call (per a few hundred
    lines), against ``total_bytes``.
    """

    def __init__(
        self,
        paths: Sequence[str],
        *,
        on_progress: Callable[[int], None] | None = None,
        pieces: Sequence[Piece] | None = None,
    ) -> None:
        if not paths:
            raise TrafficError("no traffic files given: pass --traffic FILE (repeatable).")
        sizes = []
        for path in paths:
            try:
                sizes.append(os.stat(path).st_size)
            except OSError as exc:
                raise TrafficError(
                    f"cannot read traffic file {path}: {exc.strerror or exc}. Check the path."
                ) from None
            if os.path.isdir(path):
                raise TrafficError(
                    f"traffic file {path} is a directory: pass its files (e.g. {path}/*.jsonl)."
                )
        self.paths = tuple(paths)
        self.pieces = tuple(pieces) if pieces is not None else tuple(map(Piece, paths))
        self.total_bytes = sum(sizes)
        self.skips = Skips()
        self.on_progress = on_progress

    def _objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each line that is a JSON object, with where it is (``path:line``)."""
        report = self.on_progress
        for path, start, end, first_line in map(attrs.astuple, self.pieces):
            done = 0
            left = math.inf if end is None else end - start
            try:
                with open(path, "rb") as file:
                    file.seek(start)
                    for number, line in enumerate(file, first_line):
                        if left <= 0:
                            break
                        left -= len(line)
                        done += len(line)
                        if report is not None and number % 256 == 0:
                            report(done)
                            done = 0
                        if not line.strip():
                            continue
                        where = f"{path}:{number}"
                        try:
                            value = json.loads(line)
                        except ValueError as exc:
                            self.skips.add(where, f"not JSON ({exc})")
                            continue
                        if not isinstance(value, dict):
                            self.skips.add(where, f"a JSON {type(value).__name__}, not an object")
                            continue
                        yield where, value
            except OSError as exc:
                raise TrafficError(
                    f"cannot read traffic file {path}: {exc.strerror or exc}."
                ) from None
            if report is not None and done:
                report(done)

    def requests(self) -> Iterator[tuple[str, TrafficRequest]]:
        """The requests of every format, for ``simulate``. Shadow copies and shadow pairs are
        passed over (they repeat a request already in the log), not counted as skipped."""
        for where, value in self._objects():
            try:
                request = _request_of(value, where)
            except _Skip as skip:
                self.skips.add(where, str(skip))
                continue
            if request is not None:
                yield where, request

    def records(self) -> Iterator[CallRecord | ShadowRecord]:
        """The recorder's call and shadow lines, for ``compare``; any other line is skipped."""
        for where, value in self._objects():
            try:
                if "v" not in value:
                    raise _Skip('not a recorder line (no "v"): compare reads recorded outcomes')
                _check_version(value, where)
                kind = value.get("kind")
                if kind == "call":
                    yield _call_of(value)
                elif kind == "shadow":
                    yield _shadow_of(value)
                else:
                    raise _Skip(f"unknown kind {kind!r}")
            except _Skip as skip:
                self.skips.add(where, str(skip))


def _check_version(value: Mapping[str, Any], where: str) -> None:
    version = value["v"]
    if type(version) is not int:
        raise _Skip(f'"v" is {version!r}, not a format version number')
    if version > defaults.TRAFFIC_FORMAT_VERSION:
        raise TrafficError(
            f"{where}: traffic record format v{version} was written by a newer guardedllm; this "
            f"one reads up to v{defaults.TRAFFIC_FORMAT_VERSION}. Upgrade guardedllm "
            "(pip install -U guardedllm) to read it."
        )


def _request_of(value: Mapping[str, Any], where: str) -> TrafficRequest | None:
    if "v" in value:
        return _recorded_request(value, where)
    if "messages" in value:
        return _body_request(value, timestamp=_timestamp(value.get("timestamp")))
    if "custom_id" in value and "body" in value:
        url = value.get("url")
        if isinstance(url, str) and not url.rstrip("/").endswith("/chat/completions"):
            raise _Skip(f"a batch line for {url}, not a chat completion")
        body = value["body"]
        if not isinstance(body, dict) or "messages" not in body:
            raise _Skip('a batch line whose "body" has no "messages"')
        return _body_request(body, timestamp=None)
    raise _Skip('not a request: no "messages", no batch "body", no recorder "v"')


def _recorded_request(value: Mapping[str, Any], where: str) -> TrafficRequest | None:
    _check_version(value, where)
    kind = value.get("kind")
    if kind == "shadow" or (kind == "call" and value.get("shadow_of") is not None):
        return None
    if kind != "call":
        raise _Skip(f"unknown kind {kind!r}")
    outcome = _mapping(value.get("outcome"), "outcome")
    recorded = TrafficRequest(
        time=_optional_number(value.get("time"), "time"),
        name=_optional_str(value.get("requested") or value.get("route"), "route"),
        deployment=_optional_str(value.get("deployment"), "deployment"),
        vendor_input_tokens=_optional_count(outcome.get("input_tokens"), "input_tokens"),
        output_tokens=_optional_count(outcome.get("output_tokens"), "output_tokens"),
    )
    body = value.get("body")
    if isinstance(body, dict) and "messages" in body:
        parsed = _body_request(body, timestamp=None)
        return attrs.evolve(
            recorded,
            name=recorded.name or parsed.name,
            messages=parsed.messages,
            tools=parsed.tools,
            max_tokens=parsed.max_tokens,
        )
    request = _mapping(value.get("request"), "request")
    tokens = _mapping(request.get("tokens"), "request.tokens")
    counts = {name: count for name, count in tokens.items() if _is_count(count)}
    if not counts:
        raise _Skip("a recorded call with neither a body nor input token counts")
    exact = _mapping(request.get("exact"), "request.exact")
    return attrs.evolve(
        recorded,
        max_tokens=_max_tokens(request.get("max_tokens")),
        recorded_tokens=counts,
        recorded_exact={name: exact.get(name) is True for name in counts},
    )


def _body_request(body: Mapping[str, Any], *, timestamp: float | None) -> TrafficRequest:
    messages = body["messages"]
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _Skip('"messages" is not a list of message objects')
    tools = body.get("tools")
    if tools is not None and (
        not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)
    ):
        raise _Skip('"tools" is not a list of tool objects')
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    model = body.get("model")
    return TrafficRequest(
        time=timestamp,
        name=model if isinstance(model, str) else None,
        messages=messages,
        tools=tools or None,
        max_tokens=_max_tokens(limit),
    )


def _timestamp(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00", 1))
        except ValueError:
            raise _Skip(f"timestamp {value!r} is neither Unix seconds nor ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)  # a log without a zone is read as UTC
        return moment.timestamp()
    return _optional_number(value, "timestamp")


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _Skip(f"max_tokens {value!r} is not a positive whole number")
    return value


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if value is None:
        return _EMPTY
    if not isinstance(value, dict):
        raise _Skip(f'"{field}" is a {type(value).__name__}, not an object')
    return value


def _optional_number(value: object, field: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value):  # type: ignore[arg-type]
        raise _Skip(f'"{field}" is {value!r}, not a number')
    return float(value)  # type: ignore[arg-type]


def _optional_count(value: object, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Skip(f'"{field}" is {value!r}, not a token count')
    return value


def _optional_str(value: object, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _Skip(f'"{field}" is {value!r}, not a string')


def _call_of(value: Mapping[str, Any]) -> CallRecord:
    outcome = _mapping(value.get("outcome"), "outcome")
    status = outcome.get("status")
    if status not in ("ok", "error", "abandoned"):
        raise _Skip(f'outcome "status" is {status!r}, not "ok", "error" or "abandoned"')
    fallbacks = outcome.get("fallbacks") or 0
    if not _is_count(fallbacks):
        raise _Skip(f'"fallbacks" is {fallbacks!r}, not a count')
    reason = outcome.get("finish_reason")
    return CallRecord(
        time=_optional_number(value.get("time"), "time"),
        split=_optional_str(value.get("split"), "split"),
        arm=_optional_str(value.get("arm"), "arm"),
        deployment=_optional_str(value.get("deployment"), "deployment"),
        vendor_model=_optional_str(value.get("vendor_model"), "vendor_model"),
        shadow_of=_optional_str(value.get("shadow_of"), "shadow_of"),
        status=status,
        error_type=_optional_str(outcome.get("error_type"), "error_type"),
        fallbacks=fallbacks,
        escalated=outcome.get("escalated") is True,
        latency_s=_optional_number(outcome.get("latency_s"), "latency_s"),
        first_chunk_s=_optional_number(outcome.get("first_chunk_s"), "first_chunk_s"),
        input_tokens=_optional_count(outcome.get("input_tokens"), "input_tokens"),
        output_tokens=_optional_count(outcome.get("output_tokens"), "output_tokens"),
        cost_usd=_optional_number(outcome.get("cost_usd"), "cost_usd"),
        finish_reason=_optional_str(reason, "finish_reason"),
    )


def _shadow_of(value: Mapping[str, Any]) -> ShadowRecord:
    primary = _mapping(value.get("primary"), "primary")
    same = value.get("same_content")
    return ShadowRecord(
        primary=_optional_str(primary.get("deployment"), "primary.deployment"),
        candidate=_optional_str(value.get("candidate"), "candidate"),
        same_content=same if isinstance(same, bool) else None,
    )
