"""The health views: /healthz for load balancers, /health/ for people and monitors.

/healthz answers from the web process alone, touching nothing. /health/ checks
the database, the workers' heartbeat and each integration: anyone gets the
overall status and each check's ok; staff also get the details (which
backend, what it answered, the worker clusters, queue depth per lane).
Details never hold secrets, but they name hosts, which a stranger has no need
to know.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from actions import stats
from integrations import circuit, registry
from observability.workers import clusters_seen


def _database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, connection.vendor


def _workers() -> tuple[bool, dict]:
    clusters = clusters_seen()
    if not clusters:
        return False, {"detail": "No worker seen: start `python manage.py qcluster`."}
    workers = sum(cluster.workers for cluster in clusters)
    return True, {
        "detail": f"{len(clusters)} cluster(s), {workers} worker(s)",
        "clusters": [cluster.as_dict() for cluster in clusters],
    }


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 while this process serves requests; no database, no session, nothing else asked."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database and every integration answer, 503 otherwise; workers count when HEALTH_REQUIRE_WORKERS."""
    detailed = request.user.is_authenticated and request.user.is_staff
    database_ok, database_detail = _database()
    workers_ok, workers_detail = _workers()
    checks: dict[str, dict] = {"database": {"ok": database_ok}, "workers": {"ok": workers_ok}}
    if detailed:
        checks["database"]["detail"] = database_detail
        checks["workers"].update(workers_detail, required=settings.HEALTH_REQUIRE_WORKERS)
    circuits = circuit.states() if database_ok else {}
    for capability, result in registry.health_report().items():
        checks[capability] = {"ok": result.ok}
        if detailed:
            checks[capability].update(
                backend=result.backend, detail=result.detail, circuit=circuits.get(capability, "closed")
            )
    # A web process without workers still serves the API and the admin: by
    # default the missing worker shows in its check and in /metrics, not in the status.
    counted = {name: check for name, check in checks.items() if name != "workers" or settings.HEALTH_REQUIRE_WORKERS}
    ok = all(check["ok"] for check in counted.values())
    body: dict = {"status": "ok" if ok else "failing", "checks": checks}
    if detailed and database_ok:
        body["queue_depth"] = stats.queue_depth()
    return JsonResponse(body, status=200 if ok else 503)
