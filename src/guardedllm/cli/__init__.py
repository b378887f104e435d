"""The ``guardedllm`` command: check, models, smoke, estimate, simulate, compare and demo.

Each subcommand lives in its own module and returns an exit status; ``main`` only parses
arguments and dispatches. Errors the user can fix print as one clear message, not a traceback.
``simulate`` and ``compare`` are CI gates: they exit 0 when every gate passes, 1 when one fails
and 2 when their input cannot be used (so a broken pipeline is not read as a failed gate).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from guardedllm._version import __version__
from guardedllm.errors import GuardedLLMError
from guardedllm.registry._catalog import CATALOG_VENDORS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="guardedllm",
        description="Guarded LLM calls: validate configs, smoke-test deployments, estimate "
        "cost, simulate and compare releases, and see the guards at work.",
    )
    parser.add_argument("--version", action="version", version=f"guardedllm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate a config; exit 1 listing every problem",
        description="Validate CONFIG and every environment overlay. With two or more --env, "
        "also report every alias, route or model that reaches a different vendor model or "
        "provider between them (the staging/prod mismatch behind 404 storms).",
    )
    check.add_argument("config", metavar="CONFIG", help="path to a guardedllm TOML file")
    check.add_argument(
        "--env", action="append", default=[], metavar="NAME", help="environment (repeatable)"
    )
    check.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on warnings too (a route deployment no typical call can reach, a field "
        "that drifted from the model catalog)",
    )
    check.add_argument(
        "--max-catalog-age",
        type=_days,
        metavar="DAYS",
        help="warn when the bundled model catalog is more than DAYS days old",
    )

    models = commands.add_parser(
        "models",
        help="list the bundled model catalog a config's [models.NAME] entries inherit from",
        description="List the model catalog: each model's vendor ids, tokenizer, limits, "
        "prices (USD per million tokens) and capabilities, with the catalog's date and source.",
    )
    models.add_argument(
        "--vendor",
        choices=sorted(CATALOG_VENDORS),
        help="only the models of this provider kind",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")

    smoke = commands.add_parser(
        "smoke",
        help="send a 1-token prompt to every deployment an environment's aliases reach",
        description="For each alias and route of the environment, send a minimal prompt "
        "(max_tokens 1, one attempt, no fallback) to every deployment it may send to (fallbacks, "
        "rules, split arms, escalation targets, shadow candidates), and PING the [state] store "
        "if the config has one; print a table and exit 1 if any failed.",
    )
    smoke.add_argument("config", metavar="CONFIG")
    smoke.add_argument("--env", metavar="NAME", help="environment to test (default: the base)")
    smoke.add_argument(
        "--timeout", type=float, default=20.0, metavar="SECONDS", help="per deployment"
    )
    smoke.add_argument(
        "--all",
        action="store_true",
        dest="every_model",
        help="also call every model no alias or route reaches",
    )
    smoke.add_argument("--json", metavar="FILE", help="write the results as JSON")
    smoke.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML")

    estimate = commands.add_parser(
        "estimate",
        help="tokens, worst-case cost and context fit of a request, without sending it",
    )
    estimate.add_argument("config", metavar="CONFIG")
    estimate.add_argument("--model", required=True, metavar="NAME", help="alias, route or model")
    estimate.add_argument(
        "--messages", required=True, metavar="FILE.json", help="a JSON list of messages"
    )
    estimate.add_argument("--tools", metavar="FILE.json", help="a JSON list of tools")
    estimate.add_argument("--max-tokens", type=int, metavar="N")
    estimate.add_argument("--env", metavar="NAME")

    _add_simulate(commands)
    _add_compare(commands)

    commands.add_parser(
        "demo",
        help="a short scripted story against a built-in fake provider (no keys, no network)",
    )
    return parser


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days (0 or more)")
    return days


def _percent(text: str) -> float:
    """A gate's limit: a finite number (a percentage, or percentage points)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _add_simulate(commands: Any) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="replay a traffic log through two deployments' tokenizers, prices and limits",
        description="Replay the requests of traffic logs (recorder files, OpenAI request "
        "bodies, Batch API input files) through the baseline and candidate deployments, with "
        "no network: input tokens, expected and worst-case cost, requests that would not fit, "
        "peak-minute rpm/tpm against limits, projected spend. Exit 0 when every gate passes, "
        "1 when one fails, 2 on bad input.",
    )
    simulate.add_argument("config", metavar="CONFIG")
    simulate.add_argument("--traffic", required=True, nargs="+", action="extend", metavar="FILE")
    simulate.add_argument("--baseline", required=True, metavar="DEPLOYMENT")
    simulate.add_argument("--candidate", required=True, metavar="DEPLOYMENT")
    simulate.add_argument("--env", metavar="NAME")
    simulate.add_argument("--json", metavar="FILE", help="write the JSON document here")
    simulate.add_argument(
        "--html", metavar="FILE", help="write a self-contained HTML report with charts here"
    )
    simulate.add_argument(
        "--max-cost-increase", type=_percent, metavar="PCT", help="of the total expected cost"
    )
    simulate.add_argument(
        "--max-p99-tokens-increase", type=_percent, metavar="PCT", help="of p99 input tokens"
    )
    simulate.add_argument(
        "--min-headroom",
        type=_percent,
        metavar="PCT",
        help="the candidate's rpm and tpm headroom at the log's peak minute",
    )


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="per-arm statistics of recorded calls, with intervals and verdicts",
        description="Compare two arms of recorded calls (split arms as SPLIT:ARM or ARM, or "
        "deployments; shadow copies count for their deployment): error, fallback and escalation "
        "rates, latency and time to first chunk, tokens, cost, finish reasons, shadow "
        "agreement; each difference with its interval and a verdict (better, worse, "
        "inconclusive). Exit 0 when every gate passes, 1 when one fails, 2 on bad input.",
    )
    compare.add_argument("config", metavar="CONFIG")
    compare.add_argument("--traffic", required=True, nargs="+", action="extend", metavar="FILE")
    against = compare.add_mutually_exclusive_group(required=True)
    against.add_argument("--baseline", metavar="ARM")
    against.add_argument(
        "--against",
        metavar="RELEASE.json",
        help="a record saved with --save: its candidate arm is the baseline",
    )
    compare.add_argument("--candidate", required=True, metavar="ARM")
    compare.add_argument("--env", metavar="NAME")
    compare.add_argument("--json", metavar="FILE", help="write the JSON document here")
    compare.add_argument(
        "--html", metavar="FILE", help="write a self-contained HTML report with charts here"
    )
    compare.add_argument(
        "--save", metavar="RELEASE.json", help="write the before/after record of this release"
    )
    compare.add_argument("--max-p99-latency-increase", type=_percent, metavar="PCT")
    compare.add_argument("--max-cost-increase", type=_percent, metavar="PCT")
    compare.add_argument(
        "--max-error-rate-increase", type=_percent, metavar="PP", help="in percentage points"
    )


