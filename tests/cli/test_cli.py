"""The ``guardedllm`` command: check, smoke, estimate and demo, run through ``main``."""

from __future__ import annotations

import datetime
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import guardedllm
import guardedllm.registry
from guardedllm.cli import main
from guardedllm.testing import FakeProvider
from redis_server import RedisServer
from support import ENVIRON, config_at, config_text

MISMATCH = """
[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[models.gpt-4o-mini-new]
provider = "openai"
model = "gpt-4o-mini-2025-01-01"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[env.staging.aliases]
chat = "gpt-4o-mini-new"

[env.prod.aliases]
chat = "gpt-4o-mini"
"""


def write(tmp_path: Path, text: str, name: str = "guardedllm.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"guardedllm {guardedllm.__version__}"


def test_check_passes_a_valid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    agreeing = MISMATCH.replace('chat = "gpt-4o-mini-new"', 'chat = "gpt-4o-mini"')
    path = write(tmp_path, agreeing)
    assert main(["check", path, "--env", "staging", "--env", "prod"]) == 0
    assert "staging and prod agree" in capsys.readouterr().out


# A typical call (1,000 input tokens, max_tokens 1,024) costs at most $0.000764 on
# gpt-4o-mini (1,000 x 0.15 + 1,024 x 0.60, per million) and $0.004976 on claude-haiku (its
# stand-in count 1,100 with the 10 % margin, x 0.80, + 1,024 x 4.00): a $0.002 cap leaves
# claude-haiku out of every such call. llama declares no "vision", which the rule needs.
UNREACHABLE = """
[routes.capped]
fallback = ["gpt-4o-mini", "claude-haiku"]
max_cost_usd = 0.002

[routes.pictures]
fallback = ["gpt-4o-mini"]

[[routes.pictures.rules]]
when = { capabilities = ["vision"] }
use = "mixed"

[routes.mixed]
fallback = ["llama", "gpt-4o-mini"]
"""


def test_check_warns_of_deployments_no_typical_call_reaches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, config_at("http://127.0.0.1:9") + UNREACHABLE)
    assert main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert "ok (" in out
    assert "2 warnings" in out
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 2
    capped, rule = warnings
    assert "warning: routes.capped.max_cost_usd: 'claude-haiku' is never used" in capped
    assert "$0.004976" in capped
    assert "gpt-4o-mini" not in capped
    assert "warning: routes.pictures.rules[0].use: 'llama' is never used" in rule
    assert "['vision']" in rule
    # --strict turns them into a failure.
    assert main(["check", path, "--strict"]) == 1
    assert "2 warnings in" in capsys.readouterr().err


