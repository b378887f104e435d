"""tiktoken encodings, loaded once per process, never downloaded for the bundled ones.

o200k_base and cl100k_base (the encodings of current OpenAI models) ship inside the package as
xz-compressed ``.tiktoken`` files, so counting works on an air-gapped host. Rules:

- Nothing happens at import: an encoding is read, checked and built on its first
  ``get_encoding`` call, then reused for the life of the process.
- The sha256 of each file's *uncompressed* bytes is recorded here and checked on every load, so
  a corrupted or tampered install fails loudly instead of miscounting tokens.
- ``pat_str`` and the special tokens are exactly those of tiktoken's own
  ``tiktoken_ext/openai_public.py``: the encoders built here are equal to tiktoken's (the tests
  compare them).
- Other names (p50k_base, r50k_base, ...) go through ``tiktoken.get_encoding``, which may download
  its file on first use: that is the user's choice of tokenizer, not something we do for them.
"""

from __future__ import annotations

import binascii
import hashlib
import importlib.resources
import lzma
import threading

import attrs
import tiktoken

from guardedllm.errors import ConfigError, ConfigProblem, GuardedLLMError

__all__ = ["BUNDLED_ENCODINGS", "get_encoding"]

_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"

# Copied verbatim from tiktoken_ext/openai_public.py (tiktoken 0.14); a test checks them.
_CL100K_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT_STR = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)


@attrs.frozen(kw_only=True)
class BundledEncoding:
    """How to build one encoding from a file shipped in ``guardedllm/estimate/data``."""

    name: str
    resource: str  # file name under data/, xz-compressed
    sha256: str  # of the uncompressed .tiktoken bytes, as tiktoken's openai_public.py expects
    pat_str: str
    special_tokens: dict[str, int] = attrs.field(eq=False)


BUNDLED_ENCODINGS: dict[str, BundledEncoding] = {
    "o200k_base": BundledEncoding(
        name="o200k_base",
        resource="o200k_base.tiktoken.xz",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str=_O200K_PAT_STR,
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": BundledEncoding(
        name="cl100k_base",
        resource="cl100k_base.tiktoken.xz",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=_CL100K_PAT_STR,
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}

# Invariant: an encoding is in _loaded only once fully built; it is written under _load_lock
# and read without it (a dict read is atomic), so the hot path takes no lock.
_loaded: dict[str, tiktoken.Encoding] = {}
_load_lock = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded on first use and reused after.

    Thread-safe: concurrent first calls load the encoding once. Raises ``ConfigError`` (key
    ``tokenizer``) for a name tiktoken does not know or cannot load.
    """
    encoding = _loaded.get(name)
    if encoding is not None:
        return encoding
    with _load_lock:
        encoding = _loaded.get(name)
        if encoding is None:
            bundled = BUNDLED_ENCODINGS.get(name)
            encoding = load_bundled_encoding(bundled) if bundled else _load_through_tiktoken(name)
            _loaded[name] = encoding
    return encoding


def load_bundled_encoding(spec: BundledEncoding) -> tiktoken.Encoding:
    """Build ``spec``'s encoding from the package's own data; no cache, no network."""
    compressed = (
        importlib.resources.files("guardedllm.estimate").joinpath("data").joinpath(spec.resource)
    )
    data = lzma.decompress(compressed.read_bytes())
    return tiktoken.Encoding(
        spec.name,
        pat_str=spec.pat_str,
        mergeable_ranks=parse_tiktoken_bpe(data, name=spec.name, expected_sha256=spec.sha256),
        special_tokens=dict(spec.special_tokens),
    )


def parse_tiktoken_bpe(data: bytes, *, name: str, expected_sha256: str) -> dict[bytes, int]:
    """Mergeable ranks from ``.tiktoken`` bytes: one ``<base64 token> <rank>`` per line.

    The hash is checked before parsing; once it matches, the bytes are the file OpenAI
    published, so the parse need not defend against malformed lines.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise GuardedLLMError(
            f"The bundled {name} tokenizer data is corrupted (sha256 {actual}, expected "
            f"{expected_sha256}). Reinstall guardedllm (pip install --force-reinstall "
            "guardedllm); if that does not help, report it with the package version."
        )
    fields = data.split()
    decode = binascii.a2b_base64
    return {
        decode(token): int(rank) for token, rank in zip(fields[0::2], fields[1::2], strict=True)
    }


def _load_through_tiktoken(name: str) -> tiktoken.Encoding:
    bundled = ", ".join(sorted(BUNDLED_ENCODINGS))
    if name not in tiktoken.list_encoding_names():
        raise ConfigError(
            [
                ConfigProblem(
                    key="tokenizer",
                    message=(
                        f"unknown tokenizer {name!r}. Use a tiktoken encoding name: {bundled} "
                        "ship with guardedllm; others "
                        f"({', '.join(sorted(tiktoken.list_encoding_names()))}) load through "
                        "tiktoken."
                    ),
                )
            ]
        )
    try:
        encoding: tiktoken.Encoding = tiktoken.get_encoding(name)
    except Exception as exc:
        # tiktoken downloads non-bundled encodings on first use; offline that fails here.
        raise ConfigError(
            [
                ConfigProblem(
                    key="tokenizer",
                    message=(
                        f"tiktoken could not load {name!r} ({type(exc).__name__}: {exc}). It "
                        "downloads that file on first use: allow the download once, or point "
                        f"TIKTOKEN_CACHE_DIR at a folder holding it, or use {bundled}, which "
                        "ship with guardedllm."
                    ),
                )
            ]
        ) from exc
    return encoding
