"""Reading traffic logs: the three formats told apart per line, skipped lines counted with the
first reasons kept, and a newer record format refused."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from guardedllm import defaults
from guardedllm.errors import TrafficError
from guardedllm.release import CallRecord, ShadowRecord, TrafficReader

from .traffic import HELLO, HELLO_TOKENS, body, call, write_lines


def requests_of(path: str) -> tuple[list, TrafficReader]:
    reader = TrafficReader([path])
    return [request for _, request in reader.requests()], reader


def test_a_request_body_per_line_with_unix_or_iso_timestamps(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "bodies.jsonl",
        [
            body(timestamp=1764896400, max_tokens=100),
            body(timestamp="2025-12-05T01:00:30Z", max_completion_tokens=50),
            body(timestamp="2025-12-05T01:01:00"),  # no zone: read as UTC
            body(tools=[{"type": "function", "function": {"name": "f"}}]),
        ],
    )
    found, reader = requests_of(path)
    assert reader.skips.count == 0
    assert [r.time for r in found] == [
        1764896400.0,
        datetime(2025, 12, 5, 1, 0, 30, tzinfo=timezone.utc).timestamp(),
        datetime(2025, 12, 5, 1, 1, tzinfo=timezone.utc).timestamp(),
        None,
    ]
    assert [r.max_tokens for r in found] == [100, 50, None, None]
    assert found[0].messages == HELLO
    assert found[0].name == "mini"
    assert found[3].tools == [{"type": "function", "function": {"name": "f"}}]


def test_batch_api_input_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "batch.jsonl",
        [
            {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": body()},
            {"custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}},
        ],
    )
    found, reader = requests_of(path)
    assert len(found) == 1
    assert found[0].messages == HELLO
    assert found[0].time is None
    assert reader.skips.count == 1
    assert "/v1/embeddings, not a chat completion" in reader.skips.reasons[0]


def test_recorder_lines_with_and_without_a_body(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "recorded.jsonl",
        [
            call(),  # no body: the recorded counts
            call(body=body(max_tokens=77), deployment="haiku"),
            call(shadow_of="5f0c2a9e8b7d4c1a"),  # a shadow copy repeats its primary: passed over
            {"v": 1, "kind": "shadow", "time": 1.0, "id": "x", "same_content": True},
        ],
    )
    found, reader = requests_of(path)
    assert reader.skips.count == 0
    assert len(found) == 2
    counted, rebuilt = found
    assert counted.messages is None
    assert counted.recorded_tokens == {"o200k_base": HELLO_TOKENS}
    assert counted.recorded_exact == {"o200k_base": True}
    assert counted.max_tokens == 100
    assert counted.time == 1764896523.456
    assert (counted.deployment, counted.vendor_input_tokens, counted.output_tokens) == (
        "mini",
        9,
        20,
    )
    assert counted.name == "chat"
    assert rebuilt.messages == HELLO
    assert rebuilt.max_tokens == 77
    assert rebuilt.deployment == "haiku"


def test_bad_lines_are_skipped_and_counted_with_the_first_reasons(tmp_path: Path) -> None:
    bad = [
        "not json",
        "[1, 2]",
        '{"hello": "world"}',
        body(messages="hi"),  # type: ignore[arg-type]
        body(max_tokens=0),
        body(timestamp="yesterday"),
        call(request={"messages": 1}),  # no body, no counts
        {"v": 1, "kind": "nonsense"},
    ]
    path = write_lines(tmp_path / "mixed.jsonl", [body(), *bad, "", body()])
    found, reader = requests_of(path)
    assert len(found) == 2
    assert reader.skips.count == len(bad)  # the blank line is not a line of traffic
    assert len(reader.skips.reasons) == defaults.TRAFFIC_SKIP_REASONS_KEPT
    assert reader.skips.reasons[0].startswith(f"{path}:2: not JSON")
    assert reader.skips.reasons[1] == f"{path}:3: a JSON list, not an object"
    assert 'no "messages"' in reader.skips.reasons[2]
    assert '"messages" is not a list' in reader.skips.reasons[3]
    assert "max_tokens 0 is not a positive whole number" in reader.skips.reasons[4]


def test_a_newer_record_format_is_refused(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "new.jsonl", [call(), {**call(), "v": 2}])
    with pytest.raises(TrafficError, match=r"new.jsonl:2: traffic record format v2 .* newer"):
        requests_of(path)
    with pytest.raises(TrafficError, match="Upgrade guardedllm"):
        list(TrafficReader([path]).records())


def test_a_missing_file_or_a_directory_is_refused_before_reading(tmp_path: Path) -> None:
    good = write_lines(tmp_path / "good.jsonl", [body()])
    with pytest.raises(TrafficError, match=r"cannot read traffic file .*missing.jsonl"):
        TrafficReader([good, str(tmp_path / "missing.jsonl")])
    with pytest.raises(TrafficError, match="is a directory"):
        TrafficReader([str(tmp_path)])
    with pytest.raises(TrafficError, match="no traffic files"):
        TrafficReader([])


def test_files_are_read_in_order_and_progress_counts_every_byte(tmp_path: Path) -> None:
    first = write_lines(tmp_path / "a.jsonl", [body(timestamp=i) for i in range(300)])
    second = write_lines(tmp_path / "b.jsonl", [body(timestamp=1000 + i) for i in range(10)])
    seen: list[int] = []
    reader = TrafficReader([first, second], on_progress=seen.append)
    times = [request.time for _, request in reader.requests()]
    assert times == [float(i) for i in range(300)] + [1000.0 + i for i in range(10)]
    assert sum(seen) == reader.total_bytes


def test_records_for_compare(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "records.jsonl",
        [
            call(split="trial", arm="candidate", outcome={"first_chunk_s": 0.25}),
            call(status="error", cost_usd=None, outcome={"fallbacks": 1, "escalated": True}),
            {
                "v": 1,
                "kind": "shadow",
                "time": 2.0,
                "id": "5f0c2a9e8b7d4c1a",
                "route": "support",
                "candidate": "haiku",
                "primary": {"deployment": "mini", "ok": True, "latency_s": 1.1},
                "copy": {"ok": True, "latency_s": 1.4},
                "same_content": False,
            },
            body(),  # not a recorded outcome
        ],
    )
    reader = TrafficReader([path])
    records = list(reader.records())
    assert reader.skips.count == 1
    assert 'no "v"' in reader.skips.reasons[0]
    first, failed, shadow = records
    assert isinstance(first, CallRecord)
    assert (first.split, first.arm, first.first_chunk_s, first.finish_reason) == (
        "trial",
        "candidate",
        0.25,
        "stop",
    )
    assert isinstance(failed, CallRecord)
    assert (failed.status, failed.error_type, failed.fallbacks, failed.escalated) == (
        "error",
        "ServerError",
        1,
        True,
    )
    assert failed.cost_usd is None
    assert shadow == ShadowRecord(primary="mini", candidate="haiku", same_content=False)
