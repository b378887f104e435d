"""Running a simulation over traffic files, on every CPU when the log is large.

Counting tokens is CPU-bound and holds the GIL (tiktoken's encoder does not release it), so a
large log is cut into pieces at line boundaries (``split_file``), one worker process per CPU
counts its pieces with a ``Simulation`` of its own, and the parts are appended to the whole in
the order of the log: the result is the one a single process gives, value for value. A small
log is simulated in the calling process, where starting workers would cost more than it saves.

Workers are started with ``spawn`` (a fresh interpreter, the same on every platform and safe in
a process with threads) and share one byte counter for the progress bar.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any

from guardedllm import defaults
from guardedllm.registry import Registry
from guardedllm.release._simulate import Simulation, SimulationPart, SimulationResult
from guardedllm.release._traffic import Piece, Skips, TrafficReader, split_file

__all__ = ["available_cpus", "replay"]

_POLL_S = 0.2  # how often the progress bar hears from the workers


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def replay(
    config_path: str,
    *,
    env: str | None,
    baseline: str,
    candidate: str,
    traffic: Sequence[str],
    on_progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    min_parallel_bytes: int = defaults.SIMULATE_PARALLEL_MIN_BYTES,
) -> SimulationResult:
    """Simulate ``traffic`` on ``baseline`` and ``candidate`` of the config at
    ``config_path``. ``workers`` (default: the CPUs, at most ``SIMULATE_MAX_WORKERS``) count
    in parallel when the files hold ``min_parallel_bytes`` or more."""
    registry = Registry.from_toml(config_path, env=env)
    simulation = Simulation(registry, baseline, candidate)  # unknown names fail first
    reader = TrafficReader(traffic)  # so do unreadable files
    if workers is None:
        workers = min(available_cpus(), defaults.SIMULATE_MAX_WORKERS)
    if workers < 2 or reader.total_bytes < min_parallel_bytes:
        reader.on_progress = on_progress
        feed(simulation, reader)
        return simulation.finish(reader.skips)
    pieces = [piece for path in traffic for piece in split_file(path, workers)]
    task = functools.partial(_replay_piece, config_path, env, baseline, candidate)
    context = multiprocessing.get_context("spawn")
    counter = context.Value("q", 0)
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=min(workers, len(pieces)),
        mp_context=context,
        initializer=_start_worker,
        initargs=(counter,),
    ) as pool:
        futures = [pool.submit(task, piece) for piece in pieces]
        try:
            _wait(futures, counter, on_progress)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        for future in futures:
            part, skips = future.result()
            simulation.extend(part)
            reader.skips.extend(skips)
    return simulation.finish(reader.skips)


def feed(simulation: Simulation, reader: TrafficReader) -> None:
    """Every request ``reader`` yields into ``simulation``; one it cannot count is skipped."""
    for where, request in reader.requests():
        problem = simulation.add(request)
        if problem is not None:
            reader.skips.add(where, problem)


def _wait(
    futures: list[concurrent.futures.Future[Any]],
    counter: Any,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Until every piece is done, reporting progress; the first failure is raised."""
    reported = 0
    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(
            pending, timeout=_POLL_S, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        for future in done:
            future.result()  # raises a worker's error (a newer record format, ...)
        if on_progress is not None:
            now = counter.value
            if now > reported:
                on_progress(now - reported)
                reported = now


# ---------------------------------------------------------------- in each worker process

_progress: Any = None  # the shared byte counter


def _start_worker(counter: Any) -> None:
    global _progress  # noqa: PLW0603 - one counter per worker process, set once at its start
    _progress = counter


def _advance(done: int) -> None:
    with _progress.get_lock():
        _progress.value += done


@functools.lru_cache(maxsize=4)
def _registry(config_path: str, env: str | None) -> Registry:
    return Registry.from_toml(config_path, env=env)


def _replay_piece(
    config_path: str, env: str | None, baseline: str, candidate: str, piece: Piece
) -> tuple[SimulationPart, Skips]:
    simulation = Simulation(_registry(config_path, env), baseline, candidate)
    reader = TrafficReader([piece.path], pieces=[piece], on_progress=_advance)
    feed(simulation, reader)
    return simulation.part(), reader.skips
