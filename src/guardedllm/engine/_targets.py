"""Where an attempt goes: a deployment resolved to its endpoint, model and key."""

from __future__ import annotations

from collections.abc import Mapping

from guardedllm.errors import AuthenticationError
from guardedllm.providers.base import Target
from guardedllm.registry import Deployment, Registry

__all__ = ["target_for"]


def target_for(
    registry: Registry, deployment: Deployment, environ: Mapping[str, str] | None
) -> Target:
    """Where an attempt on ``deployment`` goes, with the API key read now."""
    provider = registry.provider_of(deployment)
    api_key = provider.api_key() if environ is None else provider.api_key(environ)
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
