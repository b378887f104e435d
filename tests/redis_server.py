"""A real ``redis-server`` on 127.0.0.1 for the Redis state backend's tests: started from the
Debian binary on a free port with persistence off, stopped at the end; it can be killed and
restarted on the same port (a store that fails mid-run).

Without the binary the tests that need it are skipped, saying how to install it, except in CI
(``CI=true``), where they must run: there a missing binary fails them.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from services import service_binary

INSTALL = "apt-get install -y redis-server"
# A server answers PING within a few milliseconds of starting; a loaded CI machine may take
# much longer, but not this long.
START_TIMEOUT_S = 15.0


def redis_server_binary() -> str:
    """The redis-server binary, or skip (fail in CI) the test that needs it."""
    return service_binary("redis-server", install=INSTALL, tests="the Redis backend tests")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process, on ``port`` and on the unix socket ``socket_path``."""

    def __init__(self, binary: str, *extra_args: str) -> None:
        self.binary = binary
        self.extra_args = extra_args
        self.directory = Path(tempfile.mkdtemp(prefix="guardedllm-redis-"))
        self.socket_path = str(self.directory / "redis.sock")
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def pool(self) -> redis.BlockingConnectionPool:
        return redis.BlockingConnectionPool(host="127.0.0.1", port=self.port, timeout=30)

    def start(self) -> None:
        """Start (again, on the same port) and wait until it answers PING."""
        argv = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            *("--unixsocket", self.socket_path, "--unixsocketperm", "700"),
            *self.extra_args,
        ]
        log = self.directory / "redis.log"
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                argv, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise RuntimeError(f"redis-server exited at start: {log.read_text()[-500:]}")
            if self._answers():
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def kill(self) -> None:
        """Kill it at once (SIGKILL): every connection drops, every key is lost."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=10)
            self._process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            self._process = None
        shutil.rmtree(self.directory, ignore_errors=True)
