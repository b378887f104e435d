"""How every benchmark measures and reports: interleaved rounds, medians, ratios, a table, JSON.

Rules the measurements follow (they make figures from a busy 2-core machine comparable):

- Candidates run in one process, in interleaved rounds whose order rotates (A B C, B C A, ...),
  so drift in CPU frequency, cache or background load hits each alike.
- A figure is the median over rounds; a ratio compares it with a baseline measured in the same
  rounds, never with a number from another run.
- In-process timings use CPU time (``time.process_time``): other processes on the machine then
  slow a sample down less than wall-clock time would.
- Work a candidate leaves to background threads or event-loop tasks is waited for after its
  sample and counted in it (``time_calls(settle=True)``), never in the next candidate's; a
  candidate with a ``flush`` method (work deferred on a timer) has it run first.
- Every loop is bounded in count and in time: rounds stop at ``Mode.rounds`` or once the
  section's time budget is spent (after at least ``MIN_ROUNDS``), and a sample's size is
  calibrated to last about ``Mode.sample_s``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# Fewer rounds than this leave a median that one disturbed round can move.
MIN_ROUNDS = 3
# Calls per sample, whatever the calibration says: bounds a sample of a very cheap candidate.
MAX_CALLS_PER_SAMPLE = 200_000
# After a timed sample, background work the calls left (other threads, loop tasks) is waited
# for in steps of SETTLE_STEP_S until a step costs less than SETTLE_IDLE_CPU_S of CPU (at most
# SETTLE_STEPS steps), and counted in the sample.
SETTLE_STEP_S = 0.002
SETTLE_IDLE_CPU_S = 0.0002
SETTLE_STEPS = 250


@dataclass(frozen=True)
class Mode:
    """How long to measure. ``quick`` finishes the whole suite in under ~2 minutes, ``full`` in
    about 12 on 2 cores."""

    name: str
    rounds: int  # interleaved rounds of the in-process CPU benchmarks
    sample_s: float  # CPU time one sample of one candidate aims for
    section_budget_s: float  # after this, a section stops adding rounds (>= MIN_ROUNDS done)
    loop_rounds: int  # interleaved rounds of the loopback throughput benchmark
    loop_window_s: float  # how long one throughput sample keeps calls going
    import_runs: int  # fresh interpreters per import case
    estimate_calls: int  # calls per sample in bench_estimate
    memory_calls: int  # calls per client in bench_memory, after its warm-up
    soak_calls: int  # calls per client in bench_soak, after its warm-up


QUICK = Mode(
    name="quick",
    rounds=9,
    sample_s=0.03,
    section_budget_s=10.0,
    loop_rounds=3,
    loop_window_s=0.5,
    import_runs=5,
    estimate_calls=100,
    memory_calls=25_000,
    soak_calls=4_000,
)
FULL = Mode(
    name="full",
    rounds=41,
    sample_s=0.08,
    section_budget_s=40.0,
    loop_rounds=7,
    loop_window_s=1.2,
    import_runs=15,
    estimate_calls=200,
    memory_calls=100_000,
    soak_calls=20_000,
)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    median: float
    low: float  # first quartile (the minimum with fewer than 4 samples)
    high: float  # third quartile (the maximum with fewer than 4 samples)
    samples: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        if not values:
            raise ValueError("no samples to summarize; the benchmark measured nothing")
        if len(values) < 4:
            return cls(statistics.median(values), min(values), max(values), len(values))
        q1, _, q3 = statistics.quantiles(values, n=4)
        return cls(statistics.median(values), q1, q3, len(values))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median: how much to trust the figure."""
        return (self.high - self.low) / self.median if self.median else math.inf


# --------------------------------------------------------------------------- rounds


def schedule(names: list[str], *, rounds: int, budget_s: float) -> Iterator[list[str]]:
    """The order of ``names`` in each round, rotating; stops after ``rounds`` rounds, or earlier
    once ``budget_s`` seconds have passed and at least ``MIN_ROUNDS`` rounds are done."""
    started = time.monotonic()
    for number in range(rounds):
        if number >= MIN_ROUNDS and time.monotonic() - started > budget_s:
            return
        shift = number % len(names)
        yield names[shift:] + names[:shift]


