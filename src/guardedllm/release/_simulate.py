"""Replaying request shapes through deployments' tokenizers, prices and limits, offline.

Each request is counted once per distinct tokenizer (and vendor media rates) among the
deployments simulated, with the estimator the client uses before every call
(``count_chat_tokens``), and kept as a number per deployment; the request itself is dropped.
Estimates are made at the end, with ``estimate_request``, because a stand-in tokenizer's
calibration (the ratio of the vendor's input tokens to the tokenizer's count, learned from
recorded calls that deployment answered) is only known once the whole log has been read.

The figures per deployment are those the guards would see: input tokens as estimated
(calibrated and with the safety margin where the tokenizer is a stand-in), expected cost (the
recorded output where the log has it, else ``defaults.EXPECTED_OUTPUT_TOKENS``) and worst-case
cost, the requests the pre-flight checks would refuse (context window, a route's
``max_cost_usd``) or clamp (``max_tokens`` above the deployment's ``max_output_tokens``), and
the busiest minute's requests and tokens (input plus the output reserved, as the rate limiter
counts them) against the deployment's rpm and tpm.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping, Sequence

import attrs

from guardedllm import defaults
from guardedllm.errors import GuardedLLMError, InvalidRequestError, TrafficError
from guardedllm.estimate import (
    MediaTokenRates,
    Prices,
    TokenCount,
    count_chat_tokens,
    estimate_request,
    get_encoding,
)
from guardedllm.registry import Deployment, Registry
from guardedllm.release._stats import Distribution
from guardedllm.release._traffic import Skips, TrafficRequest
from guardedllm.routing._plan import EXACT_TOKENIZER_KINDS, MEDIA_RATES_BY_KIND, prices_of

__all__ = ["DeploymentResult", "Simulation", "SimulationPart", "SimulationResult"]

_MINUTE_S = 60.0
_DAY_S = 86_400.0
_MONTH_DAYS = 30.0


@attrs.frozen(kw_only=True)
class _Target:
    """A deployment as the simulation sees it."""

    deployment: Deployment
    exact: bool
    media: MediaTokenRates
    prices: Prices

    @property
    def key(self) -> tuple[str, MediaTokenRates]:
        return self.deployment.tokenizer, self.media


@attrs.define
class _Counts:
    """One deployment's per-request counts, in request order, before estimation."""

    counted: array[float] = attrs.field(factory=lambda: array("d"))
    exact: bytearray = attrs.field(factory=bytearray)
    fills_window: bytearray = attrs.field(factory=bytearray)
    calibration_actual: int = 0
    calibration_counted: int = 0
    calibration_samples: int = 0


@attrs.frozen(kw_only=True, eq=False)
class SimulationPart:
    """What a simulation has counted so far, in request order: a worker's share of a log, to
    be appended to the whole (``Simulation.extend``) in the order of the log."""

    counts: dict[str, _Counts]
    times: array[float]
    max_tokens: array[int]
    output: array[int]
    caps: array[float]


@attrs.frozen(kw_only=True, eq=False)
class DeploymentResult:
    """What one deployment would have done with the log.

    ``input_tokens``, ``cost_usd`` (expected) and ``worst_cost_usd`` summarise the per-request
    ``values`` (arrays in request order, kept for charts). ``over_context``, ``over_max_output``
    and ``over_cost_cap`` count requests refused (or clamped, for max output). ``peak_rpm`` and
    ``peak_tpm`` are the busiest minute's figures (None: the log has no timestamps), with
    ``per_minute`` (minute start, Unix seconds -> requests, tokens) for charts; headroom is
    ``(limit - peak) / limit`` in percent, None without a limit or a peak.
    """

    name: str
    vendor_model: str
    tokenizer: str
    exact_tokenizer: bool
    calibration: float
    calibration_samples: int
    input_tokens: Distribution
    cost_usd: Distribution
    worst_cost_usd: Distribution
    inexact: int
    over_context: int
    over_max_output: int
    over_cost_cap: int
    rpm_limit: int | None
    tpm_limit: int | None
    peak_rpm: int | None
    peak_tpm: int | None
    rpm_headroom_pct: float | None
    tpm_headroom_pct: float | None
    usd_per_day: float | None
    usd_per_month: float | None
    values: Mapping[str, array[float]] = attrs.field(repr=False)
    per_minute: Mapping[float, tuple[int, int]] = attrs.field(repr=False)


@attrs.frozen(kw_only=True, eq=False)
class SimulationResult:
    """The whole run: requests replayed, lines skipped (with the first reasons), the span of
    the timestamps (None: none had one) and each deployment's result."""

    requests: int
    skipped: int
    skip_reasons: tuple[str, ...]
    first_time: float | None
    last_time: float | None
    baseline: str
    candidate: str
    deployments: Mapping[str, DeploymentResult]


