"""The writer never touches a call: a full queue drops records and counts them without waiting,
a file that cannot be written drops them without failing the call, files rotate at their size,
and closing waits for the writer only so long. Through every driver where a call is involved."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from guardedllm import Client, Registry
from guardedllm.record import Recorder
from guardedllm.record._writer import open_new
from guardedllm.registry import RecordConfig
from guardedllm.telemetry import Telemetry
from guardedllm.types import ChatCompletion
from session import open_session
from support import DRIVERS, ENVIRON

MESSAGES = [{"role": "user", "content": "Hello there"}]
FILE_NAME = re.compile(r"guardedllm-\d{8}T\d{6}Z-\d+-\d+\.jsonl")


class BlockedOpener:
    """Opens record files only once ``release`` is called: a writer stuck on its disk."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._go = threading.Event()

    def __call__(self, directory: str) -> tuple[str, IO[bytes]]:
        self.entered.set()
        self._go.wait(30)
        return open_new(directory)

    def release(self) -> None:
        self._go.set()


def json_line(record: dict[str, Any]) -> str:
    """A template for the writer: ``record``'s JSON line, as the recorder writes it."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def writer_alive() -> bool:
    return any(thread.name == "guardedllm-record" for thread in threading.enumerate())


def dropped_metric(reader: InMemoryMetricReader) -> dict[str, int]:
    """``guardedllm.record.dropped`` by reason."""
    data = reader.get_metrics_data()
    found: dict[str, int] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "guardedllm.record.dropped":
                    for point in metric.data.data_points:
                        found[str(point.attributes["guardedllm.record.reason"])] = point.value
    return found


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_full_queue_drops_and_counts_without_holding_up_calls(
    driver: str, registry: Registry, tmp_path: Path
) -> None:
    opener = BlockedOpener()
    recorder = Recorder(RecordConfig(path=str(tmp_path)), queue_size=2, opener=opener)
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    calls = 10
    try:
        with open_session(driver, registry, record=recorder, telemetry=telemetry) as session:
            for _ in range(calls):  # each returns while the writer is stuck on its file
                assert isinstance(session.create(model="chat", messages=MESSAGES), ChatCompletion)
            assert opener.entered.wait(10)
            dropped = recorder.dropped
            # The queue held two, and the writer (stuck) took two at most: the rest dropped.
            assert list(dropped) == ["queue_full"]
            assert calls - 4 <= dropped["queue_full"] <= calls - 2
            assert dropped_metric(reader) == dropped
            opener.release()
    finally:
        opener.release()
    assert recorder.written + recorder.dropped["queue_full"] == calls
    assert recorder.dropped == dropped


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_file_that_cannot_be_written_fails_no_call(
    driver: str, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    recorder = Recorder(RecordConfig(path=str(blocker / "records")))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    with (
        caplog.at_level(logging.WARNING, logger="guardedllm.record"),
        open_session(driver, registry, record=recorder, telemetry=telemetry) as session,
    ):
        for _ in range(3):
            assert isinstance(session.create(model="chat", messages=MESSAGES), ChatCompletion)
    assert recorder.written == 0
    assert recorder.dropped == {"write_error": 3}
    assert dropped_metric(reader) == {"write_error": 3}
    warnings = [r.getMessage() for r in caplog.records if r.name == "guardedllm.record"]
    assert len(warnings) == 1  # once, however many records it drops
    assert "could not write records to" in warnings[0]
    assert "Check the directory's space and permissions" in warnings[0]


def test_files_rotate_before_they_pass_max_file_mb(registry: Registry, tmp_path: Path) -> None:
    limit = 2048  # bytes: two or so records a file
    record = RecordConfig(path=str(tmp_path), max_file_mb=limit / (1024 * 1024))
    with Client(registry, environ=ENVIRON, record=record) as client:
        for _ in range(7):
            client.chat.completions.create(model="chat", messages=MESSAGES)
        recorder = client.recorder
        assert recorder is not None
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files if not FILE_NAME.fullmatch(p.name)] == []
    assert sorted(recorder.paths) == [str(p) for p in files]
    assert len(files) >= 3
    lines = [line for p in files for line in p.read_bytes().splitlines(keepends=True)]
    assert len(lines) == 7
    for path in files:
        assert path.stat().st_size <= limit or len(path.read_bytes().splitlines()) == 1


def test_a_record_larger_than_a_file_goes_alone_in_a_new_one(tmp_path: Path) -> None:
    recorder = Recorder(RecordConfig(path=str(tmp_path), max_file_mb=100 / (1024 * 1024)))
    for size in (10, 500, 10):
        recorder.submit(json_line, {"v": 1, "kind": "call", "pad": "x" * size})
    recorder.close()
    assert recorder.written == 3
    sizes = sorted(len(Path(p).read_bytes().splitlines()) for p in recorder.paths)
    assert sizes == [1, 1, 1]


def test_closing_waits_for_a_stuck_writer_only_so_long(tmp_path: Path) -> None:
    opener = BlockedOpener()
    recorder = Recorder(RecordConfig(path=str(tmp_path)), opener=opener)
    try:
        for _ in range(5):
            recorder.submit(json_line, {"v": 1, "kind": "call"})
        assert opener.entered.wait(10)
        started = time.monotonic()
        recorder.close(timeout=0.2)
        assert time.monotonic() - started < 5
        assert recorder.dropped == {"closed": 5}  # given up, the one it holds included
        recorder.submit(json_line, {"v": 1, "kind": "call"})  # after close: dropped, counted
        assert recorder.dropped == {"closed": 6}
    finally:
        opener.release()
    deadline = time.monotonic() + 10
    while writer_alive() and time.monotonic() < deadline:  # the writer comes back, and ends
        time.sleep(0.01)
    assert recorder.written == 0  # and writes nothing it was counted as dropping
    assert [p.read_bytes() for p in tmp_path.iterdir()] in ([], [b""])


def test_a_record_json_cannot_hold_is_dropped_alone(tmp_path: Path) -> None:
    recorder = Recorder(RecordConfig(path=str(tmp_path)))
    looped: dict[str, Any] = {"v": 1}
    looped["self"] = looped
    recorder.submit(json_line, looped)
    recorder.submit(json_line, {"v": 1, "kind": "call"})
    recorder.close()
    assert (recorder.written, recorder.dropped) == (1, {"write_error": 1})


def test_a_line_with_a_lone_surrogate_is_written_as_its_bytes(tmp_path: Path) -> None:
    # JSON's escaper leaves a lone surrogate (from a caller's text) as it is, which UTF-8 has
    # no form for: the writer writes its bytes rather than failing the line, or its batch.
    recorder = Recorder(RecordConfig(path=str(tmp_path)))
    recorder.submit(json_line, {"v": 1, "kind": "call", "text": "lone \ud800"})
    recorder.submit(json_line, {"v": 1, "kind": "call"})
    recorder.close()
    assert (recorder.written, recorder.dropped) == (2, {})
    (path,) = recorder.paths
    first, second = Path(path).read_bytes().splitlines()
    assert json.loads(first.decode("utf-8", "surrogatepass"))["text"] == "lone \ud800"
    assert second == b'{"v":1,"kind":"call"}'


class HandedOver(Recorder):
    """A recorder that also keeps what each record was handed over with."""

    def __init__(self, config: RecordConfig) -> None:
        super().__init__(config)
        self.handed: list[tuple[Any, ...]] = []

    def submit(self, template: Callable[..., str], /, *args: Any, **kwargs: Any) -> None:
        self.handed.append(args)
        super().submit(template, *args, **kwargs)


def test_a_waiting_record_holds_nothing_the_garbage_collector_keeps_tracking(
    registry: Registry, tmp_path: Path
) -> None:
    # Records wait for the writer up to RECORD_FLUSH_S, thousands of them at a high rate:
    # were they tracked, collections would move them to older generations, and bring full
    # collections sooner, a cost on every call.
    recorder = HandedOver(RecordConfig(path=str(tmp_path)))
    with Client(registry, environ=ENVIRON, record=recorder) as client:
        client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            temperature=0.2,
            stop=["x"],
            response_format={"type": "json_object"},
            presence_penalty=0.5,
        )
        (values,) = recorder.handed
        for _ in range(3):  # a tuple is let go of once each thing it holds has been
            gc.collect()
        assert not gc.is_tracked(values)
    (path,) = recorder.paths
    record = json.loads(Path(path).read_bytes())
    assert record["request"]["params"] == {
        "temperature": 0.2,
        "stop": 1,
        "response_format": "json_object",
        "presence_penalty": 0.5,
    }


def test_a_client_that_records_nothing_opens_no_file(registry: Registry, tmp_path: Path) -> None:
    directory = tmp_path / "records"
    with Client(registry, environ=ENVIRON, record=RecordConfig(path=str(directory))):
        pass
    assert not directory.exists()


def test_flush_writes_what_is_queued_before_the_writer_would(tmp_path: Path) -> None:
    recorder = Recorder(RecordConfig(path=str(tmp_path)))
    assert recorder.flush()  # nothing queued, no writer yet
    for n in range(3):
        recorder.submit(json_line, {"v": 1, "kind": "call", "n": n})
    assert recorder.flush(timeout=10)
    (path,) = recorder.paths
    assert len(Path(path).read_bytes().splitlines()) == 3  # on disk, the file still open
    recorder.close()
    assert recorder.written == 3


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*:DeprecationWarning")
def test_a_forked_child_writes_a_file_of_its_own(tmp_path: Path) -> None:
    # A preforking server makes its clients, then forks workers: each must record, to files
    # named after its own pid, not queue records for the parent's writer thread it lacks.
    recorder = Recorder(RecordConfig(path=str(tmp_path)))
    recorder.submit(json_line, {"v": 1, "kind": "call", "who": "parent"})
    assert recorder.flush(timeout=10)  # the parent's writer is running
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            recorder.submit(json_line, {"v": 1, "kind": "call", "who": "child"})
            code = 0 if recorder.flush(timeout=10) else 2
            recorder.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    recorder.close()
    by_pid = {path.name.split("-")[2]: path for path in tmp_path.iterdir()}
    assert sorted(by_pid) == sorted([str(os.getpid()), str(pid)])
    assert b'"who":"parent"' in by_pid[str(os.getpid())].read_bytes()
    assert by_pid[str(pid)].read_bytes() == b'{"v":1,"kind":"call","who":"child"}\n'