def _calls_for(per_call_s: float, sample_s: float) -> int:
    if per_call_s <= 0:
        return MAX_CALLS_PER_SAMPLE
    return max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(sample_s / per_call_s)))


def _flush(function: object) -> None:
    """Run a candidate's ``flush`` (if it has one): work it defers to a background thread on
    a timer, which waiting for idle CPU would not see, such as a traffic recorder's writes."""
    flush = getattr(function, "flush", None)
    if flush is not None:
        flush()


def time_calls(function: Callable[[], object], calls: int, *, settle: bool = False) -> float:
    """CPU seconds per call of ``calls`` calls back to back. With ``settle``, the work the
    calls left to background threads (LiteLLM logs each call in a thread pool) is waited for
    and counted too, so it is charged to this candidate, not to the one measured next."""
    start = time.process_time()
    for _ in range(calls):
        function()
    if settle:
        _flush(function)
        for _ in range(SETTLE_STEPS):
            before = time.process_time()
            time.sleep(SETTLE_STEP_S)  # this thread is idle: what is spent is other threads'
            if time.process_time() - before < SETTLE_IDLE_CPU_S:
                break
    return (time.process_time() - start) / calls


async def time_calls_async(
    function: Callable[[], Awaitable[object]], calls: int, *, settle: bool = False
) -> float:
    """``time_calls`` for a coroutine function; settling also lets the tasks the calls left
    on the event loop run (LiteLLM's async logging), and counts them."""
    start = time.process_time()
    for _ in range(calls):
        await function()
    if settle:
        _flush(function)
        await settle_async()
    return (time.process_time() - start) / calls


async def settle_async() -> None:
    """Wait (bounded) until the threads and loop tasks other work left behind go idle."""
    for _ in range(SETTLE_STEPS):
        before = time.process_time()
        await asyncio.sleep(SETTLE_STEP_S)
        if time.process_time() - before < SETTLE_IDLE_CPU_S:
            break


def calibrate(function: Callable[[], object], sample_s: float) -> int:
    """Warm ``function`` up (first-call costs: caches, encodings, connections) and return how
    many calls make a sample of about ``sample_s`` CPU seconds."""
    function()
    calls, spent = 4, 0.0
    while calls < MAX_CALLS_PER_SAMPLE:
        spent = time_calls(function, calls, settle=True) * calls
        if spent >= sample_s / 4:
            break
        calls *= 4
    return _calls_for(spent / calls, sample_s)


async def calibrate_async(function: Callable[[], Awaitable[object]], sample_s: float) -> int:
    await function()
    calls, spent = 4, 0.0
    while calls < MAX_CALLS_PER_SAMPLE:
        spent = await time_calls_async(function, calls, settle=True) * calls
        if spent >= sample_s / 4:
            break
        calls *= 4
    return _calls_for(spent / calls, sample_s)


Samples = dict[str, list[float]]


def summarize(samples: Samples) -> dict[str, Stats]:
    return {name: Stats.of(values) for name, values in samples.items()}