class Simulation:
    """Feed it requests with ``add``; ``finish`` estimates and summarises.

    ``names`` are deployments (``[models.NAME]``) of ``registry``; an unknown one is a
    ``TrafficError`` naming the known ones.
    """

    def __init__(self, registry: Registry, baseline: str, candidate: str) -> None:
        self._registry = registry
        self._targets: dict[str, _Target] = {}
        for name in (baseline, candidate):
            if name not in registry.models:
                known = ", ".join(sorted(registry.models)) or "none"
                raise TrafficError(
                    f"no deployment named {name!r} in the config (deployments are its "
                    f"[models.NAME] tables: {known}). Pass one of them."
                )
            deployment = registry.models[name]
            kind = registry.provider_of(deployment).kind
            self._targets[name] = _Target(
                deployment=deployment,
                exact=kind in EXACT_TOKENIZER_KINDS,
                media=MEDIA_RATES_BY_KIND.get(kind, MEDIA_RATES_BY_KIND["openai"]),
                prices=prices_of(deployment),
            )
        self._baseline, self._candidate = baseline, candidate
        self._counts = {name: _Counts() for name in self._targets}
        self._times: array[float] = array("d")
        self._max_tokens: array[int] = array("q")  # 0: not given
        self._output: array[int] = array("q")  # -1: not recorded
        self._caps: array[float] = array("d")  # nan: no cap
        self._cap_of: dict[str | None, float] = {}

    def add(self, request: TrafficRequest) -> str | None:
        """Count ``request`` on every deployment; returns why it cannot be (it is then not
        counted at all), or None."""
        counts: dict[tuple[str, MediaTokenRates], tuple[float, bool, bool]] = {}
        for target in self._targets.values():
            if target.key in counts:
                continue
            # An exact count has no media parts, so another vendor's media rates cannot change
            # it: deployments sharing a tokenizer share it (counting is most of the work).
            same = next((c for k, c in counts.items() if k[0] == target.key[0] and c[1]), None)
            try:
                counts[target.key] = same or self._count(request, target)
            except (InvalidRequestError, _Uncountable) as exc:
                return str(exc)
        for name, target in self._targets.items():
            counted, exact, fills = counts[target.key]
            tally = self._counts[name]
            tally.counted.append(counted)
            tally.exact.append(exact)
            tally.fills_window.append(fills)
            actual = request.vendor_input_tokens
            if request.deployment == name and actual and counted and not target.exact:
                tally.calibration_actual += actual
                tally.calibration_counted += int(counted)
                tally.calibration_samples += 1
        self._times.append(math.nan if request.time is None else request.time)
        self._max_tokens.append(request.max_tokens or 0)
        self._output.append(-1 if request.output_tokens is None else request.output_tokens)
        self._caps.append(self._cap(request.name))
        return None

    def part(self) -> SimulationPart:
        """The counts so far (not copied: this simulation is done with them)."""
        return SimulationPart(
            counts=self._counts,
            times=self._times,
            max_tokens=self._max_tokens,
            output=self._output,
            caps=self._caps,
        )

    def extend(self, part: SimulationPart) -> None:
        """Append the requests another simulation of the same deployments counted."""
        for name, counts in part.counts.items():
            mine = self._counts[name]
            mine.counted.extend(counts.counted)
            mine.exact.extend(counts.exact)
            mine.fills_window.extend(counts.fills_window)
            mine.calibration_actual += counts.calibration_actual
            mine.calibration_counted += counts.calibration_counted
            mine.calibration_samples += counts.calibration_samples
        self._times.extend(part.times)
        self._max_tokens.extend(part.max_tokens)
        self._output.extend(part.output)
        self._caps.extend(part.caps)

    def _count(self, request: TrafficRequest, target: _Target) -> tuple[float, bool, bool]:
        tokenizer = target.deployment.tokenizer
        if request.messages is not None:
            count = count_chat_tokens(
                request.messages,
                encoding=get_encoding(tokenizer),
                tools=request.tools,
                media_rates=target.media,
            )
            return float(count.tokens), count.exact, count.fills_window
        recorded = request.recorded_tokens.get(tokenizer)
        if recorded is not None:
            return float(recorded), request.recorded_exact.get(tokenizer, False), False
        if not request.recorded_tokens:
            raise _Uncountable("a request with neither messages nor recorded token counts")
        # Another tokenizer's count stands in, with the margin stand-in counts get.
        other = max(request.recorded_tokens.values())
        return float(math.ceil(other * (1 + defaults.ESTIMATE_SAFETY_MARGIN))), False, False

    def _cap(self, name: str | None) -> float:
        cap = self._cap_of.get(name)
        if cap is None:
            cap = math.nan
            if name is not None:
                try:
                    found = self._registry.resolve(name).max_cost_usd
                except GuardedLLMError:
                    found = None  # a name this config does not know has no route cap
                cap = math.nan if found is None else found
            self._cap_of[name] = cap
        return cap

    def finish(self, skips: Skips) -> SimulationResult:
        """Estimate every request on every deployment and summarise."""
        requests = len(self._times)
        if requests == 0:
            reasons = "".join(f"\n  {reason}" for reason in skips.reasons)
            raise TrafficError(
                f"no requests in the traffic ({skips.count} skipped lines){reasons}\nPass "
                "recorder files, OpenAI request bodies or Batch API input files."
            )
        timed = sorted(t for t in self._times if not math.isnan(t))
        first, last = (timed[0], timed[-1]) if timed else (None, None)
        results = {name: self._result(name) for name in self._targets}
        return SimulationResult(
            requests=requests,
            skipped=skips.count,
            skip_reasons=tuple(skips.reasons),
            first_time=first,
            last_time=last,
            baseline=self._baseline,
            candidate=self._candidate,
            deployments=results,
        )

    def _result(self, name: str) -> DeploymentResult:
        target = self._targets[name]
        deployment = target.deployment
        tally = self._counts[name]
        factor = 1.0
        if (
            not target.exact
            and tally.calibration_samples >= defaults.SIMULATE_MIN_CALIBRATION_SAMPLES
        ):
            factor = tally.calibration_actual / tally.calibration_counted
        inputs, costs, worst = array("d"), array("d"), array("d")
        rate_tokens: array[float] = array("d")
        inexact = over_context = over_output = over_cap = 0
        for index, counted in enumerate(tally.counted):
            asked = self._max_tokens[index]
            output = self._output[index]
            estimate = estimate_request(
                (),
                max_tokens=asked or None,
                deployment_name=name,
                tokenizer=deployment.tokenizer,
                context_window=deployment.context_window,
                max_output_tokens=deployment.max_output_tokens,
                prices=target.prices,
                calibration=factor,
                safety_margin=0.0 if target.exact else defaults.ESTIMATE_SAFETY_MARGIN,
                exact_tokenizer=target.exact,
                expected_output_tokens=None if output < 0 else output,
                count=TokenCount(
                    tokens=int(counted),
                    exact=bool(tally.exact[index]),
                    fills_window=bool(tally.fills_window[index]),
                ),
            )
            inputs.append(estimate.input_tokens)
            costs.append(estimate.cost_usd_expected)
            worst.append(estimate.cost_usd_max)
            rate_tokens.append(estimate.input_tokens + estimate.max_output_tokens)
            inexact += not estimate.exact
            over_context += not estimate.fits_context
            over_output += asked > deployment.max_output_tokens
            cap = self._caps[index]
            over_cap += estimate.cost_usd_max > cap  # False for nan: no cap
        per_minute = self._per_minute(rate_tokens)
        peak_rpm = max((n for n, _ in per_minute.values()), default=None)
        peak_tpm = max((t for _, t in per_minute.values()), default=None)
        per_day = self._per_day(costs)
        return DeploymentResult(
            name=name,
            vendor_model=deployment.model,
            tokenizer=deployment.tokenizer,
            exact_tokenizer=target.exact,
            calibration=factor,
            calibration_samples=tally.calibration_samples,
            input_tokens=Distribution.of(inputs),
            cost_usd=Distribution.of(costs),
            worst_cost_usd=Distribution.of(worst),
            inexact=inexact,
            over_context=over_context,
            over_max_output=over_output,
            over_cost_cap=over_cap,
            rpm_limit=deployment.rpm,
            tpm_limit=deployment.tpm,
            peak_rpm=peak_rpm,
            peak_tpm=peak_tpm,
            rpm_headroom_pct=_headroom(peak_rpm, deployment.rpm),
            tpm_headroom_pct=_headroom(peak_tpm, deployment.tpm),
            usd_per_day=per_day,
            usd_per_month=None if per_day is None else per_day * _MONTH_DAYS,
            values={"input_tokens": inputs, "cost_usd": costs, "worst_cost_usd": worst},
            per_minute=per_minute,
        )

    def _per_minute(self, tokens: Sequence[float]) -> dict[float, tuple[int, int]]:
        minutes: dict[float, list[int]] = {}
        for when, spent in zip(self._times, tokens, strict=True):
            if math.isnan(when):
                continue
            bucket = minutes.setdefault(math.floor(when / _MINUTE_S) * _MINUTE_S, [0, 0])
            bucket[0] += 1
            bucket[1] += int(spent)
        return {start: (n, t) for start, (n, t) in sorted(minutes.items())}

    def _per_day(self, costs: Sequence[float]) -> float | None:
        """Expected spend per day at the log's rate: the cost of the timed requests over the
        time they span (a minute at least: a log of one burst is not a rate of its own)."""
        timed = [
            (when, cost)
            for when, cost in zip(self._times, costs, strict=True)
            if not math.isnan(when)
        ]
        if not timed:
            return None
        span = max(_MINUTE_S, max(w for w, _ in timed) - min(w for w, _ in timed))
        return math.fsum(cost for _, cost in timed) / span * _DAY_S


class _Uncountable(Exception):
    """A request that cannot be counted for a deployment."""


def _headroom(peak: int | None, limit: int | None) -> float | None:
    if peak is None or limit is None:
        return None
    return (limit - peak) / limit * 100