def test_check_does_not_warn_when_the_cap_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fitting = UNREACHABLE.replace("max_cost_usd = 0.002", "max_cost_usd = 0.005")
    fitting = fitting.replace('["llama", "gpt-4o-mini"]', '["gpt-4o-mini"]')
    path = write(tmp_path, config_at("http://127.0.0.1:9") + fitting)
    assert main(["check", path, "--strict"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in out + err


def test_check_catches_a_staging_prod_alias_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, MISMATCH)
    assert main(["check", path]) == 0  # each environment is valid on its own
    assert main(["check", path, "--env", "staging", "--env", "prod"]) == 1
    err = capsys.readouterr().err
    assert "aliases.chat" in err
    assert "gpt-4o-mini-2025-01-01" in err
    assert "gpt-4o-mini-2024-07-18" in err


def test_check_lists_every_problem_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = (
        MISMATCH.replace("input_usd_per_mtok = 0.15\n", "input_usd_per_mtok = -1\n", 1)
        .replace('tokenizer = "o200k_base"', 'tokenizer = "o300k"', 1)
        .replace("context_window = 128000", "contxt_window = 128000", 1)
        + '\n[aliases]\nsupport = "gpt-5"\n'
    )
    assert main(["check", write(tmp_path, broken)]) == 1
    err = capsys.readouterr().err
    for key in (
        "models.gpt-4o-mini.input_usd_per_mtok",
        "models.gpt-4o-mini.tokenizer",
        "models.gpt-4o-mini.contxt_window",
        "aliases.support",
    ):
        assert key in err
    assert "did you mean" in err


def test_check_reports_an_alias_missing_from_one_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MISMATCH.replace('[env.prod.aliases]\nchat = "gpt-4o-mini"\n', "[env.prod]\n")
    assert main(["check", write(tmp_path, text)]) == 1
    assert "env.prod.aliases.chat" in capsys.readouterr().err


def test_check_reports_an_unreadable_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "/nonexistent/guardedllm.toml"]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize(
    "nested",
    ["[" * 100_000 + "]" * 100_000, "{ a = " * 100_000 + "1" + " }" * 100_000],
    ids=["arrays", "inline-tables"],
)
def test_check_refuses_a_config_nested_too_deep_without_a_traceback(
    tmp_path: Path, nested: str
) -> None:
    path = write(tmp_path, MISMATCH + f"\n[routes.deep]\nfallback = {nested}\n")
    result = subprocess.run(
        [sys.executable, "-m", "guardedllm.cli", "check", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "(syntax): nests tables or arrays more than 32 levels deep" in result.stderr
    assert path in result.stderr


def test_check_refuses_at_once_every_value_that_would_break_the_first_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        MISMATCH.replace(
            'kind = "openai"\n',
            'kind = "openai"\nheaders = { "X-Team:" = "search", X-Owner = "Zoë" }\n'
            'base_url = "https://api.openai.com/v1?key=sk-hidden-0123456789abcdef"\n',
        ).replace("output_usd_per_mtok = 0.60", "output_usd_per_mtok = 6e11", 1)
        + '\n[providers.google]\nkind = "gemini"\napi_version = "../v1"\n'
        '\n[models.flash]\nprovider = "google"\nmodel = "../../files"\n'
        'tokenizer = "o200k_base"\ncontext_window = 1000\nmax_output_tokens = 100\n'
        "input_usd_per_mtok = 0.1\noutput_usd_per_mtok = 0.4\n"
    )
    path = tmp_path / "guardedllm.toml"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # the BOM is read past, not reported

    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    for key in (
        'providers.openai.headers."X-Team:"',
        "providers.openai.headers.X-Owner",
        "providers.openai.base_url",
        "providers.google.api_version",
        "models.flash.model",
        "models.gpt-4o-mini.output_usd_per_mtok",
    ):
        assert f"  - {key}: " in err
    assert "6 config problems" in err
    assert "sk-hidden" not in err
    assert "Zoë" not in err


def smoke_config(tmp_path: Path, fake: FakeProvider) -> str:
    text = config_text(fake) + '\n[models.gpt-next]\nprovider = "openai"\nmodel = "gpt-next"\n'
    text += (
        'tokenizer = "o200k_base"\ncontext_window = 128000\nmax_output_tokens = 4096\n'
        "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n"
        '\n[env.prod.aliases]\nnext = "gpt-next"\n[env.staging.aliases]\nnext = "gpt-4o-mini"\n'
    )
    return write(tmp_path, text)


def test_smoke_reports_a_404_deployment_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    known = {
        "gpt-4o-mini-2024-07-18",
        "prod-gpt-4o",
        "llama-3.1-8b-instruct",
        "claude-3-5-haiku-20241022",
        "gemini-2.0-flash",
    }
    with FakeProvider(models=known) as fake:
        path = smoke_config(tmp_path, fake)
        assert main(["smoke", path, "--env", "staging"]) == 0
        staging = capsys.readouterr()
        assert main(["smoke", path, "--env", "prod"]) == 1
        prod = capsys.readouterr()
        sent = [r.json for r in fake.requests if r.json]
    assert "all 3 deployment(s) answered" in staging.out
    (row,) = [line for line in prod.out.splitlines() if line.startswith("next ")]
    assert "gpt-next" in row
    assert "404" in row
    assert "ModelNotFoundError" in row
    assert "gpt-next" in prod.err
    assert "1 deployment(s) failed" in prod.err
    # Every smoke call is minimal: one output token.
    assert all(
        body.get("max_completion_tokens", body.get("max_tokens", 1)) == 1
        or body.get("generationConfig", {}).get("maxOutputTokens") == 1
        for body in sent
    )


def test_smoke_names_the_variable_of_a_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    missing = "TEST_ANTHROPIC_KEY"
    monkeypatch.delenv(missing)
    with FakeProvider() as fake:
        path = smoke_config(tmp_path, fake)
        assert main(["smoke", path, "--env", "staging"]) == 1
    failed = capsys.readouterr().err
    # The table says AuthenticationError; the reason under it says which variable to set.
    (reason,) = [line for line in failed.splitlines() if missing in line]
    assert "environment variable" in reason


def test_estimate_prints_tokens_cost_and_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider
) -> None:
    path = write(tmp_path, config_text(fake_provider))
    messages = tmp_path / "messages.json"
    messages.write_text(json.dumps([{"role": "user", "content": "hello world"}]))
    assert main(["estimate", path, "--model", "chat", "--messages", str(messages)]) == 0
    out = capsys.readouterr().out
    assert "deployment         gpt-4o-mini" in out
    assert "input_tokens       " in out
    assert "fits_context       true" in out
    assert "exact              true" in out
    assert fake_provider.requests == []


