"""The bundled model catalog: what well-known vendor models are, so a config need not say it.

``catalog.toml`` (package data beside this module) lists chat and embedding models of OpenAI,
Azure OpenAI, Anthropic and Gemini: the vendor's ids, the tokenizer, the context window and
output limit, the prices and the capabilities, each entry with its source and date. A
``[models.NAME]`` entry whose provider kind and ``model`` id the catalog knows inherits every
one of those fields it leaves out (``_load``), and ``guardedllm check`` compares the fields it
does set with the catalog's (``_drift``).

Rules:

- Nothing is read at import: the file is parsed once, on the first ``load_catalog()`` call (the
  first registry built), and the same ``Catalog`` is reused for the life of the process.
- No network, ever: the catalog is data shipped in the package.
- Ids match exactly, per vendor, and no id belongs to two entries of a vendor (checked when the
  catalog is built). A dated snapshot the catalog does not list is not matched to its alias: a
  new snapshot may count or cost differently, which is the drift the catalog is there to catch.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any, Literal

import attrs

from guardedllm.errors import ArgumentError, GuardedLLMError
from guardedllm.registry._model import CAPABILITIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "CATALOG_VENDORS",
    "INHERITED_FIELDS",
    "Catalog",
    "CatalogEntry",
    "Origin",
    "load_catalog",
    "parse_catalog",
]

# The provider kinds the catalog has entries for. An openai-compatible server (vLLM, Ollama, a
# gateway) serves models of its own choosing under names of its own: nothing to look up.
CATALOG_VENDORS = frozenset({"openai", "azure-openai", "anthropic", "gemini"})

# The fields of a [models.NAME] entry the catalog can supply, in the config's order.
INHERITED_FIELDS = (
    "tokenizer",
    "context_window",
    "max_output_tokens",
    "input_usd_per_mtok",
    "output_usd_per_mtok",
    "cached_input_usd_per_mtok",
    "reasoning_usd_per_mtok",
    "capabilities",
)

_KINDS = ("chat", "embedding")


def _ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _price(value: float | None) -> float | None:
    # TOML writes a whole price (10) as an integer; a price is a float like the config's.
    return None if value is None else float(value)


def _entries(value: Iterable[CatalogEntry]) -> tuple[CatalogEntry, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class CatalogEntry:
    """One model of the catalog: a ``[[models]]`` table of ``catalog.toml``.

    ``vendor`` is the provider kind it applies to; ``ids`` the vendor's model ids it matches
    (an alias and its dated snapshots). ``tokenizer_exact`` is False when ``tokenizer`` only
    stands in for the vendor's own (Claude, Gemini): estimates are then calibrated. Embedding
    entries (``kind == "embedding"``) have no output limit and no output, cached or reasoning
    price. Prices are USD per million tokens.
    """

    vendor: str = attrs.field(validator=attrs.validators.in_(CATALOG_VENDORS))
    kind: str = attrs.field(validator=attrs.validators.in_(_KINDS))
    ids: tuple[str, ...] = attrs.field(converter=_ids)
    tokenizer: str
    tokenizer_exact: bool
    context_window: int
    max_output_tokens: int | None = None
    input_usd_per_mtok: float = attrs.field(converter=float)
    output_usd_per_mtok: float | None = attrs.field(default=None, converter=_price)
    cached_input_usd_per_mtok: float | None = attrs.field(default=None, converter=_price)
    reasoning_usd_per_mtok: float | None = attrs.field(default=None, converter=_price)
    capabilities: frozenset[str] = attrs.field(default=frozenset(), converter=frozenset)
    source: str
    date: datetime.date
    note: str = ""

    @capabilities.validator
    def _known(self, _: attrs.Attribute[frozenset[str]], value: frozenset[str]) -> None:
        unknown = value - CAPABILITIES
        if unknown:
            raise ArgumentError(f"{self.ids[0]}: unknown capabilities {sorted(unknown)}")

    def config_values(self) -> dict[str, Any]:
        """The fields a ``[models.NAME]`` entry inherits, shaped as TOML would give them."""
        values: dict[str, Any] = {}
        for field in INHERITED_FIELDS:
            value = getattr(self, field)
            if field == "capabilities":
                values[field] = sorted(value)
                if self.kind != "chat":  # a config entry's kind defaults to "chat"
                    values["kind"] = self.kind
            elif value is not None:
                values[field] = value
        return values

    def describe(self) -> str:
        """``2026-12-05, <source>``: what a value taken from this entry cites."""
        return f"{self.date.isoformat()}, {self.source}"


@attrs.frozen(kw_only=True)
class Catalog:
    """The catalog: its date and source, and its entries in file order."""

    date: datetime.date
    source: str
    stand_in_calibration: str
    entries: tuple[CatalogEntry, ...] = attrs.field(converter=_entries)
    _by_id: Mapping[tuple[str, str], CatalogEntry] = attrs.field(
        init=False, repr=False, eq=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        by_id: dict[tuple[str, str], CatalogEntry] = {}
        for entry in self.entries:
            for model_id in entry.ids:
                other = by_id.setdefault((entry.vendor, model_id), entry)
                if other is not entry:
                    raise ArgumentError(
                        f"{entry.vendor} model id {model_id!r} is listed by two catalog entries"
                    )
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))

    def lookup(self, vendor: str, model_id: str) -> CatalogEntry | None:
        """The entry for ``model_id`` served by a provider of kind ``vendor``, or None."""
        return self._by_id.get((vendor, model_id))

    def age_days(self, today: datetime.date) -> int:
        """How many days old the catalog is on ``today``."""
        return (today - self.date).days

    def vendor_entries(self, vendor: str | None = None) -> tuple[CatalogEntry, ...]:
        """The entries of ``vendor`` (every entry when None), in file order."""
        return tuple(e for e in self.entries if vendor is None or e.vendor == vendor)


@attrs.frozen(kw_only=True)
class Origin:
    """Where one field of a deployment came from (``Registry.provenance``).

    ``source`` is ``"config"`` (``key`` is the dotted key it was written under, an
    ``[env.NAME]`` overlay's when one set it), ``"catalog"`` (``entry`` is the catalog entry it
    was inherited from), ``"default"`` (neither set it: the field's built-in meaning applies,
    e.g. cached input billed at the input price) or ``"code"`` (a deployment built in code, not
    loaded from a config). ``str(origin)`` reads ``config (models.gpt.tokenizer)`` or
    ``catalog (2026-12-05, LiteLLM 1.110.2 model map: gpt-4o)``.
    """

    source: Literal["config", "catalog", "default", "code"]
    key: str | None = None
    entry: CatalogEntry | None = None

    def __str__(self) -> str:
        if self.source == "config":
            return f"config ({self.key})"
        if self.source == "catalog" and self.entry is not None:
            return f"catalog ({self.entry.describe()})"
        return self.source


def _entry(table: Mapping[str, Any], index: int) -> CatalogEntry:
    try:
        return CatalogEntry(**table)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"[[models]] #{index + 1}: {exc}") from None


def parse_catalog(text: str) -> Catalog:
    """A catalog from the text of a ``catalog.toml``; ValueError says what is wrong."""
    data = tomllib.loads(text)
    header = data.get("catalog", {})
    try:
        return Catalog(
            date=header["date"],
            source=header["source"],
            stand_in_calibration=header["stand_in_calibration"],
            entries=[_entry(table, i) for i, table in enumerate(data.get("models", []))],
        )
    except KeyError as exc:
        raise ArgumentError(f"[catalog] lacks {exc}") from None


@cache
def load_catalog() -> Catalog:
    """The catalog shipped with guardedllm, read on first use and kept for the process."""
    import importlib.resources  # only here: `import guardedllm` need not load it

    resource = importlib.resources.files("guardedllm.registry").joinpath("catalog.toml")
    try:
        return parse_catalog(resource.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GuardedLLMError(
            f"The model catalog shipped with guardedllm cannot be read ({exc}). Reinstall "
            "guardedllm (pip install --force-reinstall guardedllm); if that does not help, "
            "report it with the package version."
        ) from None
