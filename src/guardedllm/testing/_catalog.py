"""Which model ids the fake serves; any other answers 404 model-not-found.

``None`` (the default) serves every id. ``remove`` works in both modes: it records the id as
gone, so "every model but this one" is expressible; ``add`` brings an id back (and, with an
explicit set, admits it). Read by the server thread, changed by the test's thread: one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from guardedllm.errors import ArgumentTypeError

__all__ = ["ModelCatalog"]


class ModelCatalog:
    def __init__(self, models: Iterable[str] | None = None) -> None:
        if isinstance(models, str):
            raise ArgumentTypeError(
                f"models={models!r} is one string; pass a collection of model ids, "
                f"e.g. models={{{models!r}}}."
            )
        self._lock = threading.Lock()
        self._allowed: set[str] | None = None if models is None else set(models)
        self._removed: set[str] = set()

    def knows(self, model: str) -> bool:
        with self._lock:
            if model in self._removed:
                return False
            return self._allowed is None or model in self._allowed

    def add(self, model: str) -> None:
        with self._lock:
            self._removed.discard(model)
            if self._allowed is not None:
                self._allowed.add(model)

    def remove(self, model: str) -> None:
        with self._lock:
            self._removed.add(model)
            if self._allowed is not None:
                self._allowed.discard(model)

    def served(self) -> frozenset[str] | None:
        """The ids served, or None when every id not removed is."""
        with self._lock:
            return None if self._allowed is None else frozenset(self._allowed)
