"""The documentation runs: its examples, its command output, its names.

Markers, an HTML comment on the line before a fenced block in docs/*.md or README.md:

- ``<!-- runnable -->`` before a ```python block: a complete script; it must exit 0.
- ``<!-- runnable: pytest -->`` before a ```python block: a test module; pytest must pass it.
- ``<!-- file: NAME -->`` before any block: its text is written to NAME in the scratch
  directory where that page's blocks run (a config or a prompt the next blocks use).
- ``<!-- console -->`` before a ```console block: each ``$ COMMAND`` line is run there and
  must print what follows it, up to the next ``$`` line.
- ``<!-- output-of: COMMAND -->`` before a ```console block: the block is COMMAND's output.

Commands start with ``guardedllm`` or ``python`` and run with this interpreter. Output is
compared after masking what changes from run to run: latencies, ports, column padding.
Every block runs offline, without API keys, in a scratch directory holding a copy of
examples/; a block that calls a model starts its own FakeProvider.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import attrs
import pytest

import guardedllm
import guardedllm.errors
import guardedllm.testing

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]
USER_PAGES = [
    DOCS / name for name in ("cli.md", "config.md", "errors.md", "guards.md", "testing.md")
]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# One command or script; a test may run several, so it gets a longer pytest-timeout of its own.
TIMEOUT_S = 120
SLOW = pytest.mark.timeout(4 * TIMEOUT_S)

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARKER = re.compile(r"^<!--\s*([\w-]+)(?::\s*(.*?))?\s*-->\s*$")
_FILE_NAME = re.compile(r"\.(toml|json|md|py)$")
_SECRET_VARIABLES = re.compile(r".*(API_KEY|_TOKEN|_SECRET).*")


@attrs.frozen(kw_only=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    marker: str | None  # "runnable", "file", "console", "output-of" or None
    argument: str  # what follows "marker:" ("pytest", a file name, a command) or ""
    text: str

    @property
    def name(self) -> str:
        return f"{self.page.name}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the marker comment right above it, if any."""
    blocks: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        marker = _MARKER.match(lines[index - 1]) if index > 0 else None
        blocks.append(
            Block(
                page=page,
                line=index + 1,
                language=opening[1],
                marker=marker[1] if marker else None,
                argument=(marker[2] or "") if marker else "",
                text="\n".join(lines[index + 1 : end]) + "\n",
            )
        )
        index = end + 1
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.marker == "runnable" and b.language == "python"]
CONSOLE_BLOCKS = [b for b in ALL_BLOCKS if b.marker in ("console", "output-of")]


def _ids(blocks: list[Block]) -> list[str]:
    return [b.name for b in blocks]


def offline_environ() -> dict[str, str]:
    """This process's environment without anything that looks like a credential."""
    return {k: v for k, v in os.environ.items() if not _SECRET_VARIABLES.fullmatch(k)}