def test_estimate_reports_a_bad_messages_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_provider: FakeProvider
) -> None:
    path = write(tmp_path, config_text(fake_provider))
    bad = tmp_path / "bad.json"
    bad.write_text("[{")
    assert main(["estimate", path, "--model", "chat", "--messages", str(bad)]) == 1
    assert "cannot read messages" in capsys.readouterr().err


def test_demo_tells_its_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "attempt  gpt-4o-mini #2  503" in out
    assert "attempt  claude-haiku #1  200" in out
    assert "attempt  gpt-next #1  404" in out
    assert "RateLimitedError" in out
    assert "BudgetExceededError" in out
    assert "ContextWindowExceededError" in out
    assert out.count("sent     0 HTTP request(s)") == 2


def test_the_installed_command_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "guardedllm.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for command in ("check", "smoke", "estimate", "demo"):
        assert command in result.stdout


# --------------------------------------------------------------------------- budgets and state

FLEET = """
[budgets.daily]
scope = "global"
window = "day"
limit_usd = 50

[budgets.support]
scope = "route"
window = "hour"
limit_usd = 2
match = "gpt-4o-mini"

[state]
url = "redis://redis.internal:6379/0"
password_env = "REDIS_PASSWORD"
on_error = "refuse"

[env.staging.budgets.daily]
limit_usd = 5
"""


def test_check_passes_budgets_and_a_state_store_without_contacting_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)  # check runs where no secret is set
    path = write(tmp_path, MISMATCH + FLEET)
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert "2 budgets; state store redis://redis.internal:6379/0" in out


def test_check_lists_every_budget_and_state_problem_with_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = (
        FLEET.replace('scope = "global"', 'scope = "globl"')
        .replace('match = "gpt-4o-mini"', 'match = "gpt-4o-mni"')
        .replace("limit_usd = 5\n", "limit_usd = -5\n")
        .replace('url = "redis://redis', 'url = "redis://:hunter2-secret@redis')
        .replace('on_error = "refuse"', 'on_error = "refuse"\ntimeout_s = 60')
    )
    assert main(["check", write(tmp_path, MISMATCH + broken)]) == 1
    err = capsys.readouterr().err
    for key in (
        "budgets.daily.scope",
        "budgets.support.match",
        "env.staging.budgets.daily.limit_usd",
        "state.url",
        "state.timeout_s",
    ):
        assert f"  - {key}: " in err
    assert "5 config problems" in err
    assert "hunter2" not in err


KNOWN_MODELS = {
    "gpt-4o-mini-2024-07-18",
    "prod-gpt-4o",
    "llama-3.1-8b-instruct",
    "claude-3-5-haiku-20241022",
    "gemini-2.0-flash",
}


def smoke_store(tmp_path: Path, fake: FakeProvider, state: str) -> str:
    return write(tmp_path, config_text(fake) + f"\n[state]\n{state}\n")


