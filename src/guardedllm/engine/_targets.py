"""Where an attempt goes: a deployment resolved to its endpoint, model and key."""

from __future__ import annotations

from collections.abc import Mapping

from guardedllm.errors import AuthenticationError
from guardedllm.providers.base import Target
from guardedllm.registry import Deployment, Registry

__all__ = ["Targets", "target_for"]


class Targets:
    """``target_for`` each deployment, kept while its key stays the same: the key is read on
    every attempt (a rotated key goes out from the next attempt on), and a target is made
    and its key checked again only when the key changed."""

    __slots__ = ("_environ", "_made", "_registry")

    def __init__(self, registry: Registry, environ: Mapping[str, str] | None) -> None:
        self._registry = registry
        self._environ = environ
        self._made: dict[str, tuple[Deployment, Target]] = {}

    def of(self, deployment: Deployment) -> Target:
        provider = self._registry.provider_of(deployment)
        environ = self._environ
        api_key = provider.api_key() if environ is None else provider.api_key(environ)
        made = self._made.get(deployment.name)
        if made is not None and made[0] is deployment and made[1].api_key == api_key:
            return made[1]
        target = target_for(self._registry, deployment, api_key)
        self._made[deployment.name] = (deployment, target)
        return target


def target_for(registry: Registry, deployment: Deployment, api_key: str | None) -> Target:
    """Where an attempt on ``deployment`` goes, with ``api_key`` (its provider's, read now)
    checked first."""
    provider = registry.provider_of(deployment)
    if api_key is None and provider.api_key_env is not None:
        raise AuthenticationError(
            f"{deployment.name}: environment variable {provider.api_key_env} (api_key_env "
            f"of provider {provider.name!r}) is not set; export it before calling.",
            deployment=deployment.name,
        )
    if api_key is not None and (api_key != api_key.strip() or not api_key.isprintable()):
        raise AuthenticationError(
            f"{deployment.name}: the key in {provider.api_key_env} has whitespace or control "
            "characters (a trailing newline from an env file?); strip it before calling.",
            deployment=deployment.name,
        )
    return Target(
        deployment=deployment.name,
        provider=provider.name,
        kind=provider.kind,
        base_url=provider.base_url,
        model=deployment.model,
        api_key=api_key,
        api_version=provider.api_version,
        headers=provider.headers,
        max_output_tokens=deployment.max_output_tokens,
        dimensions=deployment.dimensions,
    )
