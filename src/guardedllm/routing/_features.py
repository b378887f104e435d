"""What routing knows about one call: the caller's tags and key, and what the request needs.

``RouteFeatures`` is what the caller (through the engine) passes besides the request: tags
(per-call metadata like ``{"tier": "free"}``), a sticky key (a user or session id) and a random
draw for calls without a key. ``needed_capabilities`` reads the request itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from guardedllm.errors import ArgumentError
from guardedllm.types import ChatRequest

__all__ = ["RouteFeatures", "needed_capabilities"]

# response_format types that ask the model for JSON output.
_JSON_FORMATS = frozenset({"json_object", "json_schema"})
# Content part types that carry an image in the OpenAI message shape.
_IMAGE_PARTS = frozenset({"image_url", "image"})


def _tags(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _draw(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (0.0 <= value < 1.0 and math.isfinite(value)):
        raise ArgumentError(
            f"RouteFeatures.draw must be in [0, 1) (a random.random()); got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RouteFeatures:
    """Per-call routing input besides the request.

    ``tags`` are matched by ``when = { tags = {...} }`` rules. ``key`` makes a split or shadow
    sample sticky (the same key always gets the same arm, across processes and restarts).
    ``draw`` is a random number in [0, 1) the engine drew, used where no key was given; with
    neither, a split takes its heaviest arm and a shadow is not sampled. ``arm`` assigns
    every split to the arm of that label (or name), whatever the key: a per-call override.
    """

    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_tags, hash=False)
    key: str | None = None
    draw: float | None = attrs.field(default=None, validator=_draw)
    arm: str | None = None


def _has_image(messages: tuple[Mapping[str, Any], ...]) -> bool:
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") in _IMAGE_PARTS:
                    return True
    return False


def needed_capabilities(request: ChatRequest) -> Mapping[str, str]:
    """The capabilities ``request`` needs, each with why: images need "vision", tools need
    "tools", a JSON ``response_format`` needs "json"."""
    needs: dict[str, str] = {}
    if _has_image(request.messages):
        needs["vision"] = "the messages hold images"
    if request.tools:
        needs["tools"] = "the request has tools"
    response_format = request.response_format
    if response_format is not None and response_format.get("type") in _JSON_FORMATS:
        needs["json"] = f"response_format is {response_format.get('type')}"
    return needs