def run_smoke(path: str, monkeypatch: pytest.MonkeyPatch) -> subprocess.CompletedProcess[str]:
    """``guardedllm smoke`` in a process of its own, with the fake's keys in its environment."""
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    return subprocess.run(
        [sys.executable, "-m", "guardedllm.cli", "smoke", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def state_row(output: str) -> str:
    (row,) = [line for line in output.splitlines() if line.startswith("[state] ")]
    return row


def test_smoke_pings_the_state_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    # A budget smaller than any call: smoke calls test deployments, no budget applies to them.
    tiny = '\n[budgets.daily]\nscope = "global"\nwindow = "day"\nlimit_usd = 1e-9\n'
    with FakeProvider(models=KNOWN_MODELS) as fake:
        state = f'url = "{redis_server.url}"\n{tiny}'
        done = run_smoke(smoke_store(tmp_path, fake, state), monkeypatch)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        rf"\[state\] +{re.escape(redis_server.url)} +PONG +\d+ ms +ok", state_row(done.stdout)
    )
    assert "all 3 deployment(s) and the [state] store answered" in done.stdout


def test_smoke_fails_when_the_store_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as refusing:  # bound, never listening: connections are refused
        refusing.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{refusing.getsockname()[1]}/0"
        with FakeProvider(models=KNOWN_MODELS) as fake:
            done = run_smoke(smoke_store(tmp_path, fake, f'url = "{url}"'), monkeypatch)
    assert done.returncode == 1
    assert state_row(done.stdout).endswith("FAIL StateError")
    assert "the [state] store of the base config failed its PING" in done.stderr
    assert "could not be reached" in done.stderr
    assert "deployment(s) and the [state] store answered" not in done.stdout


def test_smoke_fails_when_the_password_variable_is_missing_or_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start_redis_server: Any
) -> None:
    server: RedisServer = start_redis_server("--requirepass", "right-horse-battery")
    state = f'url = "{server.url}"\npassword_env = "SMOKE_REDIS_PASSWORD"'
    with FakeProvider(models=KNOWN_MODELS) as fake:
        path = smoke_store(tmp_path, fake, state)
        monkeypatch.delenv("SMOKE_REDIS_PASSWORD", raising=False)
        missing = run_smoke(path, monkeypatch)
        monkeypatch.setenv("SMOKE_REDIS_PASSWORD", "wrong-horse-battery")
        wrong = run_smoke(path, monkeypatch)
        monkeypatch.setenv("SMOKE_REDIS_PASSWORD", "right-horse-battery")
        right = run_smoke(path, monkeypatch)
    assert missing.returncode == 1
    assert state_row(missing.stdout).endswith("FAIL ConfigError")
    assert "'SMOKE_REDIS_PASSWORD' is not set" in missing.stderr
    assert wrong.returncode == 1
    assert state_row(wrong.stdout).endswith("FAIL StateError")
    assert "refused the credentials" in wrong.stderr
    assert right.returncode == 0, right.stderr
    for done in (missing, wrong, right):
        assert "horse-battery" not in done.stdout + done.stderr


SHADOWED = """
[routes.shadowed]
fallback = ["gpt-4o-mini"]
escalate_to = "azure-4o"
shadow = { deployment = "claude-haiku", sample = 0.1 }
"""


def test_smoke_calls_escalation_targets_and_shadow_candidates_and_with_all_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    with FakeProvider() as fake:
        path = write(tmp_path, config_text(fake) + SHADOWED)
        assert main(["smoke", path]) == 0
        rows = capsys.readouterr().out.splitlines()
        assert main(["smoke", path, "--all"]) == 0
        every = capsys.readouterr().out.splitlines()
    shadowed = [row.split()[1] for row in rows if row.startswith("shadowed ")]
    assert shadowed == ["gpt-4o-mini", "azure-4o", "claude-haiku"]
    # llama is in no alias or route of this config: only --all calls it, under its own name.
    assert not any(row.split()[1:2] == ["llama"] for row in rows[2:])
    assert any(row.split()[:2] == ["llama", "llama"] for row in every)


def test_smoke_writes_json_and_junit_for_ci(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TEST_ANTHROPIC_KEY")
    report, junit = tmp_path / "smoke.json", tmp_path / "smoke.xml"
    with FakeProvider() as fake:
        path = smoke_config(tmp_path, fake)
        code = main(
            ["smoke", path, "--env", "staging", "--json", str(report), "--junit", str(junit)]
        )
    assert code == 1
    table = capsys.readouterr().out
    # The table names the variable to set, not only the error's class.
    assert "FAIL AuthenticationError (TEST_ANTHROPIC_KEY not set or malformed)" in table
    document = json.loads(report.read_text())
    assert document["ok"] is False
    failed = [r for r in document["results"] if not r["ok"]]
    assert {r["deployment"] for r in failed} == {"claude-haiku"}
    assert all("TEST_ANTHROPIC_KEY" in r["reason"] for r in failed)
    assert all(r["status"] == "200" for r in document["results"] if r["ok"])
    suite = ET.fromstring(junit.read_text())
    cases = suite.findall("testcase")
    assert suite.get("tests") == str(len(document["results"])) == str(len(cases))
    assert suite.get("failures") == str(len(failed))
    failures = [case for case in cases if case.find("failure") is not None]
    assert {case.get("name") for case in failures} == {"claude-haiku"}
    assert all(
        ENVIRON["TEST_OPENAI_KEY"] not in text for text in (report.read_text(), junit.read_text())
    )


# --------------------------------------------------------------------------- the model catalog

CATALOGUED = """
[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[providers.local]
kind = "openai-compatible"
base_url = "http://127.0.0.1:8000/v1"

[models.mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"

[models.llama]
provider = "local"
model = "llama3.2"
tokenizer = "cl100k_base"
context_window = 8192
max_output_tokens = 2048
input_usd_per_mtok = 0
output_usd_per_mtok = 0
"""


def test_check_lists_unchecked_models_without_failing_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CATALOGUED)
    assert main(["check", path, "--strict"]) == 0
    out, err = capsys.readouterr()
    assert f"guardedllm check: {path}: ok (2 providers, 2 models, 0 aliases, 0 routes)" in out
    assert (
        "guardedllm check: unchecked: models.llama.model: 'llama3.2' is served by an "
        "openai-compatible provider, which the model catalog does not cover"
    ) in out
    assert "mini" not in out
    assert err == ""


