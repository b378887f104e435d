"""guardedllm's benchmark suite, run on demand (never part of the tests).

    python benchmarks/run.py            # full: about 12 minutes on 2 cores
    python benchmarks/run.py --quick    # under ~2 minutes
    python benchmarks/run.py --only overhead,stream   # some of: overhead loopback stream
                                                     # import estimate telemetry routing memory
                                                     # soak state simulate tail
    nox -s bench -- --quick

Everything is offline: mock transports in process, and a loopback server (127.0.0.1) in a child
process for throughput. Each measurement compares candidates in interleaved rounds in one
process and reports medians and ratios against a baseline measured in the same run (see
``_harness.py``). The table and a pass/fail line per target are printed; the same figures go
to ``benchmarks/results/bench-<date>-<mode>.json`` (gitignored). A target that fails does not
change the exit status (these are benchmarks, not tests); a measurement that breaks does.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from _harness import FULL, QUICK, Section, Target, machine, render, revision, write_json

# Measurement name -> module; each module has ``run(mode) -> (sections, targets)`` and runs
# alone too. Imported when chosen, so one that cannot import does not stop the others.
MEASUREMENTS = {
    "overhead": "bench_overhead",
    "loopback": "bench_loopback",
    "stream": "bench_stream",
    "import": "bench_import",
    "estimate": "bench_estimate",
    "telemetry": "bench_telemetry",
    "routing": "bench_routing",
    "memory": "bench_memory",
    "soak": "bench_soak",
    "state": "bench_state",
    "simulate": "bench_simulate",
    "tail": "bench_tail",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds (~2 min)")
    parser.add_argument("--only", default="", help="comma-separated measurements to run")
    parser.add_argument(
        "--server",
        choices=["raw", "fake"],
        default="raw",
        help="loopback server: a minimal canned one (default), or guardedllm's FakeProvider",
    )
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args()

    mode = QUICK if args.quick else FULL
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(MEASUREMENTS)
    unknown = [name for name in chosen if name not in MEASUREMENTS]
    if unknown:
        parser.error(f"unknown measurement(s) {unknown}; choose from {list(MEASUREMENTS)}")

    info = machine()
    print(
        f"guardedllm benchmarks, {mode.name} mode, {time.strftime('%Y-%m-%d %H:%M')}: "
        f"Python {info['python']}, {info['cpus']} CPUs ({info['cpu_model'] or 'unknown CPU'}), "
        f"load average {info['load_average_1m']}; checkout {revision()}"
    )
    sections: list[Section] = []
    targets: list[Target] = []
    broken: list[str] = []
    started = time.monotonic()
    for name in chosen:
        print(f"  measuring {name}...", flush=True)
        began = time.monotonic()
        try:
            module = importlib.import_module(MEASUREMENTS[name])
            if name == "loopback":
                new_sections, new_targets = module.run(mode, args.server)
            else:
                new_sections, new_targets = module.run(mode)
        except Exception:  # one broken measurement must not hide the others' figures
            traceback.print_exc()
            broken.append(name)
            continue
        sections += new_sections
        targets += new_targets
        print(f"    done in {time.monotonic() - began:.0f} s", flush=True)

    print(render(sections))
    print()
    print("Targets (benchmarks, not tests):")
    for target in targets:
        print(f"  {target.line()}")
    print(
        f"\nTotal {time.monotonic() - started:.0f} s; load average {info['load_average_1m']} "
        f"at the start, {machine()['load_average_1m']} at the end."
    )
    if not args.no_json:
        print(f"Results: {write_json(sections, targets, mode, info)}")
    if broken:
        print(f"Measurements that broke (traceback above): {', '.join(broken)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
