"""``Registry``: the validated config, and the answer to "what does this name call?".

A registry is one view of a config file: the base, or the base with one ``[env.NAME]`` overlay
applied. It keeps the data it was loaded from so that other environments' views can be built
from it and compared (``compare_environments``). It never holds an API key: providers name the
environment variable and read it when asked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from guardedllm.errors import ArgumentError, ConfigError, ConfigProblem, ModelNotFoundError
from guardedllm.registry._catalog import Origin
from guardedllm.registry._check import did_you_mean, dotted
from guardedllm.registry._environments import compare_views
from guardedllm.registry._fleet import StateConfig
from guardedllm.registry._http import PATH_ID_KINDS, path_id_problem
from guardedllm.registry._load import load
from guardedllm.registry._model import Defaults, Deployment, ProviderConfig, Route
from guardedllm.registry._record import RecordConfig
from guardedllm.registry._resolve import Resolution, resolve_all

if TYPE_CHECKING:
    from guardedllm.guards.spend import SpendBudget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    # tomli is only installed where it is needed, so mypy may not find it.
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["Registry", "compare_environments"]


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _budgets(value: Iterable[SpendBudget]) -> tuple[SpendBudget, ...]:
    return tuple(value)


# How deep tables and arrays may nest. The deepest value a config has (a tag of a route rule in
# an environment: env.NAME.routes.NAME.rules[0].when.tags.KEY) is 8 levels down; 32 leaves room
# for keys to come and stays far below Python's recursion limit, which a deeper document would
# reach in the TOML parser or in ``_plain`` (RecursionError instead of a ConfigError).
_MAX_DEPTH = 32


def _too_deep(data: Any) -> str | None:
    """The key of the first value nested more than ``_MAX_DEPTH`` tables or arrays down in
    ``data``, or None. Walked without recursion, so any depth (or a cycle) is found."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    while pending:
        value, key, depth = pending.pop()
        if isinstance(value, Mapping):
            inner = [(item, dotted(key, str(name))) for name, item in value.items()]
        elif isinstance(value, (list, tuple)):
            inner = [(item, f"{key}[{index}]") for index, item in enumerate(value)]
        else:
            continue
        if depth == _MAX_DEPTH and inner:
            return key
        pending.extend((item, where, depth + 1) for item, where in inner)
    return None