def interleave(candidates: Mapping[str, Callable[[], object]], mode: Mode) -> Samples:
    """CPU seconds per call of each candidate, one sample per interleaved round."""
    calls = {name: calibrate(function, mode.sample_s) for name, function in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for order in schedule(list(candidates), rounds=mode.rounds, budget_s=mode.section_budget_s):
        for name in order:
            gc.collect()  # no candidate pays for the garbage another one left
            samples[name].append(time_calls(candidates[name], calls[name], settle=True))
    return samples


async def interleave_async(
    candidates: Mapping[str, Callable[[], Awaitable[object]]], mode: Mode
) -> Samples:
    """``interleave`` for coroutine functions, all in the running event loop."""
    calls = {name: await calibrate_async(fn, mode.sample_s) for name, fn in candidates.items()}
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for order in schedule(list(candidates), rounds=mode.rounds, budget_s=mode.section_budget_s):
        for name in order:
            gc.collect()
            samples[name].append(await time_calls_async(candidates[name], calls[name], settle=True))
    return samples


def alternate(candidates: Mapping[str, Callable[[], object]], mode: Mode) -> Samples:
    """``interleave`` at the finest grain: in each round the candidates take turns call by
    call (in a rotating order) until each has spent about ``Mode.sample_s``, and a sample is a
    candidate's CPU seconds per call in that round. For comparing candidates whose difference
    is small next to the drift between ``interleave``'s samples; only for candidates that leave
    no work behind in other threads (each call is timed alone, with nothing settled)."""
    for function in candidates.values():
        function()  # first-call costs: caches, connections, encodings
    turns = _turns(list(candidates), mode)
    try:
        name = next(turns)
        while True:
            start = time.process_time()
            candidates[name]()
            name = turns.send(time.process_time() - start)
    except StopIteration as finished:
        samples: Samples = finished.value
        return samples


async def alternate_async(
    candidates: Mapping[str, Callable[[], Awaitable[object]]], mode: Mode
) -> Samples:
    """``alternate`` for coroutine functions, all in the running event loop."""
    for function in candidates.values():
        await function()
    turns = _turns(list(candidates), mode)
    try:
        name = next(turns)
        while True:
            start = time.process_time()
            await candidates[name]()
            name = turns.send(time.process_time() - start)
    except StopIteration as finished:
        samples: Samples = finished.value
        return samples


def _turns(names: list[str], mode: Mode) -> Generator[str, float, Samples]:
    """The order of ``alternate``'s calls, whichever way they are made: yields the name of the
    candidate to call next and takes the CPU seconds the call took; returns the samples."""
    samples: Samples = {name: [] for name in names}
    for order in schedule(names, rounds=mode.rounds, budget_s=mode.section_budget_s):
        gc.collect()
        spent = dict.fromkeys(names, 0.0)
        calls = 0
        while calls < MAX_CALLS_PER_SAMPLE and min(spent.values()) < mode.sample_s:
            calls += 1
            for name in order:
                spent[name] += yield name
        for name in names:
            samples[name].append(spent[name] / calls)
    return samples


def run_async(main: Callable[[], Awaitable[Any]], *, timeout_s: float) -> Any:
    """``asyncio.run(main())``, cancelled after ``timeout_s`` so no benchmark can hang."""

    async def bounded() -> Any:
        return await asyncio.wait_for(main(), timeout_s)

    return asyncio.run(bounded())


# --------------------------------------------------------------------------- results


def paired_ratios(samples: list[float], baseline: list[float]) -> list[float]:
    """Each round's figure over the baseline's figure in the same round. Drift that lasts
    longer than a round (another process on the machine, a CPU frequency change) cancels in
    the quotient, so these vary much less than the figures themselves."""
    if len(samples) != len(baseline):
        raise ValueError(
            f"cannot pair {len(samples)} samples with {len(baseline)} baseline samples; "
            "measure them in the same rounds"
        )
    return [value / base for value, base in zip(samples, baseline, strict=True)]


@dataclass(frozen=True)
class Row:
    """One figure: ``stats`` in seconds (or calls/s), shown scaled in ``unit``; ``ratio`` is
    the median over rounds of (this / baseline) in the same round."""

    label: str
    stats: Stats
    unit: str  # "us/call", "calls/s", "ms", ...
    scale: float = 1.0  # stats * scale = the figure in ``unit``
    ratio: Stats | None = None
    baseline: str | None = None
    note: str = ""

    @property
    def value(self) -> float:
        return self.stats.median * self.scale


@dataclass
class Section:
    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        label: str,
        samples: list[float],
        unit: str,
        *,
        scale: float = 1.0,
        baseline: list[float] | None = None,
        baseline_label: str | None = None,
        note: str = "",
    ) -> Row:
        """A row for ``samples`` (one per round), with its ratio to ``baseline`` (the same
        rounds) if given."""
        ratio = Stats.of(paired_ratios(samples, baseline)) if baseline is not None else None
        row = Row(label, Stats.of(samples), unit, scale, ratio, baseline_label, note)
        self.rows.append(row)
        return row

    def ratio(self, label: str) -> float:
        """The median paired ratio of the row called ``label``."""
        for row in self.rows:
            if row.label == label and row.ratio is not None:
                return row.ratio.median
        raise KeyError(f"no row {label!r} with a ratio in section {self.title!r}")