def test_check_warns_of_drift_from_the_catalog_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The seed's failure: a model swap that kept the old family's tokenizer, in prod only.
    drifted = CATALOGUED + '\n[env.prod.models.mini]\nmodel = "gpt-4o"\ntokenizer = "cl100k_base"\n'
    drifted += "context_window = 256000\n"
    path = write(tmp_path, drifted)
    assert main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert "; 2 warnings)" in out
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert warnings[0].startswith(
        "guardedllm check: warning: env.prod.models.mini.tokenizer: is 'cl100k_base', but "
        "'gpt-4o' counts with 'o200k_base' per the model catalog (2026-12-05, "
    )
    assert warnings[1].startswith(
        "guardedllm check: warning: env.prod.models.mini.context_window: is 256,000, above "
        "the 128,000 of 'gpt-4o'"
    )
    assert main(["check", path, "--strict"]) == 1
    assert "2 warnings in" in capsys.readouterr().err


def test_check_warns_of_an_old_catalog_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from guardedllm.cli._check import run_check

    path = write(tmp_path, CATALOGUED)
    later = guardedllm.registry.load_catalog().date + datetime.timedelta(days=91)
    assert run_check(path, [], max_catalog_age=91, today=later) == 0
    assert "warning" not in capsys.readouterr().err
    assert run_check(path, [], strict=True, max_catalog_age=90, today=later) == 1
    err = capsys.readouterr().err
    assert "warning: (catalog): the model catalog is dated 2026-12-05, 91 days ago" in err
    # Through the command line, dated today: a catalog is never older than 100 years.
    assert main(["check", path, "--strict", "--max-catalog-age", "36500"]) == 0
    with pytest.raises(SystemExit):
        main(["check", path, "--max-catalog-age", "-1"])
    assert "not a whole number of days" in capsys.readouterr().err


def test_models_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--vendor", "anthropic"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("model catalog of 2026-12-05: LiteLLM 1.110.2 model map")
    assert re.search(r"anthropic +claude-haiku-4-5 \(\+1\) +chat +o200k_base \(stand-in\)", out)
    assert "gpt-4o" not in out
    assert main(["models", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["catalog"]["date"] == "2026-12-05"
    [mini] = [
        m
        for m in document["models"]
        if m["vendor"] == "openai" and "gpt-4o-mini-2024-07-18" in m["ids"]
    ]
    assert (mini["input_usd_per_mtok"], mini["cached_input_usd_per_mtok"]) == (0.15, 0.075)
    assert mini["capabilities"] == ["json", "streaming", "tools", "vision"]
    assert {m["vendor"] for m in document["models"]} == {
        "openai",
        "azure-openai",
        "anthropic",
        "gemini",
    }


def test_smoke_embeds_one_word_on_an_embedding_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    with FakeProvider() as fake:
        text = config_text(fake).replace("[aliases]\n", '[aliases]\nembed = "vectors"\n')
        text += '\n[models.vectors]\nprovider = "openai"\nmodel = "text-embedding-3-small"\n'
        assert main(["smoke", write(tmp_path, text)]) == 0
        out = capsys.readouterr().out
        sent = [r.json for r in fake.requests if r.endpoint == "embeddings"]
    (row,) = [line for line in out.splitlines() if line.startswith("embed ")]
    assert "vectors" in row
    assert "200" in row
    assert [body["input"] for body in sent] == ["ping"]
