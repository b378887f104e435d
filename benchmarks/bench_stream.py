"""CPU of a streamed chat completion, per stream and per chunk, next to raw httpx.

An ``httpx.MockTransport`` serves a canned OpenAI stream one SSE event per read, as a network
delivers it: a role chunk, N content chunks, a finish chunk, a usage chunk and ``[DONE]``.
Candidates read it to the end:

- ``raw httpx``: ``client.stream("POST", ...)``, ``iter_lines()``, ``json.loads`` of every
  ``data:`` line until ``[DONE]`` (the baseline);
- ``guardedllm``: iterate ``chat.completions.create(..., stream=True)`` (incremental SSE
  parsing, typed chunks, usage and cost accounting);
- the openai SDK, if importable (``stream_options.include_usage`` as guardedllm sends it);
- LiteLLM, if importable: ``litellm.completion(..., stream=True, client=...)`` handed an openai
  client on the SDK's own MockTransport serving the same events, read to the end.

Two stream lengths, 8 and 256 content chunks, run in the same interleaved rounds. "Per stream" is
the cost of a whole 8-chunk stream (it includes the per-call work before the first byte);
"per chunk" is the marginal cost of one more chunk, (t256 - t8) / 248 paired within each round,
which is what a long answer costs. The long stream is long so that its chunks, not the per-call
work, make up most of it: in quick runs on 2 cores, the per-chunk figures spread by ±17-57 %
(half the interquartile range over rounds) with 64 chunks, and by ±5-30 % with 256.

Run alone:  python benchmarks/bench_stream.py [--quick]
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
from _harness import (
    Mode,
    Samples,
    Section,
    Target,
    alternate,
    alternate_async,
    interleave,
    interleave_async,
    run_alone,
    run_async,
)
from _payloads import (
    MAX_TOKENS,
    MESSAGES,
    MOCK_BASE_URL,
    MODEL_ID,
    REQUEST_BODY,
    REQUEST_HEADERS,
    STREAM_HEADERS,
    guarded_async_client,
    guarded_client,
    stream_events,
    stream_handler,
)
from _peers import litellm_peer, openai_peer

URL = MOCK_BASE_URL + "/chat/completions"
STREAM_BODY = {**REQUEST_BODY, "stream": True, "stream_options": {"include_usage": True}}
SHORT, LONG = 8, 256
GOAL = 1.3  # streaming <= 1.3x raw per chunk

RAW = "raw httpx"
GUARDED = "guardedllm"
SDK = "openai SDK"
LITE = "litellm"
# The candidates the target compares, timed again call by call (see _report_paired).
PAIRED = tuple(f"{name}/{pieces}" for name in (RAW, GUARDED) for pieces in (SHORT, LONG))


def _read_raw(lines: Iterator[str]) -> int:
    parsed = 0
    for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                break
            json.loads(data)
            parsed += 1
    return parsed


async def _read_raw_async(lines: AsyncIterator[str]) -> int:
    parsed = 0
    async for line in lines:
        if line.startswith("data: "):
            data = line[6:]
            if data == "[DONE]":
                break
            json.loads(data)
            parsed += 1
    return parsed


def _peer_transport(peer: Any, pieces: int, *, is_async: bool) -> Any:
    events = stream_events(pieces)

    def sync_body() -> Iterator[bytes]:
        yield from events

    async def async_body() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    def handle(request: Any) -> Any:
        request.read()
        content = async_body() if is_async else sync_body()
        return peer.http.Response(200, content=content, headers=STREAM_HEADERS)

    return peer.http.MockTransport(handle)


def _sync_candidates(notes: list[str]) -> tuple[dict[str, Callable[[], object]], list[Any]]:
    candidates: dict[str, Callable[[], object]] = {}
    closers: list[Any] = []
    peer, why = openai_peer()
    notes.append(f"peer: {why}")
    lite, why = litellm_peer()
    notes.append(f"peer: {why}")
    if lite is not None and peer is None:
        notes.append("litellm skipped: it needs an openai client to mock the transport")
    for pieces in (SHORT, LONG):
        raw = httpx.Client(transport=httpx.MockTransport(stream_handler(pieces, is_async=False)))
        guarded = guarded_client(httpx.MockTransport(stream_handler(pieces, is_async=False)))
        closers += [raw, guarded]

        def raw_stream(raw: httpx.Client = raw) -> int:
            with raw.stream("POST", URL, json=STREAM_BODY, headers=REQUEST_HEADERS) as response:
                return _read_raw(response.iter_lines())

        def guarded_stream(guarded: Any = guarded) -> int:
            stream = guarded.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
            )
            return sum(1 for _ in stream)

        candidates[f"{RAW}/{pieces}"] = raw_stream
        candidates[f"{GUARDED}/{pieces}"] = guarded_stream
        if peer is not None:
            sdk = peer.client(MOCK_BASE_URL, _peer_transport(peer, pieces, is_async=False))
            closers.append(sdk)

            def sdk_stream(sdk: Any = sdk) -> int:
                stream = sdk.chat.completions.create(
                    model=MODEL_ID,
                    messages=MESSAGES,
                    max_completion_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                return sum(1 for _ in stream)

            candidates[f"{SDK}/{pieces}"] = sdk_stream
        if lite is not None and peer is not None:
            lite_sdk = peer.client(MOCK_BASE_URL, _peer_transport(peer, pieces, is_async=False))
            closers.append(lite_sdk)

            def lite_stream(
                lite_sdk: Any = lite_sdk, completion: Any = lite.litellm.completion
            ) -> int:
                stream = completion(
                    model=lite.model,
                    messages=MESSAGES,
                    max_completion_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                    client=lite_sdk,
                )
                return sum(1 for _ in stream)

            candidates[f"{LITE}/{pieces}"] = lite_stream
    return candidates, closers


async def _async_samples(mode: Mode) -> tuple[Samples, Samples]:
    candidates: dict[str, Callable[[], Awaitable[object]]] = {}
    closers: list[Any] = []
    peer, _ = openai_peer()
    lite, _ = litellm_peer()
    for pieces in (SHORT, LONG):
        raw = httpx.AsyncClient(
            transport=httpx.MockTransport(stream_handler(pieces, is_async=True))
        )
        guarded = guarded_async_client(httpx.MockTransport(stream_handler(pieces, is_async=True)))
        closers += [raw, guarded]

        async def raw_stream(raw: httpx.AsyncClient = raw) -> int:
            async with raw.stream(
                "POST", URL, json=STREAM_BODY, headers=REQUEST_HEADERS
            ) as response:
                return await _read_raw_async(response.aiter_lines())

        async def guarded_stream(guarded: Any = guarded) -> int:
            stream = await guarded.chat.completions.create(
                model="chat", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
            )
            return len([chunk async for chunk in stream])

        candidates[f"{RAW}/{pieces}"] = raw_stream
        candidates[f"{GUARDED}/{pieces}"] = guarded_stream
        if peer is not None:
            transport = _peer_transport(peer, pieces, is_async=True)
            sdk = peer.async_client(MOCK_BASE_URL, peer.http.AsyncClient(transport=transport))
            closers.append(sdk)

            async def sdk_stream(sdk: Any = sdk) -> int:
                stream = await sdk.chat.completions.create(
                    model=MODEL_ID,
                    messages=MESSAGES,
                    max_completion_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                return len([chunk async for chunk in stream])

            candidates[f"{SDK}/{pieces}"] = sdk_stream
        if lite is not None and peer is not None:
            transport = _peer_transport(peer, pieces, is_async=True)
            lite_sdk = peer.async_client(MOCK_BASE_URL, peer.http.AsyncClient(transport=transport))
            closers.append(lite_sdk)

            async def lite_stream(
                lite_sdk: Any = lite_sdk, acompletion: Any = lite.litellm.acompletion
            ) -> int:
                stream = await acompletion(
                    model=lite.model,
                    messages=MESSAGES,
                    max_completion_tokens=MAX_TOKENS,
                    stream=True,
                    stream_options={"include_usage": True},
                    client=lite_sdk,
                )
                return len([chunk async for chunk in stream])

            candidates[f"{LITE}/{pieces}"] = lite_stream
    try:
        samples = await interleave_async(candidates, mode)
        pairs = await alternate_async({name: candidates[name] for name in PAIRED}, mode)
        return samples, pairs
    finally:
        for closer in closers:
            await (closer.aclose() if hasattr(closer, "aclose") else closer.close())


def _per_chunk(samples: Samples, name: str) -> list[float]:
    """CPU seconds of one more chunk for ``name``, per round: (t_long - t_short) / extra."""
    extra_events = LONG - SHORT
    return [
        (long - short) / extra_events
        for short, long in zip(samples[f"{name}/{SHORT}"], samples[f"{name}/{LONG}"], strict=True)
    ]


def _add_per_chunk(
    section: Section, samples: Samples, names: list[str], labels: dict[str, str], suffix: str
) -> None:
    per_chunk = {name: _per_chunk(samples, name) for name in names}
    for name in names:
        section.add(
            f"{labels[name]}, per extra chunk{suffix}",
            per_chunk[name],
            "us",
            scale=1e6,
            baseline=per_chunk[RAW],
            baseline_label=labels[RAW],
        )


def _report(samples: Samples, section: Section, labels: dict[str, str]) -> None:
    """Rows per stream and per chunk for every candidate, from the interleaved rounds."""
    clients = [name for name in (RAW, GUARDED, SDK, LITE) if f"{name}/{SHORT}" in samples]
    for name in clients:
        section.add(
            f"{labels[name]}, per {SHORT}-chunk stream",
            samples[f"{name}/{SHORT}"],
            "us",
            scale=1e6,
            baseline=samples[f"{RAW}/{SHORT}"],
            baseline_label=labels[RAW],
        )
    _add_per_chunk(section, samples, clients, labels, "")


def _report_paired(pairs: Samples, section: Section, labels: dict[str, str]) -> float:
    """Rows for raw httpx and guardedllm per extra chunk, timed call by call in alternation;
    returns their ratio, the one the target judges. In ``interleave``'s rounds the samples of
    the four streams behind the two figures lie up to a second apart (the peers' long streams
    run between them), and the machine's speed drifts by more than the difference measured;
    here each call of one runs next to a call of the other."""
    _add_per_chunk(section, pairs, [RAW, GUARDED], labels, ", call by call")
    return section.ratio(f"{labels[GUARDED]}, per extra chunk, call by call")


def run(mode: Mode) -> tuple[list[Section], list[Target]]:
    sync = Section("3a. Streaming CPU, sync (MockTransport, one SSE event per read)")
    candidates, closers = _sync_candidates(sync.notes)
    try:
        sync_samples = interleave(candidates, mode)
        sync_pairs = alternate({name: candidates[name] for name in PAIRED}, mode)
    finally:
        for closer in closers:
            closer.close()
    sync_labels = {
        RAW: "raw httpx.Client",
        GUARDED: "guardedllm Client",
        SDK: "openai.OpenAI",
        LITE: "litellm.completion",
    }
    _report(sync_samples, sync, sync_labels)
    sync_ratio = _report_paired(sync_pairs, sync, sync_labels)
    sync.notes.append(
        f"a {SHORT}-chunk stream is {SHORT + 3} data events; per extra chunk = "
        f"(t{LONG} - t{SHORT}) / {LONG - SHORT}, paired within each round"
    )

    asynchronous = Section("3b. Streaming CPU, asyncio (MockTransport, one SSE event per read)")
    async_samples, async_pairs = run_async(lambda: _async_samples(mode), timeout_s=300)
    async_labels = {
        RAW: "raw httpx.AsyncClient",
        GUARDED: "guardedllm AsyncClient",
        SDK: "openai.AsyncOpenAI",
        LITE: "litellm.acompletion",
    }
    _report(async_samples, asynchronous, async_labels)
    async_ratio = _report_paired(async_pairs, asynchronous, async_labels)
    asynchronous.notes.append(
        f"a whole {SHORT}-chunk stream includes the per-call work before the first byte "
        "(section 1); the per-chunk figure is what a long answer adds"
    )
    targets = [
        Target(
            "streaming CPU per chunk, guardedllm Client vs raw httpx.Client",
            sync_ratio,
            GOAL,
            higher_is_better=False,
            basis=f"marginal chunk cost, {SHORT} vs {LONG}-chunk streams, call by call",
        ),
        Target(
            "streaming CPU per chunk, guardedllm AsyncClient vs raw httpx.AsyncClient",
            async_ratio,
            GOAL,
            higher_is_better=False,
            basis=f"marginal chunk cost, {SHORT} vs {LONG}-chunk streams, call by call",
        ),
    ]
    return [sync, asynchronous], targets


def main() -> None:
    run_alone(run)


if __name__ == "__main__":
    main()
