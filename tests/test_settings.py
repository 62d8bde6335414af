"""Settings come from the environment and refuse bad values at start-up.

Each case starts a fresh interpreter, because settings are read once at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

ROOT = Path(settings.BASE_DIR)
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7Gq2mP9vLr4TzW8kN3bYc6HdJ5sFa1Qe0UoRiXtVnBgMhKpLw",
    "ALLOWED_HOSTS": "mailroom.acme.example",
    # A deliberate choice per deployment (it asks browsers to hard-code HTTPS
    # for the domain), so it is off by default and on in this production example.
    "SECURE_HSTS_PRELOAD": "true",
}
# Variables of the surrounding run that would leak into the child's settings.
_ISOLATE = ["DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "DATABASE_URL", "REDIS_URL", "ALLOWED_HOSTS", "STATIC_ROOT"]


def run_django(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `code` after django.setup() in a new interpreter with only the given settings variables."""
    child_env = {k: v for k, v in os.environ.items() if k not in _ISOLATE}
    child_env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "MAILROOM_DATA_DIR": str(tmp_path / "data")})
    child_env.update(env)
    script = f"import django; django.setup()\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120
    )


def settings_of(tmp_path: Path, expression: str, **env: str):
    result = run_django(
        f"import json; from django.conf import settings; print(json.dumps({expression}))", tmp_path, **env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


class TestHelpers:
    def test_it_reads_booleans_in_common_spellings(self, monkeypatch):
        for raw, expected in [("true", True), ("YES", True), ("1", True), ("off", False), ("False", False)]:
            monkeypatch.setenv("SOME_FLAG", raw)
            assert env_bool("SOME_FLAG", not expected) is expected

    def test_it_refuses_a_boolean_it_cannot_read(self, monkeypatch):
        monkeypatch.setenv("SOME_FLAG", "maybe")
        with pytest.raises(ImproperlyConfigured, match="SOME_FLAG='maybe' is not a boolean"):
            env_bool("SOME_FLAG", False)

    def test_it_uses_the_default_when_unset_or_empty(self, monkeypatch):
        monkeypatch.delenv("SOME_NUMBER", raising=False)
        assert env_int("SOME_NUMBER", 7) == 7
        monkeypatch.setenv("SOME_NUMBER", "")
        assert env_int("SOME_NUMBER", 7) == 7

    def test_it_refuses_bad_integers(self, monkeypatch):
        monkeypatch.setenv("SOME_NUMBER", "ten")
        with pytest.raises(ImproperlyConfigured, match="not an integer"):
            env_int("SOME_NUMBER", 1)
        monkeypatch.setenv("SOME_NUMBER", "-3")
        with pytest.raises(ImproperlyConfigured, match="below the minimum of 0"):
            env_int("SOME_NUMBER", 1, minimum=0)

    def test_it_splits_lists_and_drops_blanks(self, monkeypatch):
        monkeypatch.setenv("SOME_LIST", " a.example, ,b.example ")
        assert env_list("SOME_LIST") == ["a.example", "b.example"]

    def test_it_reads_a_secret_from_a_file(self, monkeypatch, tmp_path):
        secret = tmp_path / "secret"
        secret.write_text("from-a-file\n")
        monkeypatch.setenv("SOME_SECRET", "from-the-variable")
        monkeypatch.setenv("SOME_SECRET_FILE", str(secret))
        assert env_str("SOME_SECRET") == "from-a-file"

    def test_it_names_an_unreadable_secret_file(self, monkeypatch, tmp_path):
        monkeypatch.setenv("SOME_SECRET_FILE", str(tmp_path / "missing"))
        with pytest.raises(ImproperlyConfigured, match=r"SOME_SECRET_FILE=.* cannot be read"):
            env_str("SOME_SECRET")


class TestStartUp:
    def test_it_refuses_debug_maybe(self, tmp_path):
        result = run_django("", tmp_path, DEBUG="maybe")
        assert result.returncode != 0
        assert "DEBUG='maybe' is not a boolean" in result.stderr

    def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(self, tmp_path):
        result = run_django("", tmp_path, DEBUG="false")
        assert result.returncode != 0
        assert "SECRET_KEY is not set and DEBUG is off" in result.stderr

    def test_it_generates_a_development_key_once_outside_git(self, tmp_path):
        first = settings_of(tmp_path, "settings.SECRET_KEY", DEBUG="true")
        second = settings_of(tmp_path, "settings.SECRET_KEY", DEBUG="true")
        key_file = tmp_path / "data" / "secret_key"
        assert first == second == key_file.read_text().strip()
        assert len(first) >= 50
        assert key_file.stat().st_mode & 0o777 == 0o600

    def test_it_passes_the_deploy_check_with_production_variables(self, tmp_path):
        result = run_django(
            "from django.core.management import call_command\ncall_command('check', deploy=True, fail_level='WARNING')",
            tmp_path,
            **PRODUCTION,
        )
        assert result.returncode == 0, result.stderr
        assert "no issues" in result.stdout + result.stderr

    def test_the_deploy_check_fails_with_debug_on(self, tmp_path):
        result = run_django(
            "from django.core.management import call_command\ncall_command('check', deploy=True, fail_level='WARNING')",
            tmp_path,
            **{**PRODUCTION, "DEBUG": "true"},
        )
        assert result.returncode != 0
        assert "security.W018" in result.stderr


class TestDatabase:
    def test_the_default_is_sqlite_in_wal_mode_with_a_busy_timeout(self, tmp_path):
        result = run_django(
            "from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    c.execute('PRAGMA journal_mode'); print(c.fetchone()[0])\n"
            "    c.execute('PRAGMA busy_timeout'); print(c.fetchone()[0])",
            tmp_path,
            DEBUG="true",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["wal", "20000"]
        assert (tmp_path / "data" / "mailroom.sqlite3").exists()

    def test_database_url_switches_to_postgresql(self, tmp_path):
        db = settings_of(
            tmp_path,
            "settings.DATABASES['default']",
            DEBUG="true",
            DATABASE_URL="postgres://mr:pw@db.internal:6543/mail",
        )
        assert db["ENGINE"] == "django.db.backends.postgresql"
        assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == ("db.internal", 6543, "mail", "mr")

    def test_it_refuses_a_database_it_does_not_support(self, tmp_path):
        result = run_django("", tmp_path, DEBUG="true", DATABASE_URL="mysql://root@localhost/mail")
        assert result.returncode != 0
        assert "Mailroom supports sqlite:/// and postgres:// URLs" in result.stderr

    def test_it_refuses_a_malformed_database_url(self, tmp_path):
        result = run_django("", tmp_path, DEBUG="true", DATABASE_URL="nonsense")
        assert result.returncode != 0
        assert "DATABASE_URL" in result.stderr


class TestQueue:
    def test_the_orm_broker_is_the_default(self, tmp_path):
        q = settings_of(tmp_path, "settings.Q_CLUSTER", DEBUG="true")
        assert q["orm"] == "default"
        assert "redis" not in q

    def test_redis_url_switches_to_the_redis_broker(self, tmp_path):
        q = settings_of(tmp_path, "settings.Q_CLUSTER", DEBUG="true", REDIS_URL="redis://127.0.0.1:6379/3")
        assert q["redis"] == "redis://127.0.0.1:6379/3"
        assert "orm" not in q

    @pytest.mark.parametrize("timeout,workers,limit", [("300", "2", "4"), ("30", "8", "64"), ("5", "1", "1")])
    def test_retry_outlasts_a_task_waiting_in_memory_then_running(self, tmp_path, timeout, workers, limit):
        q = settings_of(
            tmp_path, "settings.Q_CLUSTER", DEBUG="true", Q_TIMEOUT=timeout, Q_WORKERS=workers, Q_QUEUE_LIMIT=limit
        )
        waiting_then_running = q["timeout"] * (1 + q["queue_limit"] / q["workers"])
        assert q["retry"] > waiting_then_running
        assert q["ack_failures"] is True
        assert 1 <= q["max_attempts"] <= 10
        assert q["save_limit"] > 0


class TestStaticFiles:
    def test_collectstatic_builds_a_manifest_that_whitenoise_serves(self, tmp_path):
        static_root = tmp_path / "static"
        env = {
            **PRODUCTION,
            "ALLOWED_HOSTS": "testserver",
            "SECURE_SSL_REDIRECT": "false",
            "STATIC_ROOT": str(static_root),
        }
        collected = run_django(
            "from django.core.management import call_command\n"
            "call_command('collectstatic', interactive=False, verbosity=0)",
            tmp_path,
            **env,
        )
        assert collected.returncode == 0, collected.stderr
        manifest = json.loads((static_root / "staticfiles.json").read_text())
        hashed = manifest["paths"]["admin/css/base.css"]
        served = run_django(
            "from django.test import Client\n"
            f"r = Client().get('/static/{hashed}')\n"
            "print(r.status_code, r.headers.get('Cache-Control'))",
            tmp_path,
            **env,
        )
        assert served.returncode == 0, served.stderr
        status, cache_control = served.stdout.split(maxsplit=1)
        assert status == "200"
        assert "immutable" in cache_control