def _run_release(args: argparse.Namespace) -> int:
    if args.command == "simulate":
        from guardedllm.cli._simulate import run_simulate

        return run_simulate(
            args.config,
            traffic=args.traffic,
            baseline=args.baseline,
            candidate=args.candidate,
            env=args.env,
            json_path=args.json,
            html_path=args.html,
            max_cost_increase=args.max_cost_increase,
            max_p99_tokens_increase=args.max_p99_tokens_increase,
            min_headroom=args.min_headroom,
        )
    from guardedllm.cli._compare import run_compare

    return run_compare(
        args.config,
        traffic=args.traffic,
        baseline=args.baseline,
        candidate=args.candidate,
        against=args.against,
        env=args.env,
        json_path=args.json,
        html_path=args.html,
        save_path=args.save,
        max_p99_latency_increase=args.max_p99_latency_increase,
        max_cost_increase=args.max_cost_increase,
        max_error_rate_increase=args.max_error_rate_increase,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command in ("simulate", "compare"):
        try:
            return _run_release(args)
        except (GuardedLLMError, OSError) as exc:
            # Nothing was measured: 2, apart from the 1 of a failed gate.
            print(f"guardedllm {args.command}: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "check":
            from guardedllm.cli._check import run_check

            return run_check(
                args.config, args.env, strict=args.strict, max_catalog_age=args.max_catalog_age
            )
        if args.command == "models":
            from guardedllm.cli._models import run_models

            return run_models(vendor=args.vendor, as_json=args.json)
        if args.command == "smoke":
            from guardedllm.cli._smoke import run_smoke

            return run_smoke(
                args.config,
                env=args.env,
                timeout_s=args.timeout,
                every_model=args.every_model,
                json_path=args.json,
                junit_path=args.junit,
            )
        if args.command == "estimate":
            from guardedllm.cli._estimate import run_estimate

            return run_estimate(
                args.config,
                model=args.model,
                messages_path=args.messages,
                tools_path=args.tools,
                max_tokens=args.max_tokens,
                env=args.env,
            )
        from guardedllm.cli._demo import run_demo

        return run_demo()
    except GuardedLLMError as exc:
        print(f"guardedllm {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
