"""Figure 6: the action list of the REST API over a large history: latency under load, and queries per request.

Latency is measured over real HTTP: gunicorn serves config.wsgi on a
loopback port, as the README runs it in production, with the run's own
settings (DEBUG off); `api_clients` threads share `api_requests` requests
of the first page of /api/v1/actions/ (the default page size), each on one
kept-alive connection, as an owner with a token. Requests carry
X-Forwarded-Proto as the proxy in front of gunicorn would, and the per-user
throttle is raised for the server: it would otherwise refuse the load (it
limits one user, and every client here is the same user).

Queries per request are counted in this process with Django's test client
at two page sizes: a list whose query count grows with its length is an
N+1 that latency at one page size would not show.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from actions.models import Action, Email
from bench.context import Bench
from bench.data import ensure_stored_actions
from bench.figures import Figure, median, percentile
from tests.processes import LOOPBACK, free_port

LIST = "/api/v1/actions/"
OWNER = "bench-owner"
# Behind the proxy the README puts in front of gunicorn, which terminates TLS.
SERVER_ENV = {"SECURE_PROXY_SSL_HEADER": "true", "API_THROTTLE_USER": "1000000/minute"}
PROXY_HEADERS = {"X-Forwarded-Proto": "https"}
WARM_UP_REQUESTS = 2  # per client, untimed: each gunicorn worker loads the URL conf and its first connections


def owner_token() -> str:
    """The key of a superuser's API token (an owner: sees every action)."""
    users = get_user_model().objects
    owner = users.filter(username=OWNER).first() or users.create_superuser(OWNER, "owner@bench.example", None)
    return Token.objects.get_or_create(user=owner)[0].key


@contextlib.contextmanager
def gunicorn(bench: Bench) -> Iterator[tuple[int, dict]]:
    """gunicorn serving config.wsgi on a free loopback port, its output in the work directory; stopped afterwards."""
    workers, threads = 2 * (os.cpu_count() or 1) + 1, 4
    port = free_port()
    log = bench.workdir / "gunicorn.log"
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"{LOOPBACK}:{port}"]
    command += ["--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env={**os.environ, **SERVER_ENV},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        bench.wait(lambda: _answers(port) or process.poll() is not None, timeout=30, what="gunicorn starting")
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}; see {log}:\n{_tail(log)}")
        yield port, {"server": "gunicorn gthread", "workers": workers, "threads": threads, "log": str(log)}
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError, http.client.HTTPException):
        probe = http.client.HTTPConnection(LOOPBACK, port, timeout=2)
        probe.request("GET", "/healthz")
        probe.getresponse().read()
        probe.close()
        return True
    return False


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def load(port: int, token: str, *, clients: int, requests: int) -> tuple[list[float], float]:
    """`requests` list requests shared by `clients` threads, each on its own kept-alive connection.

    Returns each request's latency in seconds and the wall-clock seconds of the whole.
    """
    headers = {"Authorization": f"Token {token}", **PROXY_HEADERS}
    shares = [requests // clients + (n < requests % clients) for n in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=60)
        try:
            for _ in range(WARM_UP_REQUESTS):
                _get(conn, headers)
            start.wait()
            for _ in range(shares[n]):
                began = time.perf_counter()
                _get(conn, headers)
                latencies[n].append(time.perf_counter() - began)
        except Exception as exc:
            errors.append(f"client {n}: {exc}")
            start.abort()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(n,), name=f"api-client-{n}") for n in range(clients)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed warming up: its error says why
        start.wait(timeout=120)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; the first: {errors[0]}")
    return [latency for share in latencies for latency in share], wall


def _get(conn: http.client.HTTPConnection, headers: dict[str, str]) -> None:
    conn.request("GET", LIST, headers=headers)
    response = conn.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {LIST} answered {response.status}: {body[:200]!r}")


def queries_per_request(token: str, page_size: int) -> Figure:
    """Count the queries one list request at `page_size` makes, after a warm-up request."""
    client = Client(headers={"Authorization": f"Token {token}"}, SERVER_NAME=LOOPBACK)
    path = f"{LIST}?page_size={page_size}"
    client.get(path, secure=True)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, secure=True)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.content[:200]!r}")
    listed = len(json.loads(response.content)["results"])
    if listed != page_size:
        raise RuntimeError(f"GET {path} listed {listed} actions, not {page_size}")
    return Figure(
        key=f"api_queries_page_{page_size}",
        label=f"API action list: queries per request, page size {page_size}",
        value=len(queries),
        unit="queries",
        detail={"queries": [query["sql"][:300] for query in queries.captured_queries]},
    )


def settle_statistics() -> None:
    """On PostgreSQL, do what autovacuum has long done on a history built over months.

    Just after a bulk fill the planner misjudges the tables (a tenth of their rows)
    and the page's COUNT(*) cannot use an index-only scan: the figure would
    measure the minute after a bulk load, not the installation it stands for.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in (Action._meta.db_table, Email._meta.db_table):
                cursor.execute(f'VACUUM ANALYZE "{table}"')


def measure(bench: Bench) -> list[Figure]:
    sizes = bench.sizes
    ensure_stored_actions(sizes.api_stored, say=bench.say)
    settle_statistics()
    stored = Action.objects.count()
    token = owner_token()
    figures = [queries_per_request(token, 10), queries_per_request(token, 100)]
    with gunicorn(bench) as (port, server):
        bench.say(f"api: {sizes.api_requests} requests from {sizes.api_clients} clients over {stored:,} actions")
        latencies, wall = load(port, token, clients=sizes.api_clients, requests=sizes.api_requests)
    milliseconds = [latency * 1000 for latency in latencies]
    detail = {
        "stored_actions": stored,
        "clients": sizes.api_clients,
        "requests": len(milliseconds),
        "page_size": settings.REST_FRAMEWORK["PAGE_SIZE"],
        "requests_per_second": round(len(milliseconds) / wall, 1),
        "seconds": round(wall, 2),
        "mean_ms": round(sum(milliseconds) / len(milliseconds), 1),
        "max_ms": round(max(milliseconds), 1),
        **server,
    }
    label = f"API action list at {stored:,} actions, {sizes.api_clients} clients"
    return [
        Figure(
            key="api_list_median",
            label=f"{label}: median",
            value=round(median(milliseconds), 1),
            unit="ms",
            detail=detail,
        ),
        Figure(
            key="api_list_p99",
            label=f"{label}: 99th percentile",
            value=round(percentile(milliseconds, 0.99), 1),
            unit="ms",
            detail=detail,
        ),
        *figures,
    ]
