"""The type checks of settings given in code (``Policy``, ``BreakerConfig``,
``RetryBudgetConfig``, ``SpendBudget``): a typed error that names the setting and says what to
pass, instead of a comparison's ``TypeError`` later or a wrong value taken silently (a string
from an environment variable is the usual case)."""

from __future__ import annotations

from guardedllm.errors import ArgumentTypeError

__all__ = ["require_flag", "require_number", "require_text"]


def require_number(
    owner: str, name: str, value: object, *, whole: bool = False, inherits: bool = False
) -> None:
    """``owner.name`` must be a number (``whole``: an int); a bool is none. ``inherits``: the
    setting may also be None, deferring to the next level (a ``Policy``'s)."""
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "a whole number" if whole else "a number"
        if inherits:
            what += " (or None to inherit)"
        raise ArgumentTypeError(
            f"{owner}.{name} must be {what}; got {type(value).__name__} {value!r}: convert it "
            f"first, e.g. {'int' if whole else 'float'}(os.environ[...])"
        )


def require_flag(owner: str, name: str, value: object) -> None:
    """``owner.name`` must be True, False or None."""
    if value is not None and not isinstance(value, bool):
        raise ArgumentTypeError(
            f"{owner}.{name} must be True or False (or None to inherit); got "
            f"{type(value).__name__} {value!r}"
        )


def require_text(owner: str, name: str, value: object) -> None:
    """``owner.name`` must be a str or None."""
    if value is not None and not isinstance(value, str):
        raise ArgumentTypeError(
            f"{owner}.{name} must be a str (or None); got {type(value).__name__} {value!r}"
        )
