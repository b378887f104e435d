"""A loopback chat-completions server for the throughput benchmark, in its own process.

    python benchmarks/serve.py [--kind fake|raw|soak] [--max-seconds 1200]

Prints its base URL (``http://127.0.0.1:PORT``; clients append ``/v1``) on the first line of
stdout, then serves until stdin closes (the benchmark closes it to stop the server) or
``--max-seconds`` pass, so it never outlives the run that started it.

- ``fake``: guardedllm's ``FakeProvider``, the real aiohttp server the test suite uses. Its
  journal is cleared every second so a long run does not grow its memory.
- ``soak``: the ``fake`` server with ``_payloads.SOAK_FAULTS`` scripted: each fault model id
  answers with its fault every time (a 503 or a 429 with a short retry-after-ms, a dropped
  connection, a malformed body, a slow answer, a long stream); every other id answers normally.
- ``raw``: the least server HTTP/1.1 allows: an ``asyncio.Protocol`` that answers every request
  with the same canned ``chat.completion`` bytes, keep-alive. It spends ~30 us of CPU per
  request (mostly socket system calls), so on 2 cores the client, not the server, limits
  throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading

from _payloads import COMPLETION_BODY, SOAK_FAULTS

HOST = "127.0.0.1"
# Headers are read whole before a request is answered; anything longer is not a benchmark client.
MAX_HEAD_BYTES = 64 * 1024

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: application/json\r\n"
    b"x-request-id: req_bench\r\n"
    b"content-length: " + str(len(COMPLETION_BODY)).encode() + b"\r\n"
    b"\r\n" + COMPLETION_BODY
)
REFUSED = b"HTTP/1.1 411 Length Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class CannedHTTP(asyncio.Protocol):
    """Reads requests (head + Content-Length body, pipelining allowed) and answers each with
    ``RESPONSE``. A request without a length (chunked) or with an oversized head is refused
    and the connection closed: the benchmark clients never send one."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    self._refuse(transport)
                return
            length = _content_length(bytes(self._buffer[:end]).lower())
            if length is None:
                self._refuse(transport)
                return
            total = end + 4 + length
            if len(self._buffer) < total:
                return
            del self._buffer[:total]
            transport.write(RESPONSE)

    def _refuse(self, transport: asyncio.Transport) -> None:
        transport.write(REFUSED)
        transport.close()
        self._buffer.clear()


def _content_length(head: bytes) -> int | None:
    """The body length a lower-cased request head announces: 0 without a body, None if it is
    chunked (which this server does not read)."""
    if b"\r\ntransfer-encoding:" in head:
        return None
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    stop = head.find(b"\r\n", start)
    try:
        return int(head[start : stop if stop >= 0 else len(head)].strip())
    except ValueError:
        return None


def _wait_for_stdin_eof(done: threading.Event) -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        done.set()


def serve_raw(done: threading.Event, max_seconds: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(CannedHTTP, HOST, 0, backlog=1024)
        port = server.sockets[0].getsockname()[1]
        print(f"http://{HOST}:{port}", flush=True)
        stop = asyncio.Event()

        def stop_when_done() -> None:
            done.wait(max_seconds)
            loop.call_soon_threadsafe(stop.set)

        threading.Thread(target=stop_when_done, daemon=True).start()
        async with server:
            await stop.wait()

    asyncio.run(main())


def serve_fake(done: threading.Event, max_seconds: float, *, faults: bool = False) -> None:
    from guardedllm.testing import FakeProvider

    def script(fake: FakeProvider) -> None:
        for model, behaviour in SOAK_FAULTS.items() if faults else ():
            fake.script(model=model, **behaviour)

    with FakeProvider(host=HOST) as fake:
        script(fake)
        print(fake.base_url, flush=True)
        waited = 0.0
        while waited < max_seconds and not done.wait(1.0):
            waited += 1.0
            # Forget recorded requests, so memory stays flat however long the run; reset()
            # forgets the scripts too, so they are queued again (a request that arrives in
            # between gets a normal answer).
            fake.reset()
            script(fake)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["fake", "raw", "soak"], default="raw")
    parser.add_argument("--max-seconds", type=float, default=1200.0)
    args = parser.parse_args()
    done = threading.Event()
    threading.Thread(target=_wait_for_stdin_eof, args=(done,), daemon=True).start()
    if args.kind == "raw":
        serve_raw(done, args.max_seconds)
    else:
        serve_fake(done, args.max_seconds, faults=args.kind == "soak")


if __name__ == "__main__":
    main()
