"""Typed readers for settings taken from environment variables.

Each helper returns the embedded default when the variable is unset or empty,
and raises ImproperlyConfigured naming the variable when its value is bad, so
a typo stops the process at start-up instead of silently meaning "off".
A variable `NAME_FILE` holding a path is read in place of `NAME`, for secrets
mounted as files.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or the content of the file `NAME_FILE` names."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc.strerror}") from exc
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_bool(name: str, default: bool) -> bool:
    """Return a boolean from true/false, yes/no, on/off or 1/0."""
    raw = env_str(name)
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return an integer, refusing values below `minimum`."""
    raw = env_str(name)
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Return a comma-separated list with blanks removed."""
    raw = env_str(name)
    if raw == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_counts(name: str) -> dict[str, int]:
    """Return "a=1,b=2" as {"a": 1, "b": 2}, refusing anything else."""
    counts = {}
    for item in env_list(name):
        key, _, value = item.partition("=")
        if not key.strip() or not value.strip().isdigit():
            raise ImproperlyConfigured(f"{name}: {item!r} is not name=number (e.g. send_reply=8).")
        counts[key.strip()] = int(value)
    return counts


def env_decimal(name: str, default: str = "0") -> Decimal:
    """Return a non-negative decimal number (prices, for instance)."""
    raw = env_str(name) or default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if not value.is_finite() or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a number of 0 or more.")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return one of `choices` (lower-cased), refusing anything else with the list of what would do."""
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r}: use one of {', '.join(choices)}.")
    return value
