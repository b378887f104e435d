"""Records written through real calls against FakeProvider, through every driver: an answer, a
failure, a stream read to its end and one left early, a fallback, a split's arm and a shadow
pair, each as docs/record-format.md says."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from guardedllm import AsyncClient, Client, Policy, Registry
from guardedllm.errors import BadRequestError
from guardedllm.registry import RecordConfig
from guardedllm.testing import FakeProvider
from guardedllm.types import ChatCompletion
from session import open_session
from support import DRIVERS, ENVIRON, config_text

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
]
OPENAI_ID = "gpt-4o-mini-2024-07-18"

ROUTES = """
[routes.trial]
split = { "gpt-4o-mini" = 1, "claude-haiku" = 1 }

[routes.watched]
fallback = ["gpt-4o-mini"]
shadow = { deployment = "gemini-flash", sample = 1.0 }
"""


@pytest.fixture
def registry(fake_provider: FakeProvider) -> Registry:
    return Registry.from_toml_text(config_text(fake_provider) + ROUTES, source="test-config")


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every record in ``directory``'s files, in the order written."""
    records: list[dict[str, Any]] = []
    for path in sorted(directory.glob("guardedllm-*.jsonl"), key=lambda p: p.stat().st_mtime_ns):
        with path.open(encoding="utf-8") as file:
            records.extend(json.loads(line) for line in file)
    return records


def recorded(
    driver: str, registry: Registry, tmp_path: Path, *calls: dict[str, Any], **config: Any
) -> list[dict[str, Any]]:
    """Make ``calls`` on one client of ``driver`` recording to ``tmp_path`` (errors are
    expected and ignored: they are recorded too); the records once the client has closed."""
    record = RecordConfig(path=str(tmp_path), **config)
    with open_session(driver, registry, record=record) as session:
        for kwargs in calls:
            session.outcome(**kwargs)
    return read_records(tmp_path)