def _plain(value: Any) -> Any:
    """A fresh copy of TOML-shaped data as dicts and lists, whatever mapping and sequence types
    a caller of ``from_dict`` used: later edits to the caller's objects cannot reach it. The
    data has been checked to nest at most ``_MAX_DEPTH`` levels."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _too_deep_error(key: str, source: str | None) -> ConfigError:
    problem = ConfigProblem(
        key=key,
        message=f"nests tables or arrays more than {_MAX_DEPTH} levels deep, deeper than any "
        "setting goes: look for brackets or braces left open, or remove it",
    )
    return ConfigError([problem], source=source)


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    # A byte order mark, which some Windows editors write at the top of a UTF-8 file, is no
    # part of the document: TOML parsers would read it as a stray character on line 1.
    text = text.removeprefix("\ufeff")
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The decoder's message ends with "(at line L, column C)".
        problem = ConfigProblem(
            key="(syntax)", message=f"not valid TOML: {exc}; fix the file at that position"
        )
        raise ConfigError([problem], source=source) from None
    except RecursionError:  # arrays or inline tables hundreds deep: the parser recurses
        raise _too_deep_error("(syntax)", source) from None
    return data


@attrs.frozen(kw_only=True)
class Registry:
    """Providers, deployments, aliases, routes and defaults of one view of a config, with its
    spend budgets (``[budgets.NAME]``, as ``SpendBudget`` values named NAME) and where guard
    state is shared (``[state]``; None: each client keeps its own in memory), and where calls
    are recorded (``[record]``; None: nowhere).

    Build one with ``from_toml``, ``from_toml_text`` or ``from_dict``: they validate
    everything and raise ConfigError listing every problem. ``environments`` are the names
    declared under ``[env.*]``; ``env`` is the one applied (None for the base). ``data`` and
    ``source`` are what it was loaded from, kept to build other environments' views;
    ``origins`` says where each field of each model came from (``provenance``).
    """

    providers: Mapping[str, ProviderConfig] = attrs.field(converter=_frozen_mapping, hash=False)
    models: Mapping[str, Deployment] = attrs.field(converter=_frozen_mapping, hash=False)
    aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)
    routes: Mapping[str, Route] = attrs.field(factory=dict, converter=_frozen_mapping, hash=False)
    defaults: Defaults = attrs.field(factory=Defaults)
    budgets: tuple[SpendBudget, ...] = attrs.field(default=(), converter=_budgets)
    state: StateConfig | None = None
    record: RecordConfig | None = None
    environments: tuple[str, ...] = attrs.field(default=(), converter=_names)
    env: str | None = None
    _data: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False, hash=False)
    _source: str | None = attrs.field(default=None, repr=False, eq=False)
    _origins: Mapping[str, Mapping[str, Origin]] = attrs.field(
        factory=dict, converter=_frozen_mapping, repr=False, eq=False, hash=False
    )
    _resolutions: Mapping[str, Resolution] = attrs.field(
        init=False, repr=False, eq=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        for deployment in self.models.values():
            if deployment.provider not in self.providers:
                raise ArgumentError(
                    f"deployment {deployment.name!r} names unknown provider {deployment.provider!r}"
                )
            slashes = PATH_ID_KINDS.get(self.providers[deployment.provider].kind)
            wrong = None if slashes is None else path_id_problem(deployment.model, slashes=slashes)
            if wrong is not None:
                raise ArgumentError(f"deployment {deployment.name!r}: its model {wrong}")
        # Every name is resolved once, up front: resolve() on the hot path is a dict lookup,
        # and a hand-built registry with a dangling name fails here, not mid-call.
        resolutions = resolve_all(self.models, self.aliases, self.routes)
        object.__setattr__(self, "_resolutions", MappingProxyType(resolutions))

    # ----------------------------------------------------------------- constructors

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, env: str | None = None, source: str | None = None
    ) -> Registry:
        """Validate ``data`` (shaped like the TOML file) and build the ``env`` view."""
        given: object = data  # callers without type checking pass anything
        if not isinstance(given, Mapping):
            problem = ConfigProblem(
                key="(top level)", message="must be a table of sections like [models.NAME]"
            )
            raise ConfigError([problem], source=source)
        deep = _too_deep(data)
        if deep is not None:
            raise _too_deep_error(deep or "(top level)", source)
        data = _plain(data)
        loaded = load(data, env=env, source=source)
        built = loaded.built
        return cls(
            providers=built.providers,
            models=built.models,
            aliases=built.aliases,
            routes=built.routes,
            defaults=built.defaults,
            budgets=built.budgets,
            state=built.state,
            record=built.record,
            environments=loaded.environments,
            env=env,
            data=data,
            source=source,
            origins=built.origins,
        )

    @classmethod
    def from_toml_text(
        cls, text: str, *, env: str | None = None, source: str = "<string>"
    ) -> Registry:
        """Parse and validate TOML ``text``; ``source`` names it in error messages."""
        return cls.from_dict(_parse_toml(text, source), env=env, source=source)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], *, env: str | None = None) -> Registry:
        """Read, parse and validate the TOML file at ``path``."""
        source = os.fspath(path)
        try:
            with open(path, "rb") as file:
                text = file.read().decode("utf-8")
        except OSError as exc:
            problem = ConfigProblem(
                key="(file)", message=f"cannot read it ({exc.strerror}): check the path"
            )
            raise ConfigError([problem], source=source) from None
        except UnicodeDecodeError:
            problem = ConfigProblem(key="(file)", message="is not UTF-8 text: save it as UTF-8")
            raise ConfigError([problem], source=source) from None
        return cls.from_toml_text(text, env=env, source=source)

    # ----------------------------------------------------------------- lookups

    def resolve(self, name: str) -> Resolution:
        """The ordered plan for ``name``: a model, a route, or an alias of either."""
        try:
            return self._resolutions[name]
        except KeyError:
            pass
        where = f" in environment {self.env!r}" if self.env else ""
        aliases = f"[env.{self.env}.aliases]" if self.env else "[aliases]"
        raise ModelNotFoundError(
            f"no model, alias or route named {name!r}{where}"
            f"{did_you_mean(name, self._resolutions)}; the registry knows "
            f"{len(self._resolutions)} names. Add it to {aliases}, or check that the right "
            "config and environment are loaded."
        )

    def deployment(self, name: str) -> Deployment:
        """The deployment (``[models.NAME]``) called ``name``; aliases and routes do not count."""
        try:
            return self.models[name]
        except KeyError:
            pass
        raise ModelNotFoundError(
            f"no deployment named {name!r}{did_you_mean(name, self.models)}; deployments are "
            f"the {len(self.models)} [models.NAME] tables. Use resolve() for aliases and routes."
        )

    def provider_of(self, deployment: Deployment | str) -> ProviderConfig:
        """The provider serving ``deployment`` (a Deployment or a deployment name)."""
        if isinstance(deployment, str):
            deployment = self.deployment(deployment)
        return self.providers[deployment.provider]

    def origins(self, name: str) -> Mapping[str, Origin]:
        """Where each field of deployment ``name`` came from: field -> ``Origin`` (the config
        and the key it was written under, the model catalog and its entry, or the field's
        default). A deployment built in code has ``Origin(source="code")`` for every field."""
        self.deployment(name)  # ModelNotFoundError for an unknown name
        known = self._origins.get(name)
        if known is not None:
            return known
        return MappingProxyType(dict.fromkeys(self._model_fields(), Origin(source="code")))

    def provenance(self, key: str) -> Origin:
        """Where the value at ``key`` came from: ``"models.NAME.FIELD"`` (NAME quoted when TOML
        needs it, as in ``models."gpt-4.1".tokenizer``). ``str()`` of the answer reads
        ``config (models.gpt.tokenizer)`` or ``catalog (2026-12-05, <source>)``.

        Raises ArgumentError for a key of another shape and ModelNotFoundError for an unknown
        deployment.
        """
        section, _, rest = key.partition(".")
        name, _, field = rest.rpartition(".")
        if len(name) > 1 and name[0] == name[-1] == '"':
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        origins = self.origins(name) if section == "models" and name else None
        if origins is None or field not in origins:
            fields = ", ".join(sorted(origins or self._model_fields()))
            raise ArgumentError(
                f"provenance() takes a key like 'models.NAME.FIELD', got {key!r}: FIELD is one "
                f"of {fields}"
            )
        return origins[field]

    @staticmethod
    def _model_fields() -> list[str]:
        return [f.name for f in attrs.fields(Deployment) if f.name != "name"]

    def names(self) -> list[str]:
        """Every name application code may call: aliases, then routes, then models."""
        return [*self.aliases, *self.routes, *self.models]

    def with_routes(self, *routes: Route) -> Registry:
        """A new registry with ``routes`` (built in code) added, replacing any of the same name.

        Raises ValueError when a route shares a model's or alias's name, or names something
        that does not resolve, or routes reach each other in a cycle. Routes added this way
        are not part of ``data``: ``with_env`` views are built from the config alone.
        """
        for route in routes:
            if route.name in self.models or route.name in self.aliases:
                raise ArgumentError(
                    f"route {route.name!r} has the same name as a model or alias; rename it"
                )
        return attrs.evolve(self, routes={**self.routes, **{r.name: r for r in routes}})

    # ----------------------------------------------------------------- environments

    def with_env(self, env: str | None) -> Registry:
        """The view of the same config with ``env``'s overlay (None: the base)."""
        return Registry.from_dict(self._data, env=env, source=self._source)

    def compare_environments(self, envs: Sequence[str] = ()) -> list[ConfigProblem]:
        """Every alias, route and model reaching a different vendor model or provider in one
        of ``envs`` than in the first (all declared environments when ``envs`` is empty).

        Raises ConfigError when a name in ``envs`` is not a declared environment.
        """
        names = list(envs) or list(self.environments)
        return compare_views([(env, self.with_env(env)) for env in names])


def compare_environments(
    config: Registry | Mapping[str, Any], envs: Sequence[str] = ()
) -> list[ConfigProblem]:
    """``Registry.compare_environments`` for a registry or for config data (validated first)."""
    registry = config if isinstance(config, Registry) else Registry.from_dict(config)
    return registry.compare_environments(envs)
