"""The release checklist for a model swap, end to end, against a local FakeProvider (no keys,
no network): record real traffic, simulate the candidate on it, put it on a split, compare the
arms, save the release record, and gate the next release against it in CI.

Run it with ``python examples/release_checklist.py``. Each step prints the command it stands
for and what that command prints; docs/release-safety.md walks through the same steps.
"""

from __future__ import annotations

import importlib.util
import random
import tempfile
from pathlib import Path

import guardedllm
from guardedllm.cli import main as guardedllm_command
from guardedllm.testing import FakeProvider

BASE = Path(__file__).with_name("guardedllm.toml").read_text()
ENVIRON = {"OPENAI_API_KEY": "sk-example", "ANTHROPIC_API_KEY": "sk-ant-example"}
QUESTIONS = [
    "Where is my parcel? Order {n}.",
    "Can I change the delivery address of order {n} to my office?",
    "Order {n} arrived damaged. The box was crushed and the lamp inside is broken; what now?",
    "How long do refunds take for order {n}, paid by card, returned yesterday?",
]
# Route and recorder for each stage of the release; {records} is filled in per stage.
BEFORE = """
[routes.support]
fallback = ["gpt-4o-mini"]

[record]
path = "{records}"
content = "full"
"""
TRIAL = """
[routes.support]                 # half the users on the candidate, sticky per user
split = {{ "gpt-4o-mini" = 1, "claude-haiku" = 1 }}

[record]
path = "{records}"
content = "full"
"""


def config(fake: FakeProvider, folder: Path, name: str, routes: str) -> str:
    """A config file for one stage: the example config pointed at the fake, with ``routes``."""
    text = BASE.replace("https://api.openai.com/v1", fake.openai_base_url)
    text = text.replace("https://api.anthropic.com", fake.anthropic_base_url)
    path = folder / f"{name}.toml"
    path.write_text(text + routes.format(records=folder / name))
    return str(path)


def traffic(path: str, calls: int, seed: int) -> list[str]:
    """``calls`` support questions from many users through the route, recorded; the files."""
    rng = random.Random(seed)
    with guardedllm.Client.from_config(path, environ=ENVIRON) as client:
        for n in range(calls):
            question = rng.choice(QUESTIONS).format(n=4000 + n)
            client.chat.completions.create(
                model="support",
                messages=[{"role": "user", "content": question}],
                max_tokens=300,
                user=f"user-{rng.randrange(10_000)}",
            )
    records = Path(path).with_suffix("")
    return sorted(str(file) for file in records.glob("*.jsonl"))


def run(*argv: str) -> int:
    print(f"\n$ guardedllm {' '.join(argv)}")
    status = guardedllm_command(list(argv))
    print(f"(exit status {status})")
    return status


def main() -> None:
    html = importlib.util.find_spec("matplotlib") is not None  # the report extra
    with FakeProvider() as fake, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        fake.script(model="gpt-4o-mini-2024-07-18", latency=0.004)
        fake.script(model="claude-3-5-haiku-20241022", latency=0.006)

        print("1. Record what production sends today ([record] in the config).")
        before = config(fake, folder, "before", BEFORE)
        recorded = traffic(before, calls=80, seed=1)

        print("\n2. Simulate the candidate on that traffic: tokens, cost, fit, peak rates.")
        extra = ["--html", str(folder / "simulate.html")] if html else []
        run(
            "simulate", before, "--traffic", *recorded,
            "--baseline", "gpt-4o-mini", "--candidate", "claude-haiku",
            "--max-p99-tokens-increase", "25", *extra,
        )  # fmt: skip

        print("\n3. Put the candidate on a split with real users, and record the trial.")
        trial = config(fake, folder, "trial", TRIAL)
        trial_records = traffic(trial, calls=120, seed=2)

        print("\n4. Compare the arms, and save the before/after record with the release.")
        release = folder / "release.json"
        status = run(
            "compare", trial, "--traffic", *trial_records,
            "--baseline", "gpt-4o-mini", "--candidate", "claude-haiku",
            "--max-error-rate-increase", "5", "--save", str(release),
        )  # fmt: skip
        assert status == 0, "the trial passed its gates"

        print("\n5. The next release, in CI: the candidate got slower; the gate stops it.")
        fake.reset()  # forget the scripted answers: the candidate now takes 80 ms, not 6
        fake.script(model="gpt-4o-mini-2024-07-18", latency=0.004)
        fake.script(model="claude-3-5-haiku-20241022", latency=0.080)
        later = traffic(config(fake, folder, "later", TRIAL), calls=60, seed=3)
        status = run(
            "compare", trial, "--traffic", *later,
            "--against", str(release), "--candidate", "claude-haiku",
            "--max-p99-latency-increase", "50",
        )  # fmt: skip
        assert status == 1, "a candidate ten times slower fails the p99 gate"
        print("\nCI fails the build here: the p99 latency gate caught the slower candidate.")


if __name__ == "__main__":
    main()