@pytest.mark.parametrize("driver", DRIVERS)
def test_an_answer_is_recorded_with_its_shape_outcome_and_cost(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(
        model=OPENAI_ID, content="Paris.", usage={"prompt_tokens": 25, "completion_tokens": 3}
    )
    started = time.time()
    (record,) = recorded(
        driver,
        registry,
        tmp_path,
        {
            "model": "chat",
            "messages": MESSAGES,
            "max_tokens": 50,
            "temperature": 0.2,
            "response_format": {"type": "json_object"},
        },
    )
    assert record["v"] == 1
    assert record["kind"] == "call"
    assert len(record["id"]) == 16
    assert int(record["id"], 16) >= 0
    assert started - 1 <= record["time"] <= time.time()
    assert (record["env"], record["requested"], record["route"]) == (None, "chat", "gpt-4o-mini")
    assert (record["split"], record["arm"], record["shadow_of"]) == (None, None, None)
    assert (record["deployment"], record["vendor_model"]) == ("gpt-4o-mini", OPENAI_ID)
    request = record["request"]
    assert request["messages"] == 2
    assert request["tools"] == 0
    assert request["max_tokens"] == 50
    assert request["stream"] is False
    assert request["params"] == {"temperature": 0.2, "response_format": "json_object"}
    assert list(request["tokens"]) == ["o200k_base"]
    assert request["tokens"]["o200k_base"] > 10
    assert request["exact"] == {"o200k_base": True}
    assert record["body"] is None
    outcome = record["outcome"]
    assert outcome["status"] == "ok"
    assert outcome["error_type"] is None
    assert (outcome["attempts"], outcome["retries"], outcome["fallbacks"]) == (1, 0, 0)
    assert outcome["escalated"] is False
    assert 0 < outcome["latency_s"] < 10
    assert outcome["first_chunk_s"] is None
    assert (outcome["input_tokens"], outcome["output_tokens"]) == (25, 3)
    assert outcome["cost_usd"] == pytest.approx((25 * 0.15 + 3 * 0.60) / 1e6)
    assert outcome["finish_reason"] == "stop"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_failure_is_recorded_with_its_error_type_and_no_deployment(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=400)
    (failed, unknown) = recorded(
        driver,
        registry,
        tmp_path,
        {"model": "chat", "messages": MESSAGES},
        {"model": "no-such-model", "messages": MESSAGES},
    )
    assert failed["outcome"]["status"] == "error"
    assert failed["outcome"]["error_type"] == BadRequestError.__name__
    assert failed["outcome"]["attempts"] == 1
    assert (failed["deployment"], failed["vendor_model"]) == (None, None)
    assert failed["outcome"]["input_tokens"] is None
    assert failed["outcome"]["cost_usd"] is None
    assert failed["request"]["tokens"]["o200k_base"] > 0  # the plan counted it
    # A name no route knows fails before any plan: recorded all the same.
    assert unknown["outcome"]["error_type"] == "ModelNotFoundError"
    assert (unknown["route"], unknown["outcome"]["attempts"], unknown["request"]["tokens"]) == (
        None,
        0,
        {},
    )


@pytest.mark.parametrize("driver", DRIVERS)
def test_retries_and_a_fallback_are_counted(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, status=503)
    (record,) = recorded(driver, registry, tmp_path, {"model": "support", "messages": MESSAGES})
    assert record["route"] == "support"
    assert (record["deployment"], record["vendor_model"]) == (
        "claude-haiku",
        "claude-3-5-haiku-20241022",
    )
    outcome = record["outcome"]
    assert (outcome["status"], outcome["attempts"]) == ("ok", 3)
    assert (outcome["retries"], outcome["fallbacks"]) == (1, 1)
    # Claude's count is o200k_base's too (its stand-in): one tokenizer counted, not exact
    # for Claude but exact as o200k_base's own count.
    assert record["request"]["exact"] == {"o200k_base": True}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_completed_stream_is_recorded_with_its_time_to_first_chunk(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=4, first_chunk_delay=0.05, finish_reason="length")
    (record,) = recorded(
        driver, registry, tmp_path, {"model": "chat", "messages": MESSAGES, "stream": True}
    )
    outcome = record["outcome"]
    assert record["request"]["stream"] is True
    assert outcome["status"] == "ok"
    assert record["deployment"] == "gpt-4o-mini"
    assert 0.05 <= outcome["first_chunk_s"] <= outcome["latency_s"]
    assert outcome["input_tokens"] is not None
    assert outcome["cost_usd"] is not None
    assert outcome["finish_reason"] == "length"


def _leave_a_stream_early(driver: str, registry: Registry, record: RecordConfig) -> None:
    if driver == "sync":
        with Client(registry, environ=ENVIRON, record=record) as client:
            stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            next(iter(stream))
            stream.close()
        return

    async def main() -> None:
        async with AsyncClient(registry, environ=ENVIRON, record=record) as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            async for _ in stream:
                break
            await stream.aclose()

    anyio.run(main, backend=driver)


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_stream_left_early_is_recorded_as_abandoned(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=20, chunk_delay=0.01)
    _leave_a_stream_early(driver, registry, RecordConfig(path=str(tmp_path)))
    (record,) = read_records(tmp_path)
    outcome = record["outcome"]
    assert (outcome["status"], outcome["error_type"]) == ("abandoned", None)
    assert record["deployment"] == "gpt-4o-mini"
    assert outcome["first_chunk_s"] is not None
    assert outcome["finish_reason"] is None


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_broken_stream_is_recorded_as_an_error(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, chunks=6, cut_after_chunks=2)
    (record,) = recorded(
        driver, registry, tmp_path, {"model": "chat", "messages": MESSAGES, "stream": True}
    )
    assert record["outcome"]["status"] == "error"
    assert record["outcome"]["error_type"] == "StreamInterruptedError"
    assert record["deployment"] == "gpt-4o-mini"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_split_call_records_its_arm(driver: str, registry: Registry, tmp_path: Path) -> None:
    calls = [
        {"model": "trial", "messages": MESSAGES, "policy": Policy(route_key=f"user-{n}")}
        for n in range(8)
    ]
    calls.append(
        {"model": "trial", "messages": MESSAGES, "policy": Policy(split_arm="claude-haiku")}
    )
    records = recorded(driver, registry, tmp_path, *calls)
    assert len(records) == 9
    for record in records:
        assert (record["route"], record["split"]) == ("trial", "trial")
        assert record["arm"] == record["deployment"]  # each arm is one deployment
    assert {r["arm"] for r in records[:8]} == {"gpt-4o-mini", "claude-haiku"}
    assert records[-1]["arm"] == "claude-haiku"


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_shadow_pair_is_recorded_beside_both_calls(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(vendor="openai", content="same words")
    fake_provider.script(vendor="gemini", content="same words")
    record = RecordConfig(path=str(tmp_path))
    with open_session(driver, registry, record=record) as session:
        session.create(model="watched", messages=MESSAGES, max_tokens=20)
        deadline = time.monotonic() + 10
        while not session.client.shadow_results() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert session.client.shadow_results()
    records = read_records(tmp_path)
    calls = {r["shadow_of"]: r for r in records if r["kind"] == "call"}
    (pair,) = [r for r in records if r["kind"] == "shadow"]
    primary, copy = calls[None], calls[pair["id"]]
    assert pair["id"] == primary["id"] != copy["id"]
    assert (primary["route"], primary["deployment"]) == ("watched", "gpt-4o-mini")
    assert (copy["requested"], copy["deployment"]) == ("gemini-flash", "gemini-flash")
    assert (pair["route"], pair["candidate"]) == ("watched", "gemini-flash")
    assert pair["primary"]["deployment"] == "gpt-4o-mini"
    assert pair["primary"]["ok"] is True
    assert pair["copy"] == {
        "ok": True,
        "error_type": None,
        "latency_s": pytest.approx(pair["copy"]["latency_s"]),
        "cost_usd": copy["outcome"]["cost_usd"],
    }
    assert pair["same_content"] is True


def test_a_call_left_out_of_the_sample_leaves_out_its_shadow_copy(
    registry: Registry, tmp_path: Path
) -> None:
    with Client(
        registry, environ=ENVIRON, record=RecordConfig(path=str(tmp_path), sample=0)
    ) as client:
        client.chat.completions.create(model="watched", messages=MESSAGES)
        deadline = time.monotonic() + 10
        while not client.shadow_results() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert read_records(tmp_path) == []
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []


def test_from_config_records_as_the_environments_table_says(
    fake_provider: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    directory = tmp_path / "records"
    config = tmp_path / "guardedllm.toml"
    config.write_text(
        config_text(fake_provider)
        + f'\n[env.prod.record]\npath = "{directory}"\ncontent = "full"\n'
    )
    with Client.from_config(config) as client:  # the base records nothing
        assert client.recorder is None
        client.chat.completions.create(model="chat", messages=MESSAGES)
    assert not directory.exists()
    with Client.from_config(config, env="prod") as client:
        assert client.recorder is not None
        assert client.recorder.config.content == "full"
        response = client.chat.completions.create(model="chat", messages=MESSAGES)
        assert isinstance(response, ChatCompletion)
    (record,) = read_records(directory)
    assert record["env"] == "prod"
    assert record["body"]["messages"] == MESSAGES


@pytest.mark.parametrize("driver", ["asyncio", "trio"])
def test_a_cancelled_call_is_recorded_as_abandoned(
    driver: str, registry: Registry, tmp_path: Path, fake_provider: FakeProvider
) -> None:
    fake_provider.script(model=OPENAI_ID, latency=5.0)

    async def main() -> None:
        record = RecordConfig(path=str(tmp_path))
        async with AsyncClient(registry, environ=ENVIRON, record=record) as client:
            with anyio.move_on_after(0.2):
                await client.chat.completions.create(model="chat", messages=MESSAGES)

    anyio.run(main, backend=driver)
    (record,) = read_records(tmp_path)
    assert (record["outcome"]["status"], record["outcome"]["error_type"]) == ("abandoned", None)
    assert record["deployment"] is None
    assert 0.2 <= record["outcome"]["latency_s"] < 5