@dataclass(frozen=True)
class Target:
    """A goal for a ratio (a benchmark, not a test: it reports, it does not fail the run)."""

    goal: str  # e.g. "per-call CPU, Client vs raw httpx.Client"
    value: float | None  # None: could not be measured (``basis`` says why)
    limit: float
    higher_is_better: bool
    basis: str
    unit: str = ""  # "": a ratio, shown as x1.23; else the unit of an absolute figure ("MB")

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def line(self) -> str:
        verdict = {True: "PASS", False: "FAIL", None: "SKIP"}[self.passed]
        sign = ">=" if self.higher_is_better else "<="
        if self.unit:
            shown = f"{self.value:.2f} {self.unit}" if self.value is not None else "n/a"
            goal = f"{self.limit:g} {self.unit}"
        else:
            shown = f"x{self.value:.2f}" if self.value is not None else "n/a"
            goal = f"x{self.limit:g}"
        return f"[{verdict}] {self.goal}: {shown} (goal {sign} {goal}; {self.basis})"


def _figure(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(sections: list[Section]) -> str:
    """The sections as one plain-text table."""
    width = max((len(row.label) for s in sections for row in s.rows), default=20)
    lines = [
        f"  {'':<{width}}  {'median':>9} {'unit':<8} {'±IQR':>5} {'ratio':>6}",
        "  (±IQR: half the interquartile range over rounds, relative to the median; ratio: the "
        "median over rounds of this / the baseline in the same round)",
    ]
    for section in sections:
        lines.append("")
        lines.append(section.title)
        lines.append("-" * len(section.title))
        for row in section.rows:
            ratio = f"x{row.ratio.median:.2f}" if row.ratio is not None else ""
            spread = f"±{row.stats.spread * 50:.0f}%" if row.stats.samples > 1 else ""
            lines.append(
                f"  {row.label:<{width}}  {_figure(row.value):>9} {row.unit:<8} {spread:>5} "
                f"{ratio:>6}  {row.note}".rstrip()
            )
        lines.extend(f"  * {note}" for note in section.notes)
    return "\n".join(lines)


def revision() -> str:
    """The checkout measured: ``git describe`` of HEAD, "+dirty" with uncommitted changes, or
    "unknown" outside a git checkout. GIT_OPTIONAL_LOCKS=0 keeps git from refreshing the index,
    so a benchmark never takes a lock a concurrent git command needs."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "describe", "--always", "--dirty=+dirty"],
            cwd=root,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() or "unknown"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        # Other processes compete for the cores: figures from a loaded machine are lower.
        "load_average_1m": round(load[0], 2) if load else None,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
    }


def write_json(
    sections: list[Section], targets: list[Target], mode: Mode, started: dict[str, Any]
) -> Path:
    """Write the figures; ``started`` is ``machine()`` as it was when the run began."""
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"bench-{stamp}-{mode.name}.json"
    document = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": asdict(mode),
        "revision": revision(),
        "machine": started,
        "load_average_1m_at_end": machine()["load_average_1m"],
        "sections": [
            {
                "title": s.title,
                "notes": s.notes,
                "rows": [{**asdict(r), "value": r.value} for r in s.rows],
            }
            for s in sections
        ],
        "targets": [{**asdict(t), "passed": t.passed} for t in targets],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def run_alone(run: Callable[[Mode], tuple[list[Section], list[Target]]]) -> None:
    """What a measurement module does when run as a script: ``--quick`` or full mode, then
    its table and its target lines."""
    mode = QUICK if "--quick" in sys.argv else FULL
    sections, targets = run(mode)
    print(render(sections))
    for target in targets:
        print(target.line())
