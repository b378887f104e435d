"""Bundled tiktoken encodings: offline loading, integrity, equality with tiktoken's own."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tiktoken
from tiktoken_ext import openai_public

from guardedllm.errors import ConfigError, GuardedLLMError
from guardedllm.estimate import _encodings
from guardedllm.estimate._encodings import (
    BUNDLED_ENCODINGS,
    get_encoding,
    load_bundled_encoding,
    parse_tiktoken_bpe,
)

# A tiktoken cache holding tiktoken's own encoding files, to compare the bundled ones with:
# GUARDEDLLM_TIKTOKEN_CACHE names one, else the offline copy the bundled files were made from,
# where it sits beside the checkout. Where neither is, the comparison is skipped.
SHARED_CACHE = Path(
    os.environ.get("GUARDEDLLM_TIKTOKEN_CACHE")
    or Path(__file__).resolve().parents[2].parent / "shared" / "tiktoken-cache"
)
NO_CACHE = (
    "no tiktoken cache with o200k_base and cl100k_base to compare with: set "
    "GUARDEDLLM_TIKTOKEN_CACHE to a folder tiktoken has filled (TIKTOKEN_CACHE_DIR) to run it"
)

SAMPLES = [
    "hello world",
    "Les naïfs ægithales hâtifs pondant à Noël où il gèle",
    "お誕生日おめでとう",
    "    indented code\r\n\tand tabs\n\n\n",
    "user text with <|endoftext|> and <|endofprompt|> in it",
    "2 + 2 = 4; 1234567890; don't I'LL we've",
    "emoji \U0001f469\u200d\U0001f469\u200d\U0001f467 and \U0001d518\U0001d52b\U0001d526",
]


def test_the_network_blocker_blocks(no_network: None) -> None:
    # The no-network tests below prove nothing unless this holds.
    with pytest.raises(OSError, match="forbids network"):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(OSError, match="forbids network"):
        sock.connect(("127.0.0.1", 9))


@pytest.mark.parametrize("name", sorted(BUNDLED_ENCODINGS))
def test_bundled_encodings_load_with_no_network_and_no_cache(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    encoding = load_bundled_encoding(BUNDLED_ENCODINGS[name])
    assert encoding.name == name
    assert encoding.decode(encoding.encode("hello world")) == "hello world"
    assert list(tmp_path.iterdir()) == []  # nothing was fetched into tiktoken's cache


def test_spec_matches_tiktoken_ext() -> None:
    # pat_str and special tokens must be exactly tiktoken's; its constructors are read with the
    # rank loading stubbed out, so this runs everywhere.
    for name, spec in BUNDLED_ENCODINGS.items():
        constructor = openai_public.ENCODING_CONSTRUCTORS[name]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(openai_public, "load_tiktoken_bpe", lambda *_a, **_k: {})
            theirs = constructor()
        assert theirs["name"] == spec.name
        assert theirs["pat_str"] == spec.pat_str
        assert theirs["special_tokens"] == spec.special_tokens


@pytest.mark.skipif(not SHARED_CACHE.is_dir(), reason=NO_CACHE)
@pytest.mark.parametrize("name", sorted(BUNDLED_ENCODINGS))
def test_equal_to_tiktokens_own_encoding(
    name: str, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(SHARED_CACHE))
    # Built from tiktoken's constructor, not tiktoken.get_encoding, so tiktoken's process-wide
    # registry is left as it was.
    theirs = tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[name]())
    ours = get_encoding(name)
    assert ours.name == theirs.name
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens
    assert ours._mergeable_ranks == theirs._mergeable_ranks
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)
        assert ours.encode(text, allowed_special="all") == theirs.encode(
            text, allowed_special="all"
        )


def test_get_encoding_returns_the_same_object() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")
    assert get_encoding("cl100k_base") is not get_encoding("o200k_base")


def test_concurrent_first_calls_load_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh, empty cache: every thread races to load. Two loads would build two objects.
    monkeypatch.setattr(_encodings, "_loaded", {})
    start = threading.Barrier(8)
    results: list[tiktoken.Encoding] = []

    def load() -> None:
        start.wait()
        results.append(get_encoding("cl100k_base"))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result is results[0] for result in results)


def test_parse_valid_data() -> None:
    data = b"IQ== 0\nIg== 1\nIyQ= 2\n"  # "!", '"', "#$"
    ranks = parse_tiktoken_bpe(data, name="tiny", expected_sha256=hashlib.sha256(data).hexdigest())
    assert ranks == {b"!": 0, b'"': 1, b"#$": 2}


def test_corrupted_data_is_refused() -> None:
    spec = BUNDLED_ENCODINGS["cl100k_base"]
    good = b"IQ== 0\nIg== 1\n"
    corrupted = b"IQ== 0\nIg== 2\n"
    with pytest.raises(GuardedLLMError, match="corrupted") as caught:
        parse_tiktoken_bpe(
            corrupted, name=spec.name, expected_sha256=hashlib.sha256(good).hexdigest()
        )
    message = str(caught.value)
    assert hashlib.sha256(corrupted).hexdigest() in message
    assert hashlib.sha256(good).hexdigest() in message
    assert "Reinstall" in message


def test_unknown_tokenizer_is_a_config_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        get_encoding("o300k_imaginary")
    (problem,) = caught.value.problems
    assert problem.key == "tokenizer"
    assert "o300k_imaginary" in problem.message
    assert "o200k_base" in problem.message


def test_unbundled_tokenizer_offline_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    # p50k_base is tiktoken's to download; with no network and an empty cache it cannot.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        get_encoding("p50k_base")
    (problem,) = caught.value.problems
    assert problem.key == "tokenizer"
    assert "TIKTOKEN_CACHE_DIR" in problem.message


def test_import_reads_no_encoding_file() -> None:
    # In a fresh interpreter, an audit hook records every file opened while importing.
    code = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda e, a: opened.append(str(a[0])) if e == 'open' else None)\n"
        "import guardedllm.estimate\n"
        "from guardedllm.estimate import _encodings\n"
        "assert not _encodings._loaded, _encodings._loaded\n"
        "print(sum('.tiktoken' in path for path in opened))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "0"
