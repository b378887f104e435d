"""Sticky assignment: the same key lands in the same place, in every process, forever.

A key's position is the first 8 bytes of sha256(salt, key) read as a fraction of 2**64. Python's
``hash()`` is salted per process (PYTHONHASHSEED), so it would move users between arms on every
restart; sha256 does not, and spreads keys evenly whatever their shape.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from guardedllm.errors import ArgumentError

__all__ = ["pick_weighted", "position"]

_SCALE = float(2**64)


def position(salt: str, key: str) -> float:
    """Where ``key`` falls in [0, 1) for ``salt`` (a route name: each route splits on its own)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def pick_weighted(weights: Sequence[float], point: float) -> int:
    """The index whose share of the cumulative ``weights`` holds ``point`` (in [0, 1)).

    Raises ValueError for no weights or a weight that is not > 0.
    """
    if not weights or not all(w > 0 for w in weights):
        raise ArgumentError(f"weights must be a non-empty list of numbers > 0, got {list(weights)}")
    target = point * sum(weights)
    running = 0.0
    for index, weight in enumerate(weights):
        running += weight
        if target < running:
            return index
    return len(weights) - 1  # point rounded up to the total
