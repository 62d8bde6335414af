"""Finding the outside services some tests need (PostgreSQL, Redis...).

On a developer's machine a missing service skips the test with the reason.
Under CI=true it fails instead: CI promises the service, so its absence is a
broken run, not a reason to pass quietly.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn

import pytest


def running_in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or under CI, fail) unless something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        missing(f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})")


def missing(reason: str) -> NoReturn:
    """Skip the test because something it needs is missing, or under CI fail it, saying what."""
    if running_in_ci():
        pytest.fail(f"{reason}; CI=true requires it.", pytrace=False)
    pytest.skip(reason)