def scratch_for(page: Path, tmp_path: Path) -> Path:
    """A directory with the page's ``file:`` blocks and a copy of examples/."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for block in read_blocks(page):
        if block.marker == "file":
            (tmp_path / block.argument).write_text(block.text, encoding="utf-8")
    return tmp_path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env=offline_environ(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def argv_of(command: str) -> list[str]:
    """The argv for a documented ``guardedllm ...`` or ``python ...`` command."""
    words = shlex.split(command)
    if words[0] == "guardedllm":
        return [sys.executable, "-m", "guardedllm.cli", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"documented commands start with guardedllm or python: {command!r}")


def normalized(output: str) -> str:
    """``output`` without what differs between runs: latencies, ports, column padding."""
    text = re.sub(r"\b\d+ ms\b", "N ms", output)
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"-{2,}", "--", text)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(lines).strip()


# --------------------------------------------------------------------------- the markers


def test_every_user_page_has_checked_examples() -> None:
    # A page whose markers were all mistyped would silently check nothing.
    for page in USER_PAGES:
        checked = [b for b in read_blocks(page) if b.marker in ("runnable", "console", "output-of")]
        assert checked, f"{page.name} has no runnable or console block"
    known = {"runnable", "file", "console", "output-of"}
    for block in [b for page in [*USER_PAGES, ROOT / "README.md"] for b in read_blocks(page)]:
        assert block.marker in known | {None}, f"{block.name}: unknown marker {block.marker!r}"
        if block.marker == "runnable":
            assert block.language == "python", f"{block.name}: runnable blocks are python"
            assert block.argument in ("", "pytest"), f"{block.name}: {block.argument!r}"
        if block.marker in ("console", "output-of"):
            assert block.language == "console", f"{block.name}: mark console blocks ```console"


def test_the_block_reader_finds_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Intro\n\n<!-- runnable -->\n```python\nprint(1)\n```\n\n```python\nx = ...\n```\n"
        "<!-- file: a.toml -->\n```toml\n[x]\n```\n"
    )
    blocks = read_blocks(page)
    assert [(b.marker, b.argument, b.language, b.text) for b in blocks] == [
        ("runnable", "", "python", "print(1)\n"),
        (None, "", "python", "x = ...\n"),
        ("file", "a.toml", "toml", "[x]\n"),
    ]


def test_normalized_masks_only_what_varies() -> None:
    assert normalized("a  3 ms\n--------  x\nhttp://127.0.0.1:40211/v1") == (
        "a N ms\n-- x\nhttp://127.0.0.1:PORT/v1"
    )
    assert normalized("cost $0.000008") != normalized("cost $0.000009")


# --------------------------------------------------------------------------- running them


@SLOW
@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_ids(PYTHON_BLOCKS))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    scratch = scratch_for(block.page, tmp_path)
    if block.argument == "pytest":
        module = scratch / "test_doc_block.py"
        module.write_text(block.text, encoding="utf-8")
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
        done = run([*argv, str(module)], scratch)
    else:
        script = scratch / "doc_block.py"
        script.write_text(block.text, encoding="utf-8")
        done = run([sys.executable, str(script)], scratch)
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"


def _console_runs(block: Block) -> list[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    if block.marker == "output-of":
        return [(block.argument, block.text)]
    runs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        else:
            assert runs, f"{block.name}: a console block starts with a `$ command` line"
            runs[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in runs]


@SLOW
@pytest.mark.parametrize("block", CONSOLE_BLOCKS, ids=_ids(CONSOLE_BLOCKS))
def test_console_block_shows_real_output(block: Block, tmp_path: Path) -> None:
    scratch = scratch_for(block.page, tmp_path)
    for command, expected in _console_runs(block):
        done = run(argv_of(command), scratch)
        # A terminal shows stdout as it is printed; the commands print stderr last.
        assert normalized(done.stdout + done.stderr) == normalized(expected), command


@SLOW
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_runs_offline_without_keys(example: Path, tmp_path: Path) -> None:
    done = run([sys.executable, str(example)], tmp_path)
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"


# --------------------------------------------------------------------------- README and CI


def test_readme_shows_the_test_command_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r'^step bash -c "(.+)"$', ci, flags=re.MULTILINE)
    assert commands == ["python -m pip install -e '.[dev]' && python -m pytest"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shell_lines = [
        line
        for block in read_blocks(ROOT / "README.md")
        if block.language == "sh"
        for line in block.text.splitlines()
    ]
    assert any(line.endswith(f"&& {commands[0]}") for line in shell_lines), (
        "README.md's shell blocks must run exactly the test command .ci/run runs"
    )
    assert commands[0] in readme


def test_ci_and_nox_build_the_site_strictly_with_every_page_in_its_navigation() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^step build_docs$", ci, flags=re.MULTILINE)
    assert "mkdocs build --strict" in ci
    noxfile = (ROOT / "noxfile.py").read_text(encoding="utf-8")
    assert '"mkdocs", "build", "--strict"' in noxfile
    # mkdocs --strict refuses a page left out of the navigation; say so here too, where a
    # contributor without the docs extra runs the tests.
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r"^ *- (?:[^:\n]+: )?(\S+\.md)$", config, flags=re.MULTILINE))
    pages = {str(page.relative_to(DOCS)) for page in DOCS.rglob("*.md")}
    assert sorted(pages - in_nav) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(in_nav - pages) == [], "mkdocs.yml's nav names pages that do not exist"


# --------------------------------------------------------------------------- public names


def _docs_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in DOCS.glob("*.md"))


def _mentioned(name: str, text: str) -> bool:
    """``name`` appears as a whole word (``Client``, ``guardedllm.Client``)."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", text) is not None


@pytest.mark.parametrize(
    ("module", "page"),
    [
        (guardedllm, None),
        (guardedllm.errors, "errors.md"),
        (guardedllm.testing, "testing.md"),
    ],
    ids=["guardedllm", "guardedllm.errors", "guardedllm.testing"],
)
def test_every_public_name_is_importable_and_documented(
    module: ModuleType, page: str | None
) -> None:
    text = _docs_text() if page is None else (DOCS / page).read_text(encoding="utf-8")
    names: list[str] = vars(module)["__all__"]
    assert names, "a public module lists its names in __all__"
    for name in names:
        assert hasattr(module, name), f"{name} is in __all__ but cannot be imported"
    undocumented = [name for name in names if not _mentioned(name, text)]
    assert not undocumented, f"undocumented public names: {undocumented}"


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_dotted_guardedllm_name_in_the_docs_exists() -> None:
    # Python names only: other pages (telemetry.md) quote dotted attribute names too.
    text = "\n".join(p.read_text(encoding="utf-8") for p in [*USER_PAGES, ROOT / "README.md"])
    found = re.findall(r"\bguardedllm(?:\.[A-Za-z_]\w*)+", text)
    dotted = {name for name in found if not _FILE_NAME.search(name)}  # guardedllm.toml
    assert dotted, "the docs name guardedllm's objects"
    missing = sorted(name for name in dotted if not _resolves(name))
    assert not missing, f"the docs name things guardedllm does not have: {missing}"
