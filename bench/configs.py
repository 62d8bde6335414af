"""The two configurations measured side by side, and how each gets a fresh database and broker."""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import redis

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/mailroom_bench"
REDIS_URL = "redis://127.0.0.1:6379/15"


@dataclass
class Config:
    name: str
    label: str
    database_url: str = ""
    redis_url: str = ""

    def environment(self, data_dir: Path) -> dict[str, str]:
        """What the run's process starts with: production-like settings (DEBUG off) on its own data."""
        env = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "MAILROOM_DATA_DIR": str(data_dir),
            "DATABASE_URL": self.database_url or f"sqlite:///{data_dir / 'bench.sqlite3'}",
            "REDIS_URL": self.redis_url,
            "PROCESS_ON_INTAKE": "false",
            "LOG_LEVEL": "WARNING",
        }
        return env

    def prepare(self) -> None:
        """Start from nothing: a new PostgreSQL database and an empty Redis database. Raises if unreachable."""
        if self.database_url:
            url = urlparse(self.database_url)
            name = url.path.lstrip("/")
            admin = url._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                connection.execute(f'CREATE DATABASE "{name}"')
        if self.redis_url:
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=5).flushdb()

    def unreachable(self) -> str:
        """Why this configuration cannot run here, or "" if its services answer."""
        for url in filter(None, (self.database_url, self.redis_url)):
            parsed = urlparse(url)
            try:
                socket.create_connection((parsed.hostname, parsed.port), timeout=2).close()
            except OSError as exc:
                return f"{parsed.scheme} at {parsed.hostname}:{parsed.port} does not answer ({exc})"
        return ""


def configurations(postgres_url: str = POSTGRES_URL, redis_url: str = REDIS_URL) -> dict[str, Config]:
    return {
        "sqlite": Config("sqlite", "SQLite, ORM broker"),
        "postgresql": Config("postgresql", "PostgreSQL, Redis broker", postgres_url, redis_url),
    }
