"""Atomicity across processes: several Python processes hammer one Redis key at once, as the
replicas of a service do, and no operation's read-then-write interleaves with another's."""

from __future__ import annotations

import sys

import pytest

from redis_server import RedisServer
from workers import run_together

PROCESSES = 4

# Each worker connects, waits for the start signal (a file), runs the three workloads one after
# the other and prints a JSON line with what each granted. Bounded in count and in time.
WORKER = """
import json, os, sys, time
from guardedllm.state import RedisBackend

url, prefix, go = sys.argv[1:4]
backend = RedisBackend.from_url(url, key_prefix=prefix, timeout_s=5.0)
backend.ping()
print("ready", flush=True)
deadline = time.monotonic() + 20.0
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)

counter = 0
for _ in range(60):
    added, _ = backend.counter_add("spend", 1.0, limit=100.0, expires_at=1e12, now=1.0)
    counter += added

bucket, nows = 0, []
stop = time.monotonic() + 0.3
for _ in range(400):
    if time.monotonic() > stop:
        break
    now = time.time()
    nows.append(now)
    bucket += backend.bucket_take("rpm", 1.0, capacity=50.0, refill_per_s=40.0, now=now).granted

cas = 0
for _ in range(50):
    while True:
        raw = backend.value_get("n", now=1.0)
        if backend.value_cas("n", raw, str(int(raw or 0) + 1), now=1.0):
            cas += 1
            break
print(json.dumps({"counter": counter, "bucket": bucket, "takes": len(nows), "first": min(nows),
                  "last": max(nows), "cas": cas}))
"""


@pytest.fixture(scope="module")
def workloads(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What each of the ``PROCESSES`` workers was granted, all run at once on one prefix."""
    directory = tmp_path_factory.mktemp("workers")
    script = directory / "worker.py"
    script.write_text(WORKER)
    go = directory / "go"
    argv = [sys.executable, str(script), redis_server.url, "procs:", str(go)]
    return run_together([argv] * PROCESSES, go, timeout_s=45)


def test_a_counter_with_a_limit_never_goes_over_it(
    workloads: list[dict], redis_server: RedisServer
) -> None:
    # 240 attempts at 1 each against a limit of 100: exactly 100 granted, whoever got them.
    assert sum(w["counter"] for w in workloads) == 100
    client = redis_server.client()
    assert float(client.hget("procs:counter:{spend}", "total")) == 100.0
    client.close()


def test_a_bucket_never_grants_more_than_capacity_plus_refill(workloads: list[dict]) -> None:
    granted = sum(w["bucket"] for w in workloads)
    takes = sum(w["takes"] for w in workloads)
    elapsed = max(w["last"] for w in workloads) - min(w["first"] for w in workloads)
    # Full at the first take, then 40 a second; never more, however the takes interleave.
    assert min(50, takes) <= granted <= 50 + 40 * elapsed + 1e-6


def test_compare_and_set_loses_no_update(workloads: list[dict], redis_server: RedisServer) -> None:
    assert sum(w["cas"] for w in workloads) == PROCESSES * 50
    client = redis_server.client()
    assert client.hget("procs:value:n", "value") == str(PROCESSES * 50).encode()
    client.close()
