"""`guardedllm smoke` against a local FakeProvider: staging passes, prod hits a 404.

Run it with ``python examples/smoke_against_fake.py`` (no keys, no network). It writes a config
whose providers point at the fake, then runs the real command line twice:

- ``--env staging``: every deployment answers, exit status 0;
- ``--env prod``: the alias ``chat`` names a deployment whose model id the fake does not serve,
  so that row shows 404 ModelNotFoundError and the command exits 1.

docs/cli.md shows this script's output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from guardedllm.testing import FakeProvider

# The vendor model ids the fake serves; any other id answers 404 model-not-found.
SERVED = {"gpt-4o-mini-2024-07-18", "claude-3-5-haiku-20241022"}

CONFIG = """
[providers.openai]
kind = "openai"
base_url = "{openai}"
api_key_env = "OPENAI_API_KEY"

[providers.anthropic]
kind = "anthropic"
base_url = "{anthropic}"
api_key_env = "ANTHROPIC_API_KEY"

[models.gpt-4o-mini]
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[models.gpt-next]
provider = "openai"
model = "gpt-next-preview"            # not served by the fake: answers 404
tokenizer = "o200k_base"
context_window = 128000
max_output_tokens = 16384
input_usd_per_mtok = 1.25
output_usd_per_mtok = 10.00

[models.claude-haiku]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
tokenizer = "o200k_base"
context_window = 200000
max_output_tokens = 8192
input_usd_per_mtok = 0.80
output_usd_per_mtok = 4.00

[routes.support]
fallback = ["gpt-4o-mini", "claude-haiku"]

[env.staging.aliases]
chat = "gpt-4o-mini"

[env.prod.aliases]
chat = "gpt-next"
"""


def smoke(config: Path, env: str) -> int:
    """Run `guardedllm smoke CONFIG --env ENV` as a user would; returns its exit status."""
    environ = {**os.environ, "OPENAI_API_KEY": "sk-fake-0123456789", "ANTHROPIC_API_KEY": "x"}
    command = [sys.executable, "-m", "guardedllm.cli", "smoke", str(config), "--env", env]
    print(f"$ guardedllm smoke {config.name} --env {env}")
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=60, check=False
    )
    print(done.stdout + done.stderr, end="")
    print(f"(exit status {done.returncode})\n")
    return done.returncode


def main() -> None:
    with FakeProvider(models=SERVED) as fake, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp, "guardedllm.toml")
        config.write_text(
            CONFIG.format(openai=fake.openai_base_url, anthropic=fake.anthropic_base_url)
        )
        staging, prod = smoke(config, "staging"), smoke(config, "prod")
    if (staging, prod) != (0, 1):
        sys.exit(f"expected exit statuses 0 (staging) and 1 (prod), got {staging} and {prod}")


if __name__ == "__main__":
    main()
